"""Rendering Keyway's errors: a catalog error in the envelope of the client's API.

Official SDKs choose their exception class from the HTTP status, and read the
message from the envelope, so both must match what the provider would send.
"""

from __future__ import annotations

import json

from data_plane.formats import ApiFormat
from data_plane.routing.errors import KeywayError

from .types import Headers, Send

_JSON = (b"content-type", b"application/json")

_OPENAI_TYPES = {
    400: "invalid_request_error",
    408: "invalid_request_error",
    431: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    408: "invalid_request_error",
    431: "request_too_large",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
}


def envelope(error: KeywayError, fmt: ApiFormat) -> bytes:
    status = error.status
    if fmt is ApiFormat.ANTHROPIC:
        body: dict[str, object] = {
            "type": _ANTHROPIC_TYPES.get(status, "api_error"),
            "message": error.message,
            "code": error.code,
        }
        if error.extra:
            body.update(error.extra)
        return json.dumps({"type": "error", "error": body}).encode()
    inner: dict[str, object] = {
        "message": error.message,
        "type": _OPENAI_TYPES.get(status, "server_error"),
        "code": error.code,
        "param": error.param,
    }
    if error.extra:
        inner.update(error.extra)
    return json.dumps({"error": inner}).encode()


async def send_error(send: Send, error: KeywayError, fmt: ApiFormat, headers: Headers) -> None:
    """The whole error response: status, `headers`, and the envelope with its length."""
    body = envelope(error, fmt)
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [*headers, _JSON, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
