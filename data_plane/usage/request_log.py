"""`keyway proxy --request-log json|text`: one line per model call.

Fields: `time` (UTC, ISO 8601), `request_id`, `account_id`, `access_key_id`, `surface`,
`model` (as requested), `provider`, `upstream_model`, `provider_key_id` (of the last
attempt), `attempts`, `status` (sent to the client, 0 for none), `outcome` (of the last
attempt, or the error code), `duration_ms`, `first_byte_ms` (of the last attempt), and
`input_tokens`, `output_tokens`, `cached_tokens` when the provider reported them. Ids
and counts only: never a key value, a token, a prompt or a completion. Lines are
written without a flush per request; the runner flushes every quarter second.

Lines are filled into a fixed template (a JSON encoder per line costs more than the rest
of the request's bookkeeping); a value with a character JSON must escape is escaped,
the rest are written as they are.
"""

from __future__ import annotations

import enum
import json
import re
import time
from typing import TextIO

from .records import RequestTrace

_ENCODER = json.JSONEncoder(separators=(",", ":"))
# Printable ASCII without `"` and `\`: what a JSON string holds unescaped.
_PLAIN = re.compile(r"[ !#-\[\]-~]*").fullmatch
_NAMES = (
    "time",
    "request_id",
    "account_id",
    "access_key_id",
    "surface",
    "model",
    "provider",
    "upstream_model",
    "provider_key_id",
    "attempts",
    "status",
    "outcome",
    "duration_ms",
    "first_byte_ms",
)
_TOKENS = ("input_tokens", "output_tokens", "cached_tokens")
_STRINGS = frozenset(_NAMES[:9]) | {"outcome"}
_JSON = "{{" + ",".join(
    f'"{name}":"{{}}"' if name in _STRINGS else f'"{name}":{{}}' for name in _NAMES
)
_JSON_TOKENS = "".join(f',"{name}":{{}}' for name in _TOKENS)


class LogFormat(enum.Enum):
    JSON = "json"
    TEXT = "text"
    OFF = "off"


class _Clock:
    """`2026-12-01T15:12:46.864+00:00`, with the part up to the second made once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def format(self, at: float) -> str:
        second = int(at)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((at - second) * 1000):03d}+00:00"


def values(trace: RequestTrace, clock: _Clock) -> tuple[list[object], list[int]]:
    """The line's values in `_NAMES` order, and the token counts (empty when unknown)."""
    last = trace.attempts[-1] if trace.attempts else None
    first_byte = 0.0
    if last is not None and last.first_byte_at:
        first_byte = round((last.first_byte_at - last.started) * 1000, 3)
    line: list[object] = [
        clock.format(trace.time),
        trace.request_id,
        trace.account_id,
        trace.access_key_id,
        trace.surface,
        trace.requested_model,
        last.provider_id if last else "",
        last.upstream_model if last else "",
        last.provider_key_id if last else "",
        len(trace.attempts),
        trace.status,
        trace.error or (last.outcome if last else ""),
        round((trace.ended - trace.started) * 1000, 3),
        first_byte,
    ]
    tokens = last.tokens if last else None
    counts = [] if tokens is None else [tokens.input, tokens.output, tokens.cached_input]
    return line, counts


def _escaped(value: object) -> object:
    if isinstance(value, str) and not _PLAIN(value):
        return _ENCODER.encode(value)[1:-1]
    return value


def _quoted(value: object) -> object:
    """A text-format value: quoted JSON-style when it has a space or needs escaping."""
    if isinstance(value, str) and (" " in value or not _PLAIN(value)):
        return _ENCODER.encode(value)
    return value


class RequestLog:
    def __init__(self, form: LogFormat, stream: TextIO) -> None:
        self.form = form
        self.stream = stream
        self._clock = _Clock()

    def write(self, trace: RequestTrace) -> None:
        line, counts = values(trace, self._clock)
        if self.form is LogFormat.JSON:
            text = _JSON.format(*map(_escaped, line))
            if counts:
                text += _JSON_TOKENS.format(*counts)
            text += "}"
        else:
            pairs = [*zip(_NAMES, line, strict=True), *zip(_TOKENS, counts, strict=False)]
            text = " ".join(f"{name}={_quoted(value)}" for name, value in pairs if value != "")
        self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()
