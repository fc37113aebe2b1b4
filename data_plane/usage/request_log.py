"""`keyway proxy --request-log json|text`: one line per model call.

Fields: `time` (UTC, ISO 8601), `request_id`, `account_id`, `access_key_id`, `surface`,
`model` (as requested), `provider`, `upstream_model`, `provider_key_id` (of the last
attempt), `attempts`, `status` (sent to the client, 0 for none), `outcome` (of the last
attempt, or the error code), `duration_ms`, `first_byte_ms` (of the last attempt), and
`input_tokens`, `output_tokens`, `cached_tokens` when the provider reported them. Ids
and counts only: never a key value, a token, a prompt or a completion. Lines are
written a digest at a time (every quarter second), in one write and one flush.

JSON lines are written field by field (a JSON encoder per line costs more than the rest
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
from .tokens import Tokens

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


def _last(trace: RequestTrace) -> tuple[str, str, str, str, float, Tokens | None]:
    """Provider, upstream model, key, outcome, first-byte ms and tokens of the last attempt."""
    if not trace.attempts:
        return "", "", "", trace.error, 0.0, None
    last = trace.attempts[-1]
    first_byte = (last.first_byte_at - last.started) * 1000 if last.first_byte_at else 0.0
    who = (last.provider_id, last.upstream_model, last.provider_key_id)
    return (*who, trace.error or last.outcome, first_byte, last.tokens)


def _escaped(value: str) -> str:
    return value if _PLAIN(value) else _ENCODER.encode(value)[1:-1]


def _quoted(value: object) -> object:
    """A text-format value: quoted JSON-style when it has a space or needs escaping."""
    if isinstance(value, str) and (" " in value or not _PLAIN(value)):
        return _ENCODER.encode(value)
    return value


def json_line(trace: RequestTrace, clock: _Clock) -> str:
    """One JSON line; written out field by field because this runs once per request."""
    provider, upstream, key, outcome, first_byte, tokens = _last(trace)
    request_id, account, access_key = trace.request_id, trace.account_id, trace.access_key_id
    surface, model = trace.surface, trace.requested_model
    strings = (request_id, account, access_key, surface, model, provider, upstream, key, outcome)
    # Ids and catalog names are plain nearly always: one check for all of them.
    if not _PLAIN("".join(strings)):
        request_id, account, access_key, surface, model, provider, upstream, key, outcome = map(
            _escaped, strings
        )
    line = (
        f'{{"time":"{clock.format(trace.time)}","request_id":"{request_id}",'
        f'"account_id":"{account}","access_key_id":"{access_key}","surface":"{surface}",'
        f'"model":"{model}","provider":"{provider}","upstream_model":"{upstream}",'
        f'"provider_key_id":"{key}","attempts":{len(trace.attempts)},"status":{trace.status},'
        f'"outcome":"{outcome}","duration_ms":{(trace.ended - trace.started) * 1000:.3f},'
        f'"first_byte_ms":{first_byte:.3f}'
    )
    if tokens is None:
        return line + "}\n"
    return (
        f'{line},"input_tokens":{tokens.input},"output_tokens":{tokens.output},'
        f'"cached_tokens":{tokens.cached_input}}}\n'
    )


def text_line(trace: RequestTrace, clock: _Clock) -> str:
    provider, upstream, key, outcome, first_byte, tokens = _last(trace)
    line: list[object] = [
        clock.format(trace.time),
        trace.request_id,
        trace.account_id,
        trace.access_key_id,
        trace.surface,
        trace.requested_model,
        provider,
        upstream,
        key,
        len(trace.attempts),
        trace.status,
        outcome,
        round((trace.ended - trace.started) * 1000, 3),
        round(first_byte, 3),
    ]
    counts = [] if tokens is None else [tokens.input, tokens.output, tokens.cached_input]
    pairs = [*zip(_NAMES, line, strict=True), *zip(_TOKENS, counts, strict=False)]
    return " ".join(f"{name}={_quoted(value)}" for name, value in pairs if value != "") + "\n"


class RequestLog:
    def __init__(self, form: LogFormat, stream: TextIO) -> None:
        self.form = form
        self.stream = stream
        self._clock = _Clock()
        self._line = json_line if form is LogFormat.JSON else text_line

    def write(self, traces: list[RequestTrace]) -> None:
        """The lines of these requests, in one write and a flush (whatever the stream's
        buffering, e.g. with PYTHONUNBUFFERED set, a line is not a system call each)."""
        if not traces:
            return
        line, clock = self._line, self._clock
        self.stream.write("".join([line(trace, clock) for trace in traces]))
        self.stream.flush()
