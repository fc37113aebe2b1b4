"""Follows the control plane: one discovery stream, reconnecting forever.

Each snapshot is verified, validated and compiled off the event loop, then
swapped in with one assignment, persisted, and acknowledged. A bad snapshot
is NACKed and the proxy keeps serving the previous one.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from keyway.v1 import discovery_pb2 as pb
from keyway.v1 import discovery_pb2_grpc

from data_plane.routing.apply import Applied, Rejected, apply
from data_plane.shared.limits import SNAPSHOT_RECEIVE_LIMIT
from data_plane.state import ProxyState

from .cache import SnapshotCache

log = logging.getLogger("keyway.data_plane.snapshots")

_CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", SNAPSHOT_RECEIVE_LIMIT),
]


@dataclass(frozen=True, slots=True)
class Identity:
    node_id: str
    pool: str = "default"
    build_version: str = "dev"


@dataclass(frozen=True, slots=True)
class Backoff:
    initial: float = 0.1
    maximum: float = 10.0

    def delay(self, failures: int, rand: Callable[[], float]) -> float:
        # Full jitter: spreads reconnects so a restarted control plane is not
        # hit by every proxy in the same instant.
        ceiling = min(self.maximum, self.initial * 2.0 ** min(failures, 30))
        return ceiling * (0.5 + rand() / 2)


def restore_from_cache(state: ProxyState, cache: SnapshotCache) -> bool:
    """Loads the newest cached snapshot that still validates."""
    for cached in cache.candidates():
        result = apply(cached.version, cached.sha256, cached.payload)
        if isinstance(result, Applied):
            state.swap(result.table, generated_at=0.0, now=time.time())
            state.metrics.loaded_from_cache = True
            log.info("serving snapshot %d from the local cache", cached.version)
            return True
        log.warning("ignoring cached snapshot %d: %s", cached.version, result.message)
    return False


class SnapshotClient:
    def __init__(
        self,
        target: str,
        token: str,
        identity: Identity,
        state: ProxyState,
        *,
        cache: SnapshotCache | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        backoff: Backoff = Backoff(),
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._target = target
        self._token = token
        self._identity = identity
        self._state = state
        self._cache = cache
        self._credentials = credentials
        self._backoff = backoff
        self._rand = rand
        self._answered = False

    def _channel(self) -> grpc.aio.Channel:
        if self._credentials is None:
            return grpc.aio.insecure_channel(self._target, options=_CHANNEL_OPTIONS)
        return grpc.aio.secure_channel(self._target, self._credentials, options=_CHANNEL_OPTIONS)

    async def run(self) -> None:
        failures = 0
        while True:
            self._answered = False
            try:
                await self._follow()
            except grpc.aio.AioRpcError as error:
                level = (
                    logging.ERROR
                    if error.code() == grpc.StatusCode.UNAUTHENTICATED
                    else logging.INFO
                )
                log.log(level, "discovery stream ended: %s %s", error.code().name, error.details())
            except Exception:
                # Whatever went wrong with one stream, keep following: the
                # proxy goes on serving its current table meanwhile.
                log.exception("discovery stream failed; reconnecting")
            finally:
                self._state.metrics.connected = False
            if self._answered:
                # A stream that worked and then broke (a control-plane restart)
                # starts the backoff over, however it ended.
                failures = 0
            delay = self._backoff.delay(failures, self._rand)
            failures += 1
            await asyncio.sleep(delay)

    def _hello(self) -> pb.StreamSnapshotsRequest:
        table = self._state.table
        return pb.StreamSnapshotsRequest(
            hello=pb.Hello(
                node_id=self._identity.node_id,
                pool=self._identity.pool,
                build_version=self._identity.build_version,
                applied_version=table.version if table else 0,
                applied_hash=table.sha256 if table else "",
            )
        )

    async def _follow(self) -> None:
        """One stream's life; sets `_answered` once it gets an answer."""
        async with self._channel() as channel:
            stub = discovery_pb2_grpc.DataPlaneDiscoveryServiceStub(channel)
            call = stub.StreamSnapshots(metadata=(("authorization", f"Bearer {self._token}"),))
            await call.write(self._hello())
            async for response in call:
                self._answered = True
                self._state.metrics.connected = True
                reply = await self._handle(response)
                if reply is not None:
                    await call.write(reply)

    async def _handle(
        self, response: pb.StreamSnapshotsResponse
    ) -> pb.StreamSnapshotsRequest | None:
        if response.WhichOneof("message") != "update":
            return None  # "current": nothing to apply, nothing to acknowledge
        update = response.update
        result = await asyncio.to_thread(
            apply, update.version, update.hash, update.snapshot, self._state.table
        )
        if isinstance(result, Rejected):
            self._state.metrics.rejections += 1
            log.warning("rejected snapshot %d: %s", update.version, result.message)
            return pb.StreamSnapshotsRequest(
                nack=pb.Nack(
                    nonce=response.nonce,
                    version=update.version,
                    message=result.message,
                    violations=[
                        pb.SnapshotViolation(field=v.field, description=v.description)
                        for v in result.violations
                    ],
                )
            )
        self._state.swap(
            result.table,
            generated_at=update.generate_time.ToMicroseconds() / 1e6,
            now=time.time(),
        )
        self._state.metrics.loaded_from_cache = False
        log.info("applied snapshot %d", update.version)
        if self._cache is not None:
            try:
                await asyncio.to_thread(
                    self._cache.save, update.version, update.hash, update.snapshot
                )
            except OSError as error:
                # Serving matters more than the cache; the next snapshot retries.
                log.warning("could not write the snapshot cache: %s", error)
        return pb.StreamSnapshotsRequest(
            ack=pb.Ack(nonce=response.nonce, version=update.version, hash=update.hash)
        )
