"""The usage ledger in SQL, for both adapters: attempt records, hourly rollups, batch ids.

Shares the store's session, so a batch, its rollups and the keys' last use are written in
one transaction. Rollup rows are keyed by hour, account, access key,
provider key, provider, model and outcome; every query reads only them, except
`request`, which reads one request's raw rows by primary key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from control_plane.store.records import (
    AccessKeyUsage,
    KeyUsage,
    TokenCounts,
    UsageAttempt,
    UsageBucket,
    UsageQuery,
    UsageTotals,
)

from .session import Session

_HOUR_US = UsageBucket.HOUR.value
_SUCCESS = "success"
_ATTEMPT_COLUMNS = (
    "request_id, attempt, time, node_id, account_id, access_key_id, configuration_id, surface, "
    "requested_model, provider_id, upstream_model, provider_key_id, outcome, reason, status, "
    "headers_ms, first_byte_ms, duration_ms, input_tokens, output_tokens, cached_tokens, "
    "reasoning_tokens, cost_nanos, final"
)
_INSERT_ATTEMPT = (
    f"INSERT INTO usage_attempts ({_ATTEMPT_COLUMNS}) "  # noqa: S608 - constant
    f"VALUES ({', '.join('?' * 24)}) ON CONFLICT (request_id, attempt) DO NOTHING"
)
_ADD_ROLLUP = """
    INSERT INTO usage_hourly (hour, account_id, access_key_id, provider_key_id, provider_id,
        model, outcome, requests, attempts, failovers, input_tokens, output_tokens,
        cached_tokens, reasoning_tokens, cost_nanos, unpriced_attempts)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (hour, account_id, access_key_id, provider_key_id, provider_id, model, outcome)
    DO UPDATE SET requests = usage_hourly.requests + excluded.requests,
        attempts = usage_hourly.attempts + excluded.attempts,
        failovers = usage_hourly.failovers + excluded.failovers,
        input_tokens = usage_hourly.input_tokens + excluded.input_tokens,
        output_tokens = usage_hourly.output_tokens + excluded.output_tokens,
        cached_tokens = usage_hourly.cached_tokens + excluded.cached_tokens,
        reasoning_tokens = usage_hourly.reasoning_tokens + excluded.reasoning_tokens,
        cost_nanos = usage_hourly.cost_nanos + excluded.cost_nanos,
        unpriced_attempts = usage_hourly.unpriced_attempts + excluded.unpriced_attempts
"""
# PostgreSQL sums BIGINTs as NUMERIC: cast back, so both adapters answer integers.
_SUMS = ", ".join(
    f"CAST(SUM({column}) AS BIGINT)"
    for column in (
        "requests", "attempts", "failovers", "input_tokens", "output_tokens",
        "cached_tokens", "reasoning_tokens", "cost_nanos", "unpriced_attempts",
    )
)  # fmt: skip


def _attempt_row(a: UsageAttempt) -> list[Any]:
    t = a.tokens
    counts: list[Any] = (
        [None] * 4 if t is None else [t.input, t.output, t.cached_input, t.reasoning]
    )
    return [
        a.request_id, a.attempt, a.time_us, a.node_id, a.account_id, a.access_key_id,
        a.configuration_id, a.surface, a.requested_model, a.provider_id, a.upstream_model,
        a.provider_key_id, a.outcome, a.reason, a.status, a.headers_ms, a.first_byte_ms,
        a.duration_ms, *counts, a.cost_nanos, int(a.final),
    ]  # fmt: skip


def _rollup_row(a: UsageAttempt) -> list[Any]:
    t = a.tokens or TokenCounts()
    model = a.upstream_model or a.requested_model
    tried = a.attempt > 0
    return [
        a.time_us - a.time_us % _HOUR_US, a.account_id, a.access_key_id, a.provider_key_id,
        a.provider_id, model, a.outcome, int(a.final), int(tried), int(tried and not a.final),
        t.input, t.output, t.cached_input, t.reasoning, a.cost_nanos or 0,
        int(a.tokens is not None and a.cost_nanos is None),
    ]  # fmt: skip


_ROLLUP_KEY = 7
"""`_rollup_row`'s leading columns that name its `usage_hourly` row; the rest are sums."""


def _rollups(attempts: Sequence[UsageAttempt]) -> list[list[Any]]:
    """`_rollup_row` of every attempt, rows with the same key summed."""
    merged: dict[tuple[Any, ...], list[Any]] = {}
    for a in attempts:
        row = _rollup_row(a)
        key = tuple(row[:_ROLLUP_KEY])
        found = merged.get(key)
        if found is None:
            merged[key] = row
        else:
            for i in range(_ROLLUP_KEY, len(row)):
                found[i] += row[i]
    # In key order, so that two replicas adding to the same rows lock them in one order.
    return [merged[key] for key in sorted(merged)]


class _SeenBeforeError(Exception):
    """A batch holds an attempt already stored."""


def _attempt(row: tuple[Any, ...]) -> UsageAttempt:
    (request_id, attempt, time_us, node_id, account_id, access_key_id, configuration_id,
     surface, requested_model, provider_id, upstream_model, provider_key_id, outcome, reason,
     status, headers_ms, first_byte_ms, duration_ms, input_tokens, output_tokens,
     cached_tokens, reasoning_tokens, cost_nanos, final) = row  # fmt: skip
    tokens = (
        None
        if input_tokens is None
        else TokenCounts(input_tokens, output_tokens, cached_tokens, reasoning_tokens)
    )
    return UsageAttempt(
        request_id=request_id,
        time_us=time_us,
        node_id=node_id,
        account_id=account_id,
        access_key_id=access_key_id,
        configuration_id=configuration_id,
        surface=surface,
        requested_model=requested_model,
        provider_id=provider_id,
        upstream_model=upstream_model,
        provider_key_id=provider_key_id,
        attempt=attempt,
        outcome=outcome,
        reason=reason,
        status=status,
        headers_ms=headers_ms,
        first_byte_ms=first_byte_ms,
        duration_ms=duration_ms,
        tokens=tokens,
        cost_nanos=cost_nanos,
        final=bool(final),
    )


def record_key_usage(
    db: Session, provider_keys: Sequence[KeyUsage], access_keys: Sequence[AccessKeyUsage]
) -> None:
    """Last used / last success / last error of keys; an older report never wins.

    In id order, so that two replicas recording at once lock rows in one order.
    """
    for u in sorted(provider_keys, key=lambda u: u.key_id):
        for column, when in (
            ("last_used_time", u.last_used_us),
            ("last_success_time", u.last_success_us),
        ):
            if when:
                db.execute(
                    f"UPDATE provider_keys SET {column} = ? "  # noqa: S608 - constant
                    f"WHERE id = ? AND coalesce({column}, 0) < ?",
                    [when, u.key_id, when],
                )
        if u.error_time_us:
            db.execute(
                "UPDATE provider_keys SET last_error_status = ?, last_error_reason = ?, "
                "last_error_time = ? WHERE id = ? AND coalesce(last_error_time, 0) < ?",
                [u.error_status, u.error_reason[:255], u.error_time_us, u.key_id, u.error_time_us],
            )
    for a in sorted(access_keys, key=lambda a: a.key_id):
        db.execute(
            "UPDATE access_keys SET last_used_time = ? "
            "WHERE id = ? AND coalesce(last_used_time, 0) < ?",
            [a.last_used_us, a.key_id, a.last_used_us],
        )


class RelationalUsage:
    """`UsageLedger` on the store's session."""

    def __init__(self, db: Session, clock: Callable[[], int]) -> None:
        self._db = db
        self._clock = clock

    def ingest(
        self,
        batch_id: str,
        node_id: str,
        attempts: Sequence[UsageAttempt],
        provider_keys: Sequence[KeyUsage],
        access_keys: Sequence[AccessKeyUsage],
    ) -> bool:
        with self._db.held(), self._db.atomic():
            conn = self._db
            if batch_id:
                added = conn.execute(
                    "INSERT INTO usage_batches (batch_id, node_id, received_time) "
                    "VALUES (?, ?, ?) ON CONFLICT (batch_id) DO NOTHING",
                    [batch_id, node_id, self._clock()],
                ).rowcount
                if not added:
                    return False
            rows = [_attempt_row(a) for a in attempts]
            if not rows:
                record_key_usage(conn, provider_keys, access_keys)
                return True
            try:
                # Nearly always every attempt is new: all inserted at once, then one rollup
                # row per hour, key, model and outcome.
                with conn.atomic():
                    if conn.executemany(_INSERT_ATTEMPT, rows) != len(rows):
                        raise _SeenBeforeError
                    conn.executemany(_ADD_ROLLUP, _rollups(attempts))
            except _SeenBeforeError:
                # A (request id, attempt) seen before is not added again, even in a new batch.
                for a, row in zip(attempts, rows, strict=True):
                    if conn.execute(_INSERT_ATTEMPT, row).rowcount:
                        conn.execute(_ADD_ROLLUP, _rollup_row(a))
            record_key_usage(conn, provider_keys, access_keys)
            return True

    def totals(self, query: UsageQuery) -> list[UsageTotals]:
        start = query.start_us - query.start_us % _HOUR_US
        size = query.bucket.value
        dims = [d.value for d in query.group_by]
        where = ["hour >= ?", "hour < ?"]
        args: list[Any] = [start, query.end_us]
        for dimension, value in query.filters:
            where.append(f"{dimension.value} = ?")
            args.append(value)
        # Without buckets every row starts at `start`, added below: a constant in GROUP BY
        # would be read as a column position.
        keys = ", ".join([*([f"hour - hour % {size}"] if size else []), *dims, "outcome"])
        sql = (
            f"SELECT {keys}, {_SUMS} FROM usage_hourly "  # noqa: S608 - names from enums
            f"WHERE {' AND '.join(where)} GROUP BY {keys} ORDER BY {keys}"
        )
        with self._db.held(), self._db.reading():
            rows = [tuple(row) if size else (start, *row) for row in self._db.execute(sql, args)]
        merged: dict[tuple[Any, ...], list[Any]] = {}
        width = len(dims) + 1
        for row in rows:
            key, outcome, sums = tuple(row[:width]), row[width], list(row[width + 1 :])
            found = merged.get(key)
            if found is None:
                merged[key] = found = [[0] * 9, {}]
            found[0] = [x + y for x, y in zip(found[0], sums, strict=True)]
            if outcome != _SUCCESS and sums[0]:
                found[1][outcome] = found[1].get(outcome, 0) + sums[0]
        return [
            UsageTotals(
                bucket_start_us=key[0],
                group=tuple(key[1:]),
                requests=s[0],
                attempts=s[1],
                failovers=s[2],
                errors=tuple(sorted(errors.items())),
                input_tokens=s[3],
                output_tokens=s[4],
                cached_tokens=s[5],
                reasoning_tokens=s[6],
                cost_nanos=s[7],
                unpriced_attempts=s[8],
            )
            for key, (s, errors) in merged.items()
        ]

    def request(self, request_id: str, account_id: str | None) -> list[UsageAttempt]:
        sql = f"SELECT {_ATTEMPT_COLUMNS} FROM usage_attempts WHERE request_id = ?"  # noqa: S608
        args: list[Any] = [request_id]
        if account_id is not None:
            sql += " AND account_id = ?"
            args.append(account_id)
        with self._db.held():
            rows = self._db.execute(sql + " ORDER BY attempt", args).fetchall()
        return [_attempt(row) for row in rows]

    def prune(self, *, attempts_before_us: int, rollups_before_us: int) -> int:
        with self._db.held(), self._db.atomic():
            conn = self._db
            return sum(
                conn.execute(sql, [before]).rowcount
                for sql, before in (
                    ("DELETE FROM usage_attempts WHERE time < ?", attempts_before_us),
                    ("DELETE FROM usage_batches WHERE received_time < ?", attempts_before_us),
                    ("DELETE FROM usage_hourly WHERE hour < ?", rollups_before_us),
                )
            )
