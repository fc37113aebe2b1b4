"""What one upstream attempt came to, in the terms the failover engine decides on.

The upstream shell reports a status and headers (or a connect error or timeout); this module is the
one table that turns them into an `Outcome`. Header names are matched case-insensitively.

How long a failing key should stay away comes from, in order: `retry-after-ms`; `Retry-After`
in seconds or as an HTTP date; the reset times of the provider's exhausted rate-limit budgets
(OpenAI's `x-ratelimit-reset-{requests,tokens}` durations, Anthropic's
`anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-reset` RFC 3339 times).
Dates count from the response's own `Date` header when it has one (the provider's clock),
else from `now`. Hints are clamped to [0, MAX_HINT]; unparsable ones are ignored.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

MAX_HINT = 24 * 3600.0
"""Longest hold a provider's hint can impose (a daily budget resets within a day)."""


class OutcomeKind(enum.Enum):
    SUCCESS = "success"
    AUTH = "auth"
    RATE_LIMITED = "rate_limited"
    RETRYABLE = "retryable"
    CONNECT_ERROR = "connect_error"
    TIMEOUT = "timeout"
    DEADLINE = "deadline"  # cut short by the request's total deadline: not the key's fault
    FAIL_FAST = "fail_fast"


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: OutcomeKind
    status: int | None
    reason: str
    retry_after: float | None = None  # seconds, when the provider said how long to stay away


_AUTH = (OutcomeKind.AUTH, "Provider returns an auth error")
_BY_STATUS: dict[int, tuple[OutcomeKind, str]] = {
    401: _AUTH,
    403: _AUTH,
    408: (OutcomeKind.RETRYABLE, "Provider timed out the request"),
    429: (OutcomeKind.RATE_LIMITED, "Rate limited by provider"),
}
_BY_CLASS: dict[int, tuple[OutcomeKind, str]] = {
    2: (OutcomeKind.SUCCESS, "Served"),
    4: (OutcomeKind.FAIL_FAST, "Provider rejected the request"),
    5: (OutcomeKind.RETRYABLE, "Provider server error"),
}
# A redirect or a malformed status is no usable API answer, and it is the same for every key of
# that provider: another provider may still answer, so it fails over instead of being relayed.
_UNEXPECTED = (OutcomeKind.RETRYABLE, "Provider returned an unexpected status")


def classify(status: int, headers: Mapping[str, str], now: float | None = None) -> Outcome:
    """`now`: wall-clock seconds, for dates in a response without a `Date` header."""
    kind, reason = _BY_STATUS.get(status) or _BY_CLASS.get(status // 100, _UNEXPECTED)
    if kind is OutcomeKind.SUCCESS:
        # Successes carry rate-limit headers too; they are not a reason to hold the key back.
        return Outcome(kind, status, reason)
    return Outcome(kind, status, reason, _retry_after(headers, now))


def connect_error(detail: str = "") -> Outcome:
    """`detail` says where and why, e.g. `at api.openai.com:443: connection refused`."""
    reason = "Could not connect to provider"
    return Outcome(OutcomeKind.CONNECT_ERROR, None, f"{reason} {detail}" if detail else reason)


def connection_broke(detail: str) -> Outcome:
    """Connected, but the connection failed before a usable answer: fails over like a connect
    error."""
    return Outcome(OutcomeKind.CONNECT_ERROR, None, f"Provider connection broke ({detail})")


def timeout() -> Outcome:
    return Outcome(OutcomeKind.TIMEOUT, None, "Provider did not answer in time")


def deadline_reached() -> Outcome:
    return Outcome(
        OutcomeKind.DEADLINE, None, "Total deadline reached before the provider answered"
    )


# Plain decimals only: float() would also accept "nan", "inf", "-1", "1e3" and "1_0".
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
# Go duration syntax as OpenAI sends it: "20ms", "6m0s", "1h2m3.5s". "ms" is listed before "m".
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|h|m|s)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
# (remaining, reset) header pairs of each budget.
_OPENAI_BUDGETS = tuple(
    (f"x-ratelimit-remaining-{b}", f"x-ratelimit-reset-{b}") for b in ("requests", "tokens")
)
_ANTHROPIC_BUDGETS = tuple(
    (f"anthropic-ratelimit-{b}-remaining", f"anthropic-ratelimit-{b}-reset")
    for b in ("requests", "tokens", "input-tokens", "output-tokens")
)


def _clamp(seconds: float | None) -> float | None:
    return None if seconds is None else min(max(seconds, 0.0), MAX_HINT)


def _retry_after(headers: Mapping[str, str], now: float | None) -> float | None:
    lowered = {name.lower(): value for name, value in headers.items()}
    millis = _number(lowered.get("retry-after-ms"))
    if millis is not None:
        return _clamp(millis / 1000)
    retry_after = lowered.get("retry-after")
    seconds = _number(retry_after)
    if seconds is not None:
        return _clamp(seconds)
    reference = _http_date(lowered.get("date"))
    if reference is None:
        reference = now
    if reference is not None:
        when = _http_date(retry_after)
        if when is not None:
            return _clamp(when - reference)
    # The key is usable again only once every exhausted budget has reset. A budget with
    # requests or tokens left is not why the request was refused.
    resets = [
        _duration(lowered.get(reset))
        for remaining, reset in _OPENAI_BUDGETS
        if _exhausted(lowered.get(remaining))
    ]
    if reference is not None:
        resets += [
            at - reference
            for remaining, reset in _ANTHROPIC_BUDGETS
            if _exhausted(lowered.get(remaining))
            and (at := _timestamp(lowered.get(reset))) is not None
        ]
    return _clamp(max((r for r in resets if r is not None), default=None))


def _exhausted(remaining: str | None) -> bool:
    """Whether a budget is used up: its remaining count is 0, or not stated."""
    return remaining is None or _number(remaining) == 0


def _http_date(text: str | None) -> float | None:
    if not text:
        return None
    try:
        parsed = parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # asctime form or "-0000": HTTP dates are always UTC
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _timestamp(text: str | None) -> float | None:
    """An RFC 3339 date-time with its offset (e.g. `2026-10-21T07:28:00Z`)."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


def _number(text: str | None) -> float | None:
    if text is None or not _NUMBER.fullmatch(text := text.strip()):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _duration(text: str | None) -> float | None:
    if text is None:
        return None
    text = text.strip()
    bare = _number(text)  # some compatible providers send plain seconds
    if bare is not None or not text:
        return bare
    total, position = 0.0, 0
    for part in _DURATION_PART.finditer(text):
        if part.start() != position:
            return None
        total += float(part[1]) * _UNIT_SECONDS[part[2]]
        position = part.end()
    return total if position == len(text) and math.isfinite(total) else None
