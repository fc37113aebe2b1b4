"""Token counts read from what a provider answers, without parsing the answer.

Providers put their counts in a `"usage"` object: at the end of a JSON body, and in
the usage events of a stream (Anthropic: `message_start` holds the input, every
`message_delta` the output so far; OpenAI Chat Completions: one last chunk, sent only
when the client asked for `stream_options.include_usage`, which the proxy never adds;
OpenAI Responses: `response.completed`). The relay hands this module the last bytes of
a JSON body, or each batch of whole SSE events as it passes; only the bytes after a
`"usage"` key are decoded. A key with exactly that spelling cannot occur inside a JSON
string (its quotes would be escaped), so a prompt or completion never counts.

Counts are normalised: `input` includes cached input (Anthropic reports cache reads and
writes apart from `input_tokens`), `output` includes reasoning.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from data_plane.formats import ApiFormat

_KEY = b'"usage"'
_WHITESPACE = b" \t\r\n"
_DECODER = json.JSONDecoder()
TAIL_BYTES = 16 * 1024
"""How much of the end of a JSON body is kept for its usage object."""


@dataclass(frozen=True, slots=True)
class Tokens:
    input: int = 0
    output: int = 0
    cached_input: int = 0
    reasoning: int = 0


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


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


def _objects(data: bytes, line_ends: bool) -> list[dict[str, Any]]:
    """Every `"usage": {...}` object in `data`, in order. With `line_ends`, an object is
    looked for only up to the end of its line (SSE data lines are one line each)."""
    found: list[dict[str, Any]] = []
    at = data.find(_KEY)
    while at >= 0:
        pos = at + len(_KEY)
        while pos < len(data) and data[pos] in _WHITESPACE:
            pos += 1
        if data[pos : pos + 1] == b":":
            pos += 1
            while pos < len(data) and data[pos] in _WHITESPACE:
                pos += 1
            if data[pos : pos + 1] == b"{":
                end = data.find(b"\n", pos) if line_ends else -1
                text = data[pos : end if end >= 0 else len(data)].decode("utf-8", "replace")
                try:
                    value, _ = _DECODER.raw_decode(text)
                except ValueError:
                    value = None
                if isinstance(value, dict):
                    found.append(value)
        at = data.find(_KEY, pos)
    return found


def from_body(tail: bytes, api: ApiFormat) -> Tokens | None:
    """The counts of a JSON answer from its last bytes (`TAIL_BYTES`), None when absent."""
    objects = _objects(tail, line_ends=False)
    return _normalised(objects[-1], api) if objects else None


class StreamUsage:
    """Follows the usage events of one SSE answer, fed whole events as they pass."""

    __slots__ = ("_api", "_merged")

    def __init__(self, api: ApiFormat) -> None:
        self._api = api
        self._merged: dict[str, Any] | None = None

    def feed(self, events: bytes) -> None:
        if _KEY not in events:  # nearly every event: one C-level search, no decoding
            return
        for usage in _objects(events, line_ends=True):
            # Later events carry the newer counts (Anthropic's output grows per delta).
            if self._merged is None:
                self._merged = dict(usage)
            else:
                self._merged.update(usage)

    def tokens(self) -> Tokens | None:
        return None if self._merged is None else _normalised(self._merged, self._api)
