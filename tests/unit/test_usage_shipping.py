"""The proxy's usage buffer and shipper: bounded, oldest dropped first, batches resent whole."""

from __future__ import annotations

import io

import grpc
import pytest
from keyway.v1 import discovery_pb2 as pb

from data_plane.formats import ApiFormat
from data_plane.usage import Observer
from data_plane.usage.metrics import RequestMetrics
from data_plane.usage.records import AttemptTrace, RequestTrace
from data_plane.usage.request_log import LogFormat, RequestLog
from data_plane.usage.shipping import BATCH_RECORDS, Shipper, UsageBuffer, add_messages
from data_plane.usage.tokens import AnswerUsage, Tokens


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


def messages(trace: RequestTrace) -> list[pb.AttemptRecord]:
    batch = pb.ReportUsageRequest()
    add_messages(trace, batch.attempts)
    return list(batch.attempts)


def test_a_request_makes_one_record_per_attempt_and_the_last_is_final() -> None:
    made = messages(trace("req_1", "rate_limited", "success"))
    assert [(r.attempt, r.provider_key_id, r.outcome, r.final) for r in made] == [
        (1, "pk_1", "rate_limited", False),
        (2, "pk_2", "success", True),
    ]
    timings = (made[1].headers_ms, made[1].first_byte_ms, made[1].duration_ms)
    assert timings == pytest.approx((10.0, 20.0, 500.0))  # rounded by the control plane
    assert (made[1].tokens.input, made[1].tokens.output) == (3, 4)
    assert not made[0].HasField("tokens")  # unknown, not zero
    assert made[0].request_time.ToMicroseconds() == 1_000_000_000


def test_a_request_refused_before_any_attempt_is_one_attempt_zero_record() -> None:
    refused = trace("req_2")
    refused.error, refused.status = "concurrency_limit", 429
    (made,) = messages(refused)
    assert (made.attempt, made.outcome, made.status) == (0, "concurrency_limit", 429)
    assert made.final
    assert made.upstream_model == "gpt-4o"


def test_an_unauthenticated_request_leaves_no_record() -> None:
    anonymous = trace("req_3")
    anonymous.account_id = ""
    assert messages(anonymous) == []


def test_a_full_buffer_drops_the_oldest_records_and_counts_them() -> None:
    buffer = UsageBuffer(capacity=5)
    for i in range(4):
        buffer.add_all([trace(f"req_{i}", "rate_limited", "success")])
    assert len(buffer) == 4
    assert buffer.dropped == 4
    batch = buffer.take()
    assert batch is not None
    assert [r.request_id for r in batch.attempts] == ["req_2", "req_2", "req_3", "req_3"]
    assert buffer.take() is None
    assert len(buffer) == 0


def test_finished_requests_reach_buffer_and_metrics_only_when_digested() -> None:
    observer = Observer(UsageBuffer(), RequestMetrics())
    observer.finish(trace("req_1", "success"))
    assert observer.buffer is not None
    assert len(observer.buffer) == 0
    observer.digest()
    assert len(observer.buffer) == 1
    assert observer.metrics is not None
    assert sum(observer.metrics.requests.values()) == 1


def test_an_unacknowledged_batch_is_resent_with_the_same_id_and_records() -> None:
    buffer = UsageBuffer()
    shipper = Shipper(buffer, "node-1")
    for i in range(BATCH_RECORDS + 5):
        buffer.add_all([trace(f"req_{i}", "success")])
    first = shipper.next_batch()
    assert first is not None
    assert len(first.attempts) == BATCH_RECORDS
    buffer.add_all([trace("late", "success")])
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

    def __init__(self, failures: int, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        self.failures = failures
        self.code = code
        self.received: list[pb.ReportUsageRequest] = []

    async def ReportUsage(self, batch: pb.ReportUsageRequest, **_: object) -> None:
        self.received.append(pb.ReportUsageRequest.FromString(batch.SerializeToString()))
        if self.failures:
            self.failures -= 1
            raise grpc.aio.AioRpcError(self.code, grpc.aio.Metadata(), grpc.aio.Metadata())


@pytest.mark.asyncio
async def test_flush_keeps_the_batch_while_the_control_plane_is_away() -> None:
    buffer = UsageBuffer()
    shipper = Shipper(buffer, "node-1")
    buffer.add_all([trace("req_1", "success")])
    stub = _Stub(failures=2)
    assert not await shipper.flush(stub, "token")  # type: ignore[arg-type]
    assert not await shipper.flush(stub, "token")  # type: ignore[arg-type]
    assert await shipper.flush(stub, "token")  # type: ignore[arg-type]
    assert len({b.batch_id for b in stub.received}) == 1
    assert shipper.shipped == 1


@pytest.mark.asyncio
async def test_a_batch_refused_as_malformed_is_dropped_and_counted_not_resent() -> None:
    buffer = UsageBuffer()
    shipper = Shipper(buffer, "node-1")
    buffer.add_all([trace("req_1", "rate_limited", "success")])
    stub = _Stub(failures=1, code=grpc.StatusCode.INVALID_ARGUMENT)
    assert await shipper.flush(stub, "token")  # type: ignore[arg-type]
    assert buffer.dropped == 2
    assert shipper.next_batch() is None


class _Unreadable(AnswerUsage):
    def tokens(self) -> Tokens | None:
        raise RuntimeError("a decoder bug")


def test_an_answer_whose_tokens_cannot_be_read_costs_only_its_own_counts() -> None:
    observer = Observer(UsageBuffer(), RequestMetrics())
    odd, fine = trace("req_odd", "success"), trace("req_fine", "success")
    odd.attempts[-1].tokens, odd.attempts[-1].usage = None, _Unreadable(ApiFormat.OPENAI)
    fine.attempts[-1].tokens = None
    fine.attempts[-1].usage = AnswerUsage(ApiFormat.OPENAI)
    fine.attempts[-1].usage.end_of_body(b'{"usage":{"prompt_tokens":5,"completion_tokens":2}}')
    observer.finish(odd)
    observer.finish(fine)
    observer.digest()
    assert observer.buffer is not None
    batch = observer.buffer.take()
    assert batch is not None
    counted = {r.request_id: r.HasField("tokens") for r in batch.attempts}
    assert counted == {"req_odd": False, "req_fine": True}
    assert observer.metrics is not None
    assert observer.metrics.tokens == {("openai", "gpt-4o"): [5, 2, 0, 0]}


class _ClosedStream(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError("stdout is gone")


def test_a_failing_consumer_costs_only_its_own_share_of_a_digest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = RequestLog(LogFormat.JSON, _ClosedStream())
    observer = Observer(UsageBuffer(), RequestMetrics(), log)
    observer.finish(trace("req_1", "success"))
    observer.digest()  # does not raise
    assert "request log of 1 requests lost" in caplog.text
    assert observer.buffer is not None
    assert len(observer.buffer) == 1
    assert observer.metrics is not None
    assert sum(observer.metrics.requests.values()) == 1
    observer.finish(trace("req_2", "success"))
    observer.digest()  # and the next digest goes on
    assert len(observer.buffer) == 2
