"""The usage ledger's contract (`Store.usage`), run against every adapter.

A batch is stored once however often it is sent; totals come from the hourly rollups,
by bucket and group; one request's attempts come back in order; retention drops rows.
None of it moves the revision.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from control_plane.store.port import Store
from control_plane.store.records import (
    TokenCounts,
    UsageAttempt,
    UsageBucket,
    UsageDimension,
    UsageQuery,
)

from .stores import ADAPTERS, opened

HOUR = 3600 * 1_000_000
T0 = 1_764_547_200_000_000  # 2025-12-01T00:00:00Z


@pytest.fixture(params=sorted(ADAPTERS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with opened(str(request.param), tmp_path) as opened_store:
        yield opened_store


def attempt(request_id: str, number: int = 1, **changes: object) -> UsageAttempt:
    base = UsageAttempt(
        request_id=request_id,
        time_us=T0 + 60_000_000,
        node_id="node-1",
        account_id="acct_a",
        access_key_id="ak_1",
        configuration_id="",
        surface="/v1/chat/completions",
        requested_model="gpt-4o",
        provider_id="openai",
        upstream_model="gpt-4o",
        provider_key_id="pk_1",
        attempt=number,
        outcome="success",
        reason="Served",
        status=200,
        headers_ms=20.5,
        first_byte_ms=21.0,
        duration_ms=22.0,
        tokens=TokenCounts(100, 10, 40, 0),
        cost_nanos=260_000,
        final=True,
    )
    return base._replace(**changes)  # type: ignore[arg-type]


FAILOVER = [
    attempt(
        "req_f",
        1,
        provider_key_id="pk_1",
        outcome="rate_limited",
        reason="Rate limited by provider",
        status=429,
        tokens=None,
        cost_nanos=None,
        final=False,
    ),
    attempt("req_f", 2, provider_key_id="pk_2"),
]


def everything(store: Store, **query: object) -> UsageQuery:
    return UsageQuery(start_us=T0, end_us=T0 + 48 * HOUR, **query)  # type: ignore[arg-type]


def test_a_batch_sent_twice_is_counted_once_and_does_not_move_the_revision(store: Store) -> None:
    revision = store.revision()
    assert store.usage.ingest("batch-1", "node-1", FAILOVER, [], [])
    assert not store.usage.ingest("batch-1", "node-1", FAILOVER, [], [])
    (row,) = store.usage.totals(everything(store))
    assert (row.requests, row.attempts, row.failovers) == (1, 2, 1)
    assert (row.input_tokens, row.output_tokens, row.cached_tokens) == (100, 10, 40)
    assert row.cost_nanos == 260_000
    assert row.errors == ()
    assert store.revision() == revision


def test_an_attempt_resent_in_another_batch_is_not_counted_again(store: Store) -> None:
    store.usage.ingest("batch-1", "node-1", FAILOVER, [], [])
    store.usage.ingest("batch-2", "node-1", [FAILOVER[1], attempt("req_b")], [], [])
    (row,) = store.usage.totals(everything(store))
    assert (row.requests, row.attempts) == (2, 3)


def test_totals_by_day_and_model_with_errors_by_outcome(store: Store) -> None:
    day2 = T0 + 24 * HOUR + 5 * HOUR
    store.usage.ingest(
        "b",
        "node-1",
        [
            *FAILOVER,
            attempt("req_ff", outcome="fail_fast", status=400, tokens=None, cost_nanos=None),
            attempt("req_c", upstream_model="claude-x", provider_id="anthropic", cost_nanos=None),
            attempt("req_d", time_us=day2, tokens=TokenCounts(7, 3, 0, 1), cost_nanos=50),
            attempt(
                "req_0",
                0,
                provider_id="",
                upstream_model="",
                provider_key_id="",
                outcome="concurrency_limit",
                status=429,
                tokens=None,
                cost_nanos=None,
            ),
        ],
        [],
        [],
    )
    rows = store.usage.totals(
        everything(store, bucket=UsageBucket.DAY, group_by=(UsageDimension.MODEL,))
    )
    got = {(r.bucket_start_us, r.group): r for r in rows}
    assert sorted(got) == [(T0, ("claude-x",)), (T0, ("gpt-4o",)), (T0 + 24 * HOUR, ("gpt-4o",))]
    first = got[(T0, ("gpt-4o",))]
    # The refused request counts under the model it asked for; it made no attempt.
    assert (first.requests, first.attempts, first.failovers) == (3, 3, 1)
    assert first.errors == (("concurrency_limit", 1), ("fail_fast", 1))
    claude = got[(T0, ("claude-x",))]
    assert (claude.cost_nanos, claude.unpriced_attempts) == (0, 1)
    second = got[(T0 + 24 * HOUR, ("gpt-4o",))]
    assert (second.input_tokens, second.output_tokens, second.reasoning_tokens) == (7, 3, 1)


def test_filters_and_the_range_select_rollup_hours(store: Store) -> None:
    store.usage.ingest(
        "b",
        "n",
        [
            attempt("r1"),
            attempt("r2", account_id="acct_b"),
            attempt("r3", time_us=T0 + 3 * HOUR, access_key_id="ak_2"),
        ],
        [],
        [],
    )
    by_key = store.usage.totals(
        everything(
            store,
            group_by=(UsageDimension.ACCESS_KEY,),
            filters=((UsageDimension.ACCOUNT, "acct_a"),),
        )
    )
    assert [(r.group, r.requests) for r in by_key] == [(("ak_1",), 1), (("ak_2",), 1)]
    # A start inside an hour counts that whole hour; the end is exclusive.
    late = store.usage.totals(
        UsageQuery(start_us=T0 + 2 * HOUR + 1, end_us=T0 + 3 * HOUR, group_by=())
    )
    assert late == []
    hourly = store.usage.totals(
        UsageQuery(start_us=T0 + 3 * HOUR + 5, end_us=T0 + 4 * HOUR, bucket=UsageBucket.HOUR)
    )
    assert [(r.bucket_start_us, r.requests) for r in hourly] == [(T0 + 3 * HOUR, 1)]


def test_a_request_comes_back_with_every_attempt_in_order_and_only_to_its_account(
    store: Store,
) -> None:
    store.usage.ingest("b", "node-1", list(reversed(FAILOVER)), [], [])
    attempts = store.usage.request("req_f", "acct_a")
    assert attempts == FAILOVER
    assert store.usage.request("req_f", None) == FAILOVER
    assert store.usage.request("req_f", "acct_b") == []
    assert store.usage.request("req_nope", None) == []


def test_retention_drops_old_raw_records_and_rollups_separately(store: Store) -> None:
    store.usage.ingest("b", "n", [attempt("old"), attempt("new", time_us=T0 + 10 * HOUR)], [], [])
    store.usage.prune(attempts_before_us=T0 + 5 * HOUR, rollups_before_us=T0)
    assert store.usage.request("old", None) == []
    assert len(store.usage.request("new", None)) == 1
    (row,) = store.usage.totals(everything(store))
    assert row.requests == 2  # rollups outlive raw records
    store.usage.prune(attempts_before_us=T0 + 5 * HOUR, rollups_before_us=T0 + 5 * HOUR)
    (row,) = store.usage.totals(everything(store))
    assert row.requests == 1


def test_a_batch_of_many_requests_to_one_key_adds_up_to_one_rollup(store: Store) -> None:
    requests = [attempt(f"req_{i}") for i in range(50)]
    assert store.usage.ingest("batch-1", "node-1", requests, [], [])
    (row,) = store.usage.totals(everything(store))
    assert (row.requests, row.attempts, row.failovers) == (50, 50, 0)
    assert (row.input_tokens, row.output_tokens, row.cost_nanos) == (5000, 500, 50 * 260_000)
    assert [a.request_id for a in store.usage.request("req_49", "acct_a")] == ["req_49"]
