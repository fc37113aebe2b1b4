"""The last event of a stream that broke after the response started. Pure.

Each official SDK raises on it, so an app never mistakes a truncated answer
for a complete one.
"""

from __future__ import annotations

import json

from .errors import Format


def complete_events(buffer: bytes | bytearray, start: int = 0) -> int:
    """Length of the prefix of `buffer` made of whole events (ending in a blank line).

    Only boundaries that end at or after `start` are looked for.
    """
    lf = buffer.rfind(b"\n\n", start)
    crlf = buffer.rfind(b"\r\n\r\n", start)
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


class EventFramer:
    """Cuts a byte stream at SSE event boundaries, in linear time and bounded memory."""

    def __init__(self, limit: int = 1 << 20) -> None:
        self._buffer = bytearray()
        self._limit = limit

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
        return ready

    @property
    def holding(self) -> bool:
        """Whether bytes of an unfinished event are held back."""
        return bool(self._buffer)

    def rest(self) -> bytes:
        return bytes(self._buffer)


def stream_error_event(fmt: Format, message: str, request_id: str) -> bytes:
    if fmt is Format.ANTHROPIC:
        data = {
            "type": "error",
            "error": {"type": "api_error", "message": message},
            "request_id": request_id,
        }
        return b"event: error\ndata: " + json.dumps(data).encode() + b"\n\n"
    error = {
        "message": message,
        "type": "server_error",
        "code": "upstream_stream_error",
        "param": None,
    }
    return b"event: error\ndata: " + json.dumps({"error": error}).encode() + b"\n\n"
