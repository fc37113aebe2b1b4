"""Token counts read from what a provider answers, without parsing the answer.

Providers put their counts in a `"usage"` object: at the end of a JSON body, and in
the usage events of a stream (Anthropic: `message_start` holds the input, every
`message_delta` the output so far; OpenAI Chat Completions: one last chunk, sent only
when the client asked for `stream_options.include_usage`, which the proxy never adds;
OpenAI Responses: `response.completed`). The relay hands an `AnswerUsage` the last bytes
of a JSON body, or each batch of whole SSE events as it passes; only the bytes after a
`"usage"` key are decoded, and only later (`AnswerUsage.tokens`). A key with exactly
that spelling cannot occur inside a JSON string (its quotes would be escaped), so a
prompt or completion never counts.

Counts are normalised: `input` includes cached input (Anthropic reports cache reads and
writes apart from `input_tokens`), `output` includes reasoning.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from data_plane.formats import ApiFormat

_KEY = b'"usage"'
_KEY_AND_OBJECT = re.compile(rb'"usage"[ \t\r\n]*:[ \t\r\n]*(?=\{)')
_DECODER = json.JSONDecoder()
TAIL_BYTES = 16 * 1024
"""How much of the end of a JSON body is kept for its usage object."""
_LINES = 8


class Tokens(NamedTuple):
    """Made once per answer: a tuple costs a fifth of a frozen dataclass to build."""

    input: int = 0
    output: int = 0
    cached_input: int = 0
    reasoning: int = 0


def _count(value: object) -> int:
    return value if type(value) is int and value > 0 else 0


def _detail(usage: Mapping[str, Any], name: str, field: str) -> int:
    details = usage.get(name)
    return _count(details.get(field)) if isinstance(details, dict) else 0


def _normalised(usage: Mapping[str, Any], api: ApiFormat) -> Tokens:
    if api is ApiFormat.ANTHROPIC:
        cached = _count(usage.get("cache_read_input_tokens"))
        written = _count(usage.get("cache_creation_input_tokens"))
        return Tokens(
            input=_count(usage.get("input_tokens")) + cached + written,
            output=_count(usage.get("output_tokens")),
            cached_input=cached,
        )
    if "prompt_tokens" in usage:  # Chat Completions and Embeddings
        return Tokens(
            input=_count(usage.get("prompt_tokens")),
            output=_count(usage.get("completion_tokens")),
            cached_input=_detail(usage, "prompt_tokens_details", "cached_tokens"),
            reasoning=_detail(usage, "completion_tokens_details", "reasoning_tokens"),
        )
    return Tokens(  # Responses
        input=_count(usage.get("input_tokens")),
        output=_count(usage.get("output_tokens")),
        cached_input=_detail(usage, "input_tokens_details", "cached_tokens"),
        reasoning=_detail(usage, "output_tokens_details", "reasoning_tokens"),
    )


def _object_at(data: bytes, pos: int) -> dict[str, Any] | None:
    try:
        value, _ = _DECODER.raw_decode(data[pos:].decode("utf-8", "replace"))
    except (ValueError, RecursionError):  # malformed, or nested past the decoder's limit
        return None
    return value if isinstance(value, dict) else None


def _objects(line: bytes) -> list[dict[str, Any]]:
    """Every `"usage": {...}` object in one kept SSE line (no line end), in order."""
    found = (_object_at(line, m.end()) for m in _KEY_AND_OBJECT.finditer(line))
    return [value for value in found if value is not None]


def from_body(tail: bytes, api: ApiFormat) -> Tokens | None:
    """The counts of a JSON answer from its last bytes (`TAIL_BYTES`), None when absent."""
    at = tail.rfind(_KEY)  # the last one first: a body's usage object is near its end
    while at >= 0:
        match = _KEY_AND_OBJECT.match(tail, at)
        usage = _object_at(tail, match.end()) if match else None
        if usage is not None:
            return _normalised(usage, api)
        at = tail.rfind(_KEY, 0, at)
    return None


class AnswerUsage:
    """Where one answer's token counts are, kept as the bytes they came in.

    The relay hands it each batch of whole SSE events as it passes, or a JSON body's last
    bytes once it has been relayed; on the request path that is one C-level search per
    batch and a slice of each line holding a `"usage"` key. `tokens()` decodes them, at
    the digest, many answers at a time: decoding each answer at the end of its own
    request, with the decoder cold in the CPU's caches, cost the proxy several times more.
    A stream's usage lines are kept up to `_LINES` (then the newest replaces the last),
    each without its line end and at most `TAIL_BYTES`; a body from its first `"usage"`
    key. Anthropic sends two (input at `message_start`, output at the last
    `message_delta`), OpenAI one.
    """

    __slots__ = ("_api", "_lines", "_tail")

    def __init__(self, api: ApiFormat) -> None:
        self._api = api
        self._lines: list[bytes] = []
        self._tail = b""

    def feed(self, events: bytes) -> None:
        at = events.find(_KEY)  # nearly every event: this one search, nothing else
        while at >= 0:
            end = events.find(b"\n", at)
            if end < 0:
                end = len(events)
            # Only an object counts (OpenAI sends `"usage":null` in every chunk but the last).
            if _KEY_AND_OBJECT.match(events, at):
                line = events[at : min(end, at + TAIL_BYTES)]
                if len(self._lines) < _LINES:
                    self._lines.append(line)
                else:
                    self._lines[-1] = line
            at = events.find(_KEY, end)

    def end_of_body(self, tail: bytes) -> None:
        """A JSON answer's last bytes (`TAIL_BYTES`); kept from its first `"usage"` key on."""
        at = tail.find(_KEY)
        self._tail = tail[at:] if at >= 0 else b""

    def tokens(self) -> Tokens | None:
        if self._tail:
            return from_body(self._tail, self._api)
        merged: dict[str, Any] | None = None
        for line in self._lines:
            for usage in _objects(line):
                # Later events carry the newer counts (Anthropic's output grows per delta).
                if merged is None:
                    merged = dict(usage)
                else:
                    merged.update(usage)
        return None if merged is None else _normalised(merged, self._api)
