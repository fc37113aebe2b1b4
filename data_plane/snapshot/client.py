"""Follows the control plane: one discovery stream, reconnecting forever.

Each message is decided off the event loop (`decide`: a snapshot is verified,
validated and built, and the ACK or NACK is composed), then carried out here: a
good snapshot is swapped in with one assignment, persisted, and acknowledged; a
bad one is NACKed and the proxy keeps serving the previous one.

A proxy that cannot take updates says so loudly: an ERROR log line, the
`keyway_snapshot_updates_failing` and `keyway_snapshot_update_failures_total`
metrics, and the detail on `/readyz`. How long its snapshot has gone
unconfirmed is tracked from the moment the stream broke or an update failed
(`SnapshotState.stale_seconds`), which `--max-snapshot-age` turns into a refusal
to serve.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc
from keyway.v1 import discovery_pb2 as pb
from keyway.v1 import discovery_pb2_grpc

from data_plane.routing.apply import Applied, apply
from data_plane.snapshot.state import SnapshotState

from .cache import SnapshotCache
from .decide import Confirm, Refuse, Swap, decide
from .targets import ControlPlanes

log = logging.getLogger("keyway.data_plane.snapshots")

# Errors that a reconnect will not fix: said at ERROR at once. Others (the control plane
# restarting) only after a few failed attempts in a row.
_LOUD = frozenset(
    {
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
    }
)
_QUIET_ATTEMPTS = 3


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


def restore_from_cache(state: SnapshotState, cache: SnapshotCache) -> bool:
    """Loads the newest cached snapshot that still validates.

    It was last known current when it was written, so its age counts from then.
    """
    for cached in cache.candidates():
        result = apply(cached.version, cached.sha256, cached.payload)
        if isinstance(result, Applied):
            state.swap(result.table, generated_at=0.0, now=time.time())
            state.metrics.loaded_from_cache = True
            state.metrics.stale_since = time.monotonic() - max(0.0, time.time() - cached.saved_at)
            log.info("serving snapshot %d from the local cache", cached.version)
            return True
        log.warning("ignoring cached snapshot %d: %s", cached.version, result.message)
    return False


class SnapshotClient:
    """Follows one of `targets` at a time (see `targets`): a broken stream, or one that
    never answered, moves it to the next."""

    def __init__(
        self,
        targets: str | Sequence[str],
        token: str,
        identity: Identity,
        state: SnapshotState,
        *,
        cache: SnapshotCache | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        backoff: Backoff = Backoff(),
        rand: Callable[[], float] = random.random,
    ) -> None:
        listed = (targets,) if isinstance(targets, str) else tuple(targets)
        self.control_planes = ControlPlanes(listed, credentials, rand)
        self._token = token
        self._identity = identity
        self._state = state
        self._cache = cache
        self._backoff = backoff
        self._rand = rand
        self._answered = False

    @property
    def _target(self) -> str:
        return self.control_planes.current

    async def run(self) -> None:
        failures = 0
        while True:
            if failures or self._answered:
                # Another replica serves the same snapshots: try the next one.
                self.control_planes.advance()
            self._answered = False
            try:
                await self._follow()
            except grpc.aio.AioRpcError as error:
                self._stream_failed(error, failures)
            except Exception:
                # Whatever went wrong with one stream, keep following: the
                # proxy goes on serving its current table meanwhile.
                log.exception("discovery stream failed; reconnecting")
                self._state.unconfirmed(time.monotonic(), "the discovery stream failed")
            finally:
                self._state.metrics.connected = False
                self._state.unconfirmed(time.monotonic())
            if self._answered:
                # A stream that worked and then broke (a control-plane restart)
                # starts the backoff over, however it ended.
                failures = 0
            # The backoff grows once per round of the whole list, so a dead replica
            # costs one short, jittered delay before the next one is tried.
            rounds = failures // len(self.control_planes.targets)
            delay = self._backoff.delay(rounds, self._rand)
            failures += 1
            await asyncio.sleep(delay)

    def _stream_failed(self, error: grpc.aio.AioRpcError, failures: int) -> None:
        code = error.code()
        reason = f"{code.name}: {error.details()}"
        loud = code in _LOUD or (not self._answered and failures + 1 >= _QUIET_ATTEMPTS)
        self._state.unconfirmed(time.monotonic(), reason, failing=loud)
        if not loud:
            log.info("discovery stream ended: %s", reason)
            return
        table = self._state.table
        log.error(
            "cannot get snapshot updates from %s (%s); serving %s, unconfirmed for %.0f s",
            self._target,
            reason,
            f"snapshot {table.version}" if table else "nothing",
            self._state.stale_seconds(time.monotonic()),
        )

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
        async with self.control_planes.new_channel(self._target) as channel:
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
        """Decides off the event loop (an update is verified and built there), then acts."""
        decision = await asyncio.to_thread(decide, response, self._state.table)
        await self._enact(decision)
        return decision.reply

    async def _enact(self, decision: Confirm | Swap | Refuse) -> None:
        state = self._state
        if isinstance(decision, Confirm):
            # Nothing to apply or acknowledge, but the snapshot is confirmed.
            if state.table is not None:
                state.confirmed()
            return
        if isinstance(decision, Refuse):
            state.metrics.rejections += 1
            state.unconfirmed(time.monotonic(), decision.reason, failing=True)
            log.error("%s; keeps serving the previous snapshot", decision.reason)
            return
        state.swap(decision.table, generated_at=decision.generated_at, now=time.time())
        state.metrics.loaded_from_cache = False
        state.confirmed()
        log.info("applied snapshot %d", decision.version)
        if self._cache is not None:
            try:
                await asyncio.to_thread(
                    self._cache.save, decision.version, decision.sha256, decision.payload
                )
            except OSError as error:
                # Serving matters more than the cache; the next snapshot retries.
                log.warning("could not write the snapshot cache: %s", error)
