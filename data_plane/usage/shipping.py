"""Attempt records, buffered in the proxy and shipped to the control plane in batches.

The request path only appends to a bounded `UsageBuffer`. A background task takes up to
`BATCH_RECORDS` records at a time, gives the batch a random id and sends it over the
proxy's existing channel (`ReportUsage`); a batch whose reply is lost is resent with
the same id, and the control plane stores a batch id once, so a retried batch is never
counted twice. While the control plane is away the batch is retried (with a growing
pause, up to `MAX_BACKOFF` seconds) and new records wait in the buffer; once it holds
`capacity` records the oldest are dropped and counted (`keyway_usage_dropped_records_total`,
and the next batch tells the control plane). Memory is therefore bounded by `capacity`
plus one batch. A batch the control plane refuses as malformed is dropped (and counted)
rather than resent for ever.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from keyway.v1 import discovery_pb2 as pb
from keyway.v1 import discovery_pb2_grpc

from .records import AttemptRecord

if TYPE_CHECKING:
    from keyway.v1.discovery_pb2_grpc import DataPlaneDiscoveryServiceAsyncStub

log = logging.getLogger("keyway.data_plane.usage")

BATCH_RECORDS = 1000
DEFAULT_CAPACITY = 100_000
MAX_BACKOFF = 30.0


class UsageBuffer:
    """Records waiting to be shipped, oldest first, at most `capacity` of them."""

    __slots__ = ("_records", "capacity", "dropped")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("the usage buffer must hold at least 1 record")
        self.capacity = capacity
        self._records: deque[AttemptRecord] = deque()
        self.dropped = 0

    def add(self, records: Iterable[AttemptRecord]) -> None:
        queue = self._records
        for record in records:
            if len(queue) >= self.capacity:
                queue.popleft()
                self.dropped += 1
            queue.append(record)

    def __len__(self) -> int:
        return len(self._records)

    def take(self, limit: int) -> list[AttemptRecord]:
        queue = self._records
        return [queue.popleft() for _ in range(min(limit, len(queue)))]


def _timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromMicroseconds(int(seconds * 1e6))
    return ts


def _message(r: AttemptRecord) -> pb.AttemptRecord:
    tokens = r.tokens
    return pb.AttemptRecord(
        request_id=r.request_id,
        request_time=_timestamp(r.time),
        account_id=r.account_id,
        access_key_id=r.access_key_id,
        configuration_id=r.configuration_id,
        surface=r.surface,
        requested_model=r.requested_model,
        provider_id=r.provider_id,
        upstream_model=r.upstream_model,
        provider_key_id=r.provider_key_id,
        attempt=r.attempt,
        outcome=r.outcome,
        reason=r.reason,
        status=r.status,
        headers_ms=r.headers_ms,
        first_byte_ms=r.first_byte_ms,
        duration_ms=r.duration_ms,
        tokens=None
        if tokens is None
        else pb.TokenCounts(
            input=tokens.input,
            output=tokens.output,
            cached_input=tokens.cached_input,
            reasoning=tokens.reasoning,
        ),
        final=r.final,
    )


class Shipper:
    """Takes batches from the buffer and sends them, each until the control plane has it."""

    def __init__(self, buffer: UsageBuffer, node_id: str) -> None:
        self.buffer = buffer
        self.node_id = node_id
        self._pending: pb.ReportUsageRequest | None = None
        self.shipped = 0

    def next_batch(self) -> pb.ReportUsageRequest | None:
        """The batch to send: the unacknowledged one again, or a new one (None: nothing)."""
        if self._pending is None:
            taken = self.buffer.take(BATCH_RECORDS)
            if not taken:
                return None
            self._pending = pb.ReportUsageRequest(
                node_id=self.node_id,
                batch_id=uuid.uuid4().hex,
                attempts=[_message(r) for r in taken],
            )
        self._pending.dropped_records = self.buffer.dropped
        return self._pending

    def acknowledged(self) -> None:
        if self._pending is not None:
            self.shipped += len(self._pending.attempts)
        self._pending = None

    async def flush(self, stub: DataPlaneDiscoveryServiceAsyncStub, token: str) -> bool:
        """Sends every batch there is; False when one could not be delivered."""
        metadata = (("authorization", f"Bearer {token}"),)
        while (batch := self.next_batch()) is not None:
            try:
                await stub.ReportUsage(batch, metadata=metadata, timeout=5)
            except grpc.aio.AioRpcError as error:
                if error.code() is grpc.StatusCode.INVALID_ARGUMENT:
                    # Resending the same batch would be refused again: drop it, counted.
                    log.warning("usage batch refused, dropped: %s", error.details())
                    self.buffer.dropped += len(batch.attempts)
                    self._pending = None
                    continue
                log.info(
                    "could not report usage (%d records waiting): %s",
                    len(self.buffer) + len(batch.attempts),
                    error.code().name,
                )
                return False
            self.acknowledged()
        return True


async def report_forever(
    shipper: Shipper, channel: grpc.aio.Channel, token: str, interval: float = 2.0
) -> None:
    stub = discovery_pb2_grpc.DataPlaneDiscoveryServiceStub(channel)
    pause = interval
    try:
        while True:
            await asyncio.sleep(pause)
            delivered = await shipper.flush(stub, token)
            pause = interval if delivered else min(MAX_BACKOFF, pause * 2)
    finally:
        # On shutdown, one last best-effort flush.
        await shipper.flush(stub, token)
