"""Server-sent events: cut at event boundaries, and the last event of a broken stream. Pure.

When an upstream stream breaks after the response has started, the client gets one
final error event in the shape its API streams errors, so that SDKs and typed clients
recognise it rather than take a truncated answer for a complete one.
"""

from __future__ import annotations

import enum
import json
from typing import Any

_FIRST_EVENT_MAX = 64 * 1024
"""Longest first event kept to describe a Responses stream's failure."""


class EventStyle(enum.Enum):
    CHAT = "chat"  # OpenAI chat completions: `data: {"error": {...}}`
    RESPONSES = "responses"  # OpenAI Responses: an `error` event, then `response.failed`
    MESSAGES = "messages"  # Anthropic Messages: `event: error`


def complete_events(buffer: bytes | bytearray, start: int = 0) -> int:
    """Length of the prefix of `buffer` made of whole events (ending in a blank line).

    Only boundaries that end at or after `start` are looked for.
    """
    lf = buffer.rfind(b"\n\n", start)
    crlf = buffer.rfind(b"\r\n\r\n", start)
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


def _count_events(data: bytes) -> int:
    return data.count(b"\n\n") + data.count(b"\r\n\r\n")


class EventFramer:
    """Cuts a byte stream at SSE event boundaries, in linear time and bounded memory.

    It also remembers (by reference, no copies) the first and the latest whole events
    it let through, for the error event that may have to follow them.
    """

    def __init__(self, limit: int = 1 << 20) -> None:
        self._buffer = bytearray()
        self._limit = limit
        self.first = b""
        self.last = b""
        self.events = 0

    def feed(self, data: bytes) -> bytes:
        """The whole events now available (possibly b"")."""
        # A boundary can straddle the previous chunk's last three bytes.
        start = max(0, len(self._buffer) - 3)
        self._buffer += data
        cut = complete_events(self._buffer, start)
        if not cut and len(self._buffer) > self._limit:
            cut = len(self._buffer)  # not SSE after all: stop holding bytes back
        ready = bytes(self._buffer[:cut])
        del self._buffer[:cut]
        if ready:
            self.first = self.first or ready
            self.last = ready
            self.events += _count_events(ready)
        return ready

    @property
    def holding(self) -> bool:
        """Whether bytes of an unfinished event are held back."""
        return bool(self._buffer)

    def rest(self) -> bytes:
        return bytes(self._buffer)


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: ".encode() + json.dumps(data).encode() + b"\n\n"


def _event_data(chunk: bytes, which: int) -> dict[str, Any] | None:
    """The JSON data of the first (0) or last (-1) event in a chunk of whole events."""
    events = [e for e in chunk.replace(b"\r\n", b"\n").split(b"\n\n") if e.strip()]
    if not events:
        return None
    lines = events[which].split(b"\n")
    data = b"\n".join(line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:"))
    try:
        parsed = json.loads(data)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _responses_error(message: str, code: str, framer: EventFramer | None) -> bytes:
    last = _event_data(framer.last, -1) if framer is not None else None
    number = last.get("sequence_number") if last is not None else None
    sequence = number + 1 if isinstance(number, int) else (framer.events if framer else 0)
    error = {
        "type": "error",
        "code": code,
        "message": message,
        "param": None,
        "sequence_number": sequence,
    }
    out = _event("error", error)
    # A client waiting for the response's terminal event gets one, for the response it
    # was told about (the SDKs check the id), when the stream began with it.
    first = (
        _event_data(framer.first, 0)
        if framer is not None and len(framer.first) <= _FIRST_EVENT_MAX
        else None
    )
    response = first.get("response") if first is not None else None
    if isinstance(response, dict) and first is not None and first.get("type") == "response.created":
        failed = {
            **response,
            "status": "failed",
            "error": {"code": "server_error", "message": message},
        }
        out += _event(
            "response.failed",
            {"type": "response.failed", "response": failed, "sequence_number": sequence + 1},
        )
    return out


def stream_error_event(
    style: EventStyle,
    message: str,
    request_id: str,
    code: str = "upstream_stream_error",
    framer: EventFramer | None = None,
) -> bytes:
    """The event(s) that end a stream the proxy could not finish; `framer` saw it so far."""
    if style is EventStyle.MESSAGES:
        data = {
            "type": "error",
            "error": {"type": "api_error", "message": message},
            "request_id": request_id,
        }
        return _event("error", data)
    if style is EventStyle.RESPONSES:
        return _responses_error(message, code, framer)
    error = {"message": message, "type": "server_error", "code": code, "param": None}
    return _event("error", {"error": error})
