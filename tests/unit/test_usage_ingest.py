"""A proxy's batch on the control plane: priced, checked, and what it says of each key."""

from __future__ import annotations

import pytest
from keyway.v1 import discovery_pb2 as pb

from control_plane.domain.errors import InvalidArgument
from control_plane.domain.pricing import Price
from control_plane.snapshots.usage_ingest import attempts_of, key_usage

PRICES = {"openai/gpt-4o": Price(2.5, 10.0, 1.25)}


def record(attempt: int, key: str, outcome: str, status: int, **extra: object) -> pb.AttemptRecord:
    fields: dict[str, object] = {
        "request_id": "req_1",
        "account_id": "acct",
        "access_key_id": "ak_1",
        "provider_id": "openai",
        "upstream_model": "gpt-4o",
        "provider_key_id": key,
        "attempt": attempt,
        "outcome": outcome,
        "reason": outcome,
        "status": status,
    }
    r = pb.AttemptRecord(**{**fields, **extra})  # type: ignore[arg-type]
    r.request_time.FromMicroseconds(1_000_000)
    return r


def batch(*records: pb.AttemptRecord) -> pb.ReportUsageRequest:
    return pb.ReportUsageRequest(node_id="n", batch_id="b1", attempts=records)


def test_attempts_are_priced_with_the_control_planes_prices() -> None:
    priced, unpriced, untokened = attempts_of(
        batch(
            record(1, "pk_1", "success", 200, tokens=pb.TokenCounts(input=1000, output=100)),
            record(
                1,
                "pk_1",
                "success",
                200,
                upstream_model="other",
                tokens=pb.TokenCounts(input=5),
            ),
            record(1, "pk_1", "success", 200),
        ),
        PRICES,
    )
    assert priced.cost_nanos == 3_500_000
    assert unpriced.cost_nanos is None
    assert unpriced.tokens is not None
    assert untokened.tokens is None
    assert untokened.cost_nanos is None


def test_a_failover_leaves_the_first_keys_error_and_the_second_keys_success() -> None:
    attempts = attempts_of(
        batch(
            record(1, "pk_1", "rate_limited", 429),
            record(2, "pk_2", "success", 200, final=True),
            record(1, "pk_3", "fail_fast", 400),
            record(1, "pk_4", "client_cancelled", 0),
        ),
        PRICES,
    )
    keys, access = key_usage(attempts)
    by_id = {k.key_id: k for k in keys}
    assert (by_id["pk_1"].error_status, by_id["pk_1"].last_success_us) == (429, None)
    assert by_id["pk_2"].last_success_us is not None
    assert by_id["pk_2"].error_time_us is None
    # The client's bad request and its leaving say nothing about those keys.
    assert by_id["pk_3"].error_time_us is None
    assert by_id["pk_4"].error_time_us is None
    assert [a.key_id for a in access] == ["ak_1"]


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.ReportUsageRequest(attempts=[record(1, "k", "success", 200)]), "batch_id"),
        (batch(record(1, "k" * 300, "success", 200)), "attempts[0].provider_key_id"),
        (batch(record(-1, "k", "success", 200)), "attempts[0].attempt"),
        (batch(pb.AttemptRecord(request_id="r")), "attempts[0]"),
    ],
)
def test_a_malformed_batch_names_the_field(request_: pb.ReportUsageRequest, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        attempts_of(request_, PRICES)
    assert field in [v.field for v in caught.value.violations]


@pytest.mark.parametrize(
    ("sent", "stored"),
    [(12.3456789, 12.346), (-5.0, 0.0), (float("nan"), 0.0), (float("inf"), 0.0), (1e12, 0.0)],
)
def test_timings_are_rounded_to_the_microsecond_and_impossible_ones_stored_as_zero(
    sent: float, stored: float
) -> None:
    (a,) = attempts_of(batch(record(1, "pk_1", "success", 200, duration_ms=sent)), PRICES)
    assert a.duration_ms == stored
