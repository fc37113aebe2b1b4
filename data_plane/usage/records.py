"""What the proxy keeps of each request: one record per upstream attempt.

A request's stages fill in its `RequestTrace` as they go (plain attribute writes: the
request path does nothing more). Once it has ended, `settle` decodes its answers' token
counts (at the digest) and nothing changes it again: the usage buffer turns it into one
record per attempt (`shipping.add_messages`), or a single attempt-0 record for a request
refused before it reached a provider. Outcomes use the failover engine's kinds
(`routing.outcome.OutcomeKind`, e.g. `success`, `rate_limited`, `fail_fast`), plus
`client_cancelled` (the client left), `stream_error` (the upstream broke after the
answer started) and, for attempt 0, the error code the client received. Records never
hold a secret, a prompt or a completion.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .tokens import AnswerUsage, Tokens

log = logging.getLogger("keyway.data_plane.usage")

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
    usage: AnswerUsage | None = None
    """Its answer's token counts still as bytes; `settle` reads them into `tokens`."""
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


def settle(trace: RequestTrace) -> None:
    """Reads the token counts its attempts' answers held into their `tokens`; an answer
    whose counts cannot be read has none (one upstream's odd answer never costs the other
    requests of a digest their records)."""
    for attempt in trace.attempts:
        usage = attempt.usage
        if usage is None:
            continue
        attempt.usage = None
        try:
            attempt.tokens = usage.tokens()
        except Exception as error:
            log.warning("%s: token counts unreadable (%s)", trace.request_id, type(error).__name__)
            attempt.tokens = None
