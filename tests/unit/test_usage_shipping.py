"""The proxy's usage buffer and shipper: bounded, oldest dropped first, batches resent whole."""

from __future__ import annotations

import grpc
import pytest
from keyway.v1 import discovery_pb2 as pb

from data_plane.usage.records import AttemptTrace, RequestTrace, records
from data_plane.usage.shipping import BATCH_RECORDS, Shipper, UsageBuffer
from data_plane.usage.tokens import Tokens


def trace(request_id: str, *outcomes: str) -> RequestTrace:
    t = RequestTrace(request_id, 1_000.0, 5.0, "/v1/chat/completions", "acct", "ak", "", "gpt-4o")
    for i, outcome in enumerate(outcomes, 1):
        a = AttemptTrace(i, "openai", "gpt-4o", f"pk_{i}", 5.0 + i, 5.01 + i, 5.02 + i)
        a.outcome, a.status = outcome, 200 if outcome == "success" else 429
        a.ended_at = 5.5 + i
        t.attempts.append(a)
    if t.attempts:
        t.attempts[-1].tokens = Tokens(3, 4)
    t.status, t.ended = 200, 9.0
    return t


def test_a_request_makes_one_record_per_attempt_and_the_last_is_final() -> None:
    made = records(trace("req_1", "rate_limited", "success"))
    assert [(r.attempt, r.provider_key_id, r.outcome, r.final) for r in made] == [
        (1, "pk_1", "rate_limited", False),
        (2, "pk_2", "success", True),
    ]
    assert (made[1].headers_ms, made[1].first_byte_ms, made[1].duration_ms) == (10.0, 20.0, 500.0)
    assert made[1].tokens == Tokens(3, 4)


def test_a_request_refused_before_any_attempt_is_one_attempt_zero_record() -> None:
    refused = trace("req_2")
    refused.error, refused.status = "concurrency_limit", 429
    (made,) = records(refused)
    assert (made.attempt, made.outcome, made.status, made.final) == (
        0,
        "concurrency_limit",
        429,
        True,
    )
    assert made.upstream_model == "gpt-4o"


def test_an_unauthenticated_request_leaves_no_record() -> None:
    anonymous = trace("req_3")
    anonymous.account_id = ""
    assert records(anonymous) == []


def test_a_full_buffer_drops_the_oldest_and_counts_them() -> None:
    buffer = UsageBuffer(capacity=3)
    for i in range(5):
        buffer.add(records(trace(f"req_{i}", "success")))
    assert len(buffer) == 3
    assert buffer.dropped == 2
    assert [r.request_id for r in buffer.take(10)] == ["req_2", "req_3", "req_4"]


def test_an_unacknowledged_batch_is_resent_with_the_same_id_and_records() -> None:
    buffer = UsageBuffer()
    shipper = Shipper(buffer, "node-1")
    for i in range(BATCH_RECORDS + 5):
        buffer.add(records(trace(f"req_{i}", "success")))
    first = shipper.next_batch()
    assert first is not None
    assert len(first.attempts) == BATCH_RECORDS
    buffer.add(records(trace("late", "success")))
    again = shipper.next_batch()
    assert again is not None
    assert again.batch_id == first.batch_id
    assert list(again.attempts) == list(first.attempts)
    shipper.acknowledged()
    second = shipper.next_batch()
    assert second is not None
    assert second.batch_id != first.batch_id
    assert [a.request_id for a in second.attempts][-1] == "late"
    assert len(second.attempts) == 6
    shipper.acknowledged()
    assert shipper.next_batch() is None
    assert shipper.shipped == BATCH_RECORDS + 6


class _Stub:
    """Fails the first `failures` calls as an unreachable control plane would."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[pb.ReportUsageRequest] = []

    async def ReportUsage(self, batch: pb.ReportUsageRequest, **_: object) -> None:
        self.received.append(pb.ReportUsageRequest.FromString(batch.SerializeToString()))
        if self.failures:
            self.failures -= 1
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata()
            )


@pytest.mark.asyncio
async def test_flush_keeps_the_batch_while_the_control_plane_is_away() -> None:
    buffer = UsageBuffer()
    shipper = Shipper(buffer, "node-1")
    buffer.add(records(trace("req_1", "success")))
    stub = _Stub(failures=2)
    assert not await shipper.flush(stub, "token")  # type: ignore[arg-type]
    assert not await shipper.flush(stub, "token")  # type: ignore[arg-type]
    assert await shipper.flush(stub, "token")  # type: ignore[arg-type]
    assert len({b.batch_id for b in stub.received}) == 1
    assert shipper.shipped == 1
