"""Attempt records, buffered in the proxy and shipped to the control plane in batches.

The request path only appends its finished `RequestTrace` to a list (see `Observer`); the
digest turns the traces into protobuf records in a bounded `UsageBuffer`, off the
request path. A background task takes up to
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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc
from keyway.v1 import discovery_pb2 as pb
from keyway.v1 import discovery_pb2_grpc

from .records import SUCCESS, RequestTrace

if TYPE_CHECKING:
    from keyway.v1.discovery_pb2_grpc import DataPlaneDiscoveryServiceAsyncStub

log = logging.getLogger("keyway.data_plane.usage")

BATCH_RECORDS = 1000
DEFAULT_CAPACITY = 100_000
MAX_BACKOFF = 30.0


class UsageBuffer:
    """Records waiting to be shipped, oldest first, at most `capacity` of them.

    Kept as protobuf batches of up to `BATCH_RECORDS` records, filled as requests are
    added: a finished request's objects are released at once (not held for seconds, where
    the garbage collector would keep scanning them), and a batch is ready to send as is.
    """

    __slots__ = ("_batches", "capacity", "dropped", "records")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("the usage buffer must hold at least 1 record")
        self.capacity = capacity
        self._batches: deque[pb.ReportUsageRequest] = deque()
        self.records = 0
        self.dropped = 0
        """Records dropped, oldest first, to stay within `capacity` (since start)."""

    def add_all(self, traces: list[RequestTrace]) -> None:
        """The records of these finished requests (none for a caller never authenticated)."""
        batches = self._batches
        added = 0
        for trace in traces:
            if not trace.account_id:
                continue
            if not batches or len(batches[-1].attempts) >= BATCH_RECORDS:
                batches.append(pb.ReportUsageRequest())
            added += add_messages(trace, batches[-1].attempts)
        self.records += added
        if self.records > self.capacity:
            self._drop(self.records - self.capacity)

    def _drop(self, count: int) -> None:
        """Drops the oldest `count` records, and the rest of the request of the last one."""
        batches = self._batches
        while count > 0 and batches:
            oldest = batches[0].attempts
            cut = min(count, len(oldest))
            # A request's records are adjacent: never keep half of one.
            while cut < len(oldest) and oldest[cut].request_id == oldest[cut - 1].request_id:
                cut += 1
            del oldest[:cut]
            count -= cut
            self.records -= cut
            self.dropped += cut
            if not oldest:
                batches.popleft()

    def __len__(self) -> int:
        return self.records

    def take(self) -> pb.ReportUsageRequest | None:
        """The oldest batch (at most `BATCH_RECORDS` records), or None when empty."""
        if not self._batches:
            return None
        batch = self._batches.popleft()
        self.records -= len(batch.attempts)
        return batch


def add_messages(trace: RequestTrace, into: Any) -> int:
    """A finished request's records, added to the repeated field `into`: one per attempt,
    or an attempt-0 record when it made none; none for a caller never authenticated.
    Returns how many it added.

    Runs once per request, so it is written for upb: every field, sub-messages as dicts,
    in one `add` call (each attribute write on a record costs as much as the whole call),
    and milliseconds unrounded (the control plane rounds them when it stores them).
    """
    if not trace.account_id:
        return 0
    seconds = int(trace.time)
    when = {"seconds": seconds, "nanos": int((trace.time - seconds) * 1e6) * 1000}
    if not trace.attempts:
        into.add(
            request_id=trace.request_id,
            request_time=when,
            account_id=trace.account_id,
            access_key_id=trace.access_key_id,
            configuration_id=trace.configuration_id,
            surface=trace.surface,
            requested_model=trace.requested_model,
            upstream_model=trace.requested_model,
            outcome=trace.error or SUCCESS,
            status=trace.status,
            duration_ms=(trace.ended - trace.started) * 1000,
            final=True,
        )
        return 1
    last = trace.attempts[-1]
    for a in trace.attempts:
        started, tokens = a.started, a.tokens
        into.add(
            request_id=trace.request_id,
            request_time=when,
            account_id=trace.account_id,
            access_key_id=trace.access_key_id,
            configuration_id=trace.configuration_id,
            surface=trace.surface,
            requested_model=trace.requested_model,
            provider_id=a.provider_id,
            upstream_model=a.upstream_model,
            provider_key_id=a.provider_key_id,
            attempt=a.attempt,
            outcome=a.outcome,
            reason=a.reason,
            status=a.status,
            headers_ms=(a.headers_at - started) * 1000 if a.headers_at else 0.0,
            first_byte_ms=(a.first_byte_at - started) * 1000 if a.first_byte_at else 0.0,
            duration_ms=((a.ended_at or trace.ended) - started) * 1000,
            final=a is last,
            tokens=None
            if tokens is None
            else {
                "input": tokens.input,
                "output": tokens.output,
                "cached_input": tokens.cached_input,
                "reasoning": tokens.reasoning,
            },
        )
    return len(trace.attempts)


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
            batch = self.buffer.take()
            if batch is None:
                return None
            batch.node_id, batch.batch_id = self.node_id, uuid.uuid4().hex
            self._pending = batch
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
    shipper: Shipper,
    channel: Callable[[], grpc.aio.Channel],
    token: str,
    interval: float = 2.0,
    prepare: Callable[[], None] = lambda: None,
) -> None:
    """Ships every `interval` seconds to the control plane `channel()` is on (the snapshot
    stream's, which moves between replicas); `prepare` (which must not raise) first moves
    finished requests in."""

    def stub() -> DataPlaneDiscoveryServiceAsyncStub:
        return discovery_pb2_grpc.DataPlaneDiscoveryServiceStub(channel())

    pause = interval
    try:
        while True:
            await asyncio.sleep(pause)
            prepare()
            delivered = await shipper.flush(stub(), token)
            pause = interval if delivered else min(MAX_BACKOFF, pause * 2)
    finally:
        # On shutdown, one last best-effort flush.
        prepare()
        await shipper.flush(stub(), token)
