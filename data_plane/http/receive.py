"""Reading the request body from ASGI `receive`, within the proxy's size limit.

A declared `content-length` over the limit is refused before a byte is buffered; a
body that grows past it while arriving (chunked) is refused as soon as it does.
"""

from __future__ import annotations

from data_plane.routing.errors import KeywayError

from .types import Headers, Receive


class ClientGoneError(Exception):
    """The client disconnected; nothing more can be sent."""


def _too_large(limit: int) -> KeywayError:
    return KeywayError("request_too_large", f"request body is over {limit} bytes")


def _declared_length(headers: Headers) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def read_body(receive: Receive, headers: Headers, limit: int) -> bytes:
    """The whole body; KeywayError (413) over `limit`, ClientGoneError on a disconnect."""
    declared = _declared_length(headers)
    if declared is not None and declared > limit:
        raise _too_large(limit)  # before buffering a byte of it
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
