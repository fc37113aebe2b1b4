"""The last event of a stream that broke after the response started. Pure.

Each official SDK raises on it, so an app never mistakes a truncated answer
for a complete one.
"""

from __future__ import annotations

import json

from .errors import Format


def complete_events(buffer: bytes) -> int:
    """Length of the prefix of `buffer` made of whole events (ending in a blank line)."""
    lf = buffer.rfind(b"\n\n")
    crlf = buffer.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


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
