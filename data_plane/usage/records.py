"""What the proxy keeps of each request: one record per upstream attempt.

A request's stages fill in its `RequestTrace` as they go (plain attribute writes: the
request path does nothing more); when the request ends, `records` turns it into
`AttemptRecord` values, one per attempt, or a single attempt-0 record for a request
refused before it reached a provider. Outcomes use the failover engine's kinds
(`routing.outcome.OutcomeKind`, e.g. `success`, `rate_limited`, `fail_fast`), plus
`client_cancelled` (the client left), `stream_error` (the upstream broke after the
answer started) and, for attempt 0, the error code the client received. Records never
hold a secret, a prompt or a completion.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .tokens import Tokens

CLIENT_CANCELLED = "client_cancelled"
STREAM_ERROR = "stream_error"
SUCCESS = "success"


@dataclass(slots=True)
class AttemptTrace:
    """One attempt while it runs; times are `ProxyContext.timer` seconds."""

    attempt: int
    provider_id: str
    upstream_model: str
    provider_key_id: str
    started: float
    headers_at: float = 0.0
    first_byte_at: float = 0.0
    ended_at: float = 0.0
    outcome: str = ""
    reason: str = ""
    status: int = 0
    tokens: Tokens | None = None
    span: object | None = None
    """Its tracing span, with `--otlp-endpoint` only."""


@dataclass(slots=True)
class RequestTrace:
    """One request while it runs: filled in by its stages."""

    request_id: str
    time: float
    """Wall-clock seconds when it arrived."""
    started: float
    """`ProxyContext.timer` then."""
    surface: str
    account_id: str = ""
    """Empty until the caller is authenticated (and for ever, for a refused token)."""
    access_key_id: str = ""
    configuration_id: str = ""
    requested_model: str = ""
    attempts: list[AttemptTrace] = field(default_factory=list)
    status: int = 0
    """The status the client received, 0 when none was sent."""
    error: str = ""
    """The error code the client received, or `client_cancelled`."""
    streamed: bool = False
    ended: float = 0.0
    span: object | None = None
    """Its tracing span, with `--otlp-endpoint` only."""


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    request_id: str
    time: float
    account_id: str
    access_key_id: str
    configuration_id: str
    surface: str
    requested_model: str
    provider_id: str
    upstream_model: str
    provider_key_id: str
    attempt: int
    outcome: str
    reason: str
    status: int
    headers_ms: float
    first_byte_ms: float
    duration_ms: float
    tokens: Tokens | None
    final: bool


def _ms(start: float, at: float) -> float:
    return round((at - start) * 1000, 3) if at else 0.0


def records(trace: RequestTrace) -> list[AttemptRecord]:
    """The request's records; none for a caller that was never authenticated."""
    if not trace.account_id:
        return []
    common = (
        trace.request_id,
        trace.time,
        trace.account_id,
        trace.access_key_id,
        trace.configuration_id,
        trace.surface,
        trace.requested_model,
    )
    if not trace.attempts:
        return [
            AttemptRecord(
                *common, "", trace.requested_model, "", 0, trace.error or SUCCESS, "",
                trace.status, 0.0, 0.0, _ms(trace.started, trace.ended), None, True,
            )
        ]  # fmt: skip
    last = len(trace.attempts) - 1
    return [
        AttemptRecord(
            *common,
            a.provider_id,
            a.upstream_model,
            a.provider_key_id,
            a.attempt,
            a.outcome,
            a.reason,
            a.status,
            _ms(a.started, a.headers_at),
            _ms(a.started, a.first_byte_at),
            _ms(a.started, a.ended_at or trace.ended),
            a.tokens,
            i == last,
        )
        for i, a in enumerate(trace.attempts)
    ]
