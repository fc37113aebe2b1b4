"""What a mock provider key asks the mock upstream to do (pure).

Grammar: ``sk-mock-<behaviour>[-<param>][-<free label>...]``. The part after
``sk-mock-`` is the key's *label*: it is what records and response texts show,
so a test can tell which key served without any real-looking secret being
kept. ``<param>`` is only taken when the segment right after the behaviour is a
number; otherwise the behaviour's default applies and the segment is part of
the free label (``sk-mock-ok-a``, ``sk-mock-429-2-backup``).

A key that is not a mock key, or names an unknown behaviour, is treated like a
garbage key at a real provider: 401 ``invalid_api_key``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from enum import StrEnum

KEY_PREFIX = "sk-mock-"
# Shown instead of the label for keys that do not follow the grammar: such a
# key might be a real secret pasted by mistake, so none of it is kept.
FOREIGN_LABEL = "(not a mock key)"


class Kind(StrEnum):
    OK = "ok"
    RATE_LIMITED = "429"
    RATE_LIMITED_DATE = "429date"  # Retry-After as an HTTP date
    RATE_LIMITED_RESET = "429reset"  # only the provider's rate-limit reset headers
    UNAUTHORIZED = "401"
    FORBIDDEN = "403"
    SERVER_ERROR = "500"
    UNAVAILABLE = "503"
    OVERLOADED = "529"
    BAD_REQUEST = "400"
    SLOW = "slow"
    BREAK = "break"
    STALL = "stall"
    HOLD = "hold"
    TRICKLE = "trickle"  # a stream that never ends: one event every <param> ms
    INVALID_KEY = "invalid-key"


# Default parameter per behaviour, and whether it must be a whole number.
_DEFAULTS: dict[Kind, tuple[float, bool]] = {
    Kind.RATE_LIMITED: (1.0, False),  # Retry-After seconds
    Kind.RATE_LIMITED_DATE: (1.0, False),
    Kind.RATE_LIMITED_RESET: (1.0, False),
    Kind.SLOW: (1000.0, False),  # ms before the response headers
    Kind.BREAK: (1.0, True),  # SSE events sent before the cut
    Kind.STALL: (1.0, True),  # SSE events sent before going silent
    Kind.TRICKLE: (100.0, False),  # ms between events
}
_PARSED_KINDS = {kind.value: kind for kind in Kind if kind is not Kind.INVALID_KEY}


@dataclass(frozen=True, slots=True)
class Behaviour:
    kind: Kind
    label: str
    param: float = 0.0

    @property
    def count(self) -> int:
        return int(self.param)


# Apps reuse a handful of keys, and this runs on every request of a benchmark.
@functools.lru_cache(maxsize=4096)
def parse_key(key: str) -> Behaviour:
    if not key.startswith(KEY_PREFIX) or len(key) == len(KEY_PREFIX):
        return Behaviour(Kind.INVALID_KEY, FOREIGN_LABEL)
    label = key[len(KEY_PREFIX) :]
    head, _, rest = label.partition("-")
    kind = _PARSED_KINDS.get(head)
    if kind is None:
        return Behaviour(Kind.INVALID_KEY, label)
    default = _DEFAULTS.get(kind)
    if default is None:
        return Behaviour(kind, label)
    value, whole = default
    candidate = rest.partition("-")[0]
    parsed = _number(candidate, whole)
    return Behaviour(kind, label, value if parsed is None else parsed)


def _number(text: str, whole: bool) -> float | None:
    if whole:
        return float(text) if text.isdigit() else None
    try:
        value = float(text)
    except ValueError:
        return None
    # "nan", "inf" and negatives parse as floats but make no sense as delays.
    return value if math.isfinite(value) and value >= 0 else None


@dataclass(frozen=True, slots=True)
class Failure:
    """How one error behaviour looks in each provider's own format."""

    status: int
    message: str
    openai_type: str
    openai_code: str | None
    anthropic_type: str
    openai_param: str | None = None


_RATE_LIMITED = Failure(
    429,
    "Rate limit reached for requests (mock upstream).",
    "requests",
    "rate_limit_exceeded",
    "rate_limit_error",
)
RATE_LIMITS = frozenset({Kind.RATE_LIMITED, Kind.RATE_LIMITED_DATE, Kind.RATE_LIMITED_RESET})

FAILURES: dict[Kind, Failure] = {
    Kind.RATE_LIMITED: _RATE_LIMITED,
    Kind.RATE_LIMITED_DATE: _RATE_LIMITED,
    Kind.RATE_LIMITED_RESET: _RATE_LIMITED,
    Kind.UNAUTHORIZED: Failure(
        401,
        "Incorrect API key provided (mock upstream).",
        "invalid_request_error",
        "invalid_api_key",
        "authentication_error",
    ),
    Kind.INVALID_KEY: Failure(
        401,
        "Incorrect API key provided (mock upstream).",
        "invalid_request_error",
        "invalid_api_key",
        "authentication_error",
    ),
    Kind.FORBIDDEN: Failure(
        403,
        "Your API key does not have permission to use this resource (mock upstream).",
        "invalid_request_error",
        "permission_denied",
        "permission_error",
    ),
    Kind.SERVER_ERROR: Failure(
        500,
        "The server had an error while processing your request (mock upstream).",
        "server_error",
        "server_error",
        "api_error",
    ),
    Kind.UNAVAILABLE: Failure(
        503,
        "The service is temporarily unavailable (mock upstream).",
        "server_error",
        "service_unavailable",
        "api_error",
    ),
    Kind.OVERLOADED: Failure(
        529,
        "Overloaded (mock upstream).",
        "server_error",
        "overloaded",
        "overloaded_error",
    ),
    Kind.BAD_REQUEST: Failure(
        400,
        "Invalid request (mock upstream).",
        "invalid_request_error",
        "invalid_value",
        "invalid_request_error",
        openai_param="messages",
    ),
}
