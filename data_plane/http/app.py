"""The proxy's ASGI application: `create_app(ctx)` builds the one `ProxyApp`.

Model calls are dispatched by one dict lookup on the path before any framework code
runs (Starlette's router cost measurable throughput on this path: with it, a bare
proxy reached 64 % of direct instead of 80 %), each to its surface's `Endpoint`;
`GET /v1/models`, CORS preflights and errors for other `/v1/` paths are answered
here; everything else goes to the operators' `status` app.
"""

from __future__ import annotations

from data_plane.formats import ApiFormat
from data_plane.routing.errors import KeywayError

from .context import ProxyContext
from .endpoint import Endpoint
from .errors import send_error
from .headers import CORS, PREFLIGHT
from .models import list_models
from .request_id import HEADER, new_request_id
from .status import status_app
from .surfaces import SURFACES
from .types import ASGIApp, Headers, Message, Receive, Scope, Send


def _format_for(path: str, headers: Headers) -> ApiFormat:
    if path.startswith("/v1/messages") or any(n == b"anthropic-version" for n, _ in headers):
        return ApiFormat.ANTHROPIC
    return ApiFormat.OPENAI


def _request_id() -> tuple[bytes, bytes]:
    return (HEADER, new_request_id().encode())


def _base_headers() -> Headers:
    return [_request_id(), *CORS]


def _with_base_headers(send: Send) -> Send:
    """`send` adding the request id and CORS headers that every response carries, errors too."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", ()), _request_id(), *CORS]
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


class ProxyApp:
    def __init__(self, ctx: ProxyContext, fallback: ASGIApp) -> None:
        self.ctx = ctx
        self._endpoints = {s.path: Endpoint(s, ctx) for s in SURFACES}
        self._fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._fallback(scope, receive, send)
            return
        path = scope["path"]
        endpoint = self._endpoints.get(path)
        method = scope["method"]
        if endpoint is not None and method == "POST":
            await endpoint(scope, receive, send)
        elif method == "OPTIONS" and path.startswith("/v1/"):
            headers = [_request_id(), *PREFLIGHT]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
        elif path == "/v1/models" and method == "GET":
            fmt = _format_for(path, scope["headers"])
            await list_models(self.ctx, scope, send, fmt, _base_headers())
        elif endpoint is not None or path == "/v1/models":
            await self._error(scope, send, "method_not_allowed", f"{method} is not allowed here")
        elif path.startswith("/v1/"):
            await self._error(scope, send, "not_found", f"no endpoint {path}")
        else:
            await self._fallback(scope, receive, _with_base_headers(send))

    async def _error(self, scope: Scope, send: Send, code: str, message: str) -> None:
        fmt = _format_for(scope["path"], scope["headers"])
        await send_error(send, KeywayError(code, message), fmt, _base_headers())


def create_app(ctx: ProxyContext) -> ProxyApp:
    """Model calls answered with `ctx`; health, readiness and metrics beside them."""
    return ProxyApp(ctx, status_app(ctx))
