"""What one upstream attempt came to, in the terms the failover engine decides on.

The upstream shell reports a status and headers (or a connect error or timeout); this module is the
one table that turns them into an `Outcome`. Header names are matched case-insensitively.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass


class OutcomeKind(enum.Enum):
    SUCCESS = "success"
    AUTH = "auth"
    RATE_LIMITED = "rate_limited"
    RETRYABLE = "retryable"
    CONNECT_ERROR = "connect_error"
    TIMEOUT = "timeout"
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


def classify(status: int, headers: Mapping[str, str]) -> Outcome:
    kind, reason = _BY_STATUS.get(status) or _BY_CLASS.get(status // 100, _UNEXPECTED)
    if kind is OutcomeKind.SUCCESS:
        # Successes carry rate-limit headers too; they are not a reason to hold the key back.
        return Outcome(kind, status, reason)
    return Outcome(kind, status, reason, _retry_after(headers))


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


# Plain decimals only: float() would also accept "nan", "inf", "-1", "1e3" and "1_0".
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
# Go duration syntax as OpenAI sends it: "20ms", "6m0s", "1h2m3.5s". "ms" is listed before "m".
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|h|m|s)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_RESET_HEADERS = ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")


def _retry_after(headers: Mapping[str, str]) -> float | None:
    lowered = {name.lower(): value for name, value in headers.items()}
    millis = _number(lowered.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    seconds = _number(lowered.get("retry-after"))  # the HTTP-date form is ignored
    if seconds is not None:
        return seconds
    # The key is usable again only once every exhausted budget has reset.
    resets = [d for name in _RESET_HEADERS if (d := _duration(lowered.get(name))) is not None]
    return max(resets, default=None)


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
