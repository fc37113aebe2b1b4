"""Provider-key and access-key usage, batched back to the control plane.

The request path only writes into two dicts; a background task ships them
every few seconds, so `keyway admin provider-keys list` can say which key
fails and why without costing requests a network round trip.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from keyway.v1 import discovery_pb2 as pb
from keyway.v1 import discovery_pb2_grpc

from data_plane.routing.outcome import Outcome, OutcomeKind

if TYPE_CHECKING:
    from keyway.v1.discovery_pb2_grpc import DataPlaneDiscoveryServiceAsyncStub

log = logging.getLogger("keyway.data_plane.usage")


@dataclass(slots=True)
class _KeyUse:
    last_used: float = 0.0
    error_status: int = 0
    error_reason: str = ""
    error_time: float = 0.0
    success_time: float = 0.0


def _ts(seconds: float) -> Timestamp | None:
    if not seconds:
        return None
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


class UsageRecorder:
    def __init__(self) -> None:
        self._keys: dict[str, _KeyUse] = {}
        self._access: dict[str, float] = {}

    def provider_key(self, key_id: str, outcome: Outcome, now: float) -> None:
        """Records an attempt's outcome; a relayed answer (a 4xx the client caused) and an
        attempt the request's own deadline cut short are not the key's fault."""
        use = self._keys.get(key_id)
        if use is None:
            use = self._keys[key_id] = _KeyUse()
        use.last_used = now
        kind = outcome.kind
        if kind is OutcomeKind.SUCCESS:
            use.success_time = now
        elif kind is not OutcomeKind.FAIL_FAST and kind is not OutcomeKind.DEADLINE:
            use.error_status = outcome.status or 0
            use.error_reason = outcome.reason
            use.error_time = now

    def access_key(self, access_key_id: str, now: float) -> None:
        self._access[access_key_id] = now

    def drain(self, node_id: str) -> pb.ReportUsageRequest | None:
        if not self._keys and not self._access:
            return None
        keys, self._keys = self._keys, {}
        access, self._access = self._access, {}
        return pb.ReportUsageRequest(
            node_id=node_id,
            provider_keys=[
                pb.ProviderKeyUsage(
                    provider_key_id=key_id,
                    last_used_time=_ts(use.last_used),
                    last_error_status=use.error_status,
                    last_error_reason=use.error_reason,
                    last_error_time=_ts(use.error_time),
                    last_success_time=_ts(use.success_time),
                )
                for key_id, use in keys.items()
            ],
            access_keys=[
                pb.AccessKeyUsage(access_key_id=key_id, last_used_time=_ts(when))
                for key_id, when in access.items()
            ],
        )


async def report_forever(
    recorder: UsageRecorder,
    channel: Callable[[], grpc.aio.Channel],
    token: str,
    node_id: str,
    interval: float = 2.0,
) -> None:
    """Every `interval`, to the control plane `channel()` is on (the stream's, which moves
    between replicas)."""
    metadata = (("authorization", f"Bearer {token}"),)

    def stub() -> DataPlaneDiscoveryServiceAsyncStub:
        return discovery_pb2_grpc.DataPlaneDiscoveryServiceStub(channel())

    try:
        while True:
            await asyncio.sleep(interval)
            await _flush(stub(), recorder, metadata, node_id)
    finally:
        # On shutdown, one last best-effort flush.
        await _flush(stub(), recorder, metadata, node_id)


async def _flush(
    stub: DataPlaneDiscoveryServiceAsyncStub,
    recorder: UsageRecorder,
    metadata: tuple[tuple[str, str]],
    node_id: str,
) -> None:
    batch = recorder.drain(node_id)
    if batch is None:
        return
    try:
        await stub.ReportUsage(batch, metadata=metadata, timeout=5)
    except grpc.aio.AioRpcError as error:
        # Usage is advisory: losing one batch only delays "last used".
        log.info("could not report usage: %s", error.code().name)
