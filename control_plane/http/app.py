"""The control plane's HTTP application, built from parts.

`build_app` takes the routes each part contributes (health, the OpenAPI document, the
admin REST API, and whatever else mounts here: metrics, the console) and wraps them in the
request log. The REST API is a catch-all, so it is always the last part.

The request log records method, route, status, the caller's credential id and latency:
never a body, a query string, a header value or the ids in a path (bodies carry provider
keys; a query or a path could hold a pasted token).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .rest import ROUTE_KEY, RestApi

log = logging.getLogger("keyway.control_plane.http")

Caller = Callable[[str | None], Awaitable[str]]
"""The credential id behind an `Authorization` header, or `-`; never the token."""
Ready = Callable[[], Awaitable[str | None]]
"""None when ready, else why not."""


def health_routes(ready: Ready) -> list[BaseRoute]:
    """`/healthz` (the process serves) and `/readyz` (the control plane can take writes)."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        problem = await ready()
        if problem is None:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready", "reason": problem}, status_code=503)

    return [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]


_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def rest_routes(api: RestApi) -> list[BaseRoute]:
    """Every path and method: the API answers 404 and 405 itself, as Google JSON errors."""
    return [Route("/{path:path}", api.handle, methods=_METHODS)]


def _route_of(scope: Scope) -> str:
    """The REST route template a request matched (`/provider-keys/{id}`), never the ids or
    junk the caller typed into its path (someone will paste a key value where an id goes);
    the path itself for the other parts' fixed routes."""
    template = scope.get(ROUTE_KEY)
    return template if isinstance(template, str) else str(scope["path"])


class _RequestLog:
    def __init__(self, app: ASGIApp, caller: Caller) -> None:
        self._app = app
        self._caller = caller

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, sending)
        finally:
            authorization = next(
                (v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None
            )
            caller = await self._caller(authorization)
            log.info(
                "%s %s %d caller=%s %.1fms",
                scope["method"],
                _route_of(scope),
                status,
                caller,
                (time.perf_counter() - started) * 1000,
            )


Layer = Callable[[ASGIApp], ASGIApp]
"""Wraps the routes, inside the request log (the console's session authentication)."""


def build_app(
    parts: Iterable[Iterable[BaseRoute]], caller: Caller, layers: Iterable[Layer] = ()
) -> ASGIApp:
    """One ASGI app from the parts' routes, in order (a catch-all part goes last)."""
    routes: list[BaseRoute] = [route for part in parts for route in part]
    app: Any = Starlette(routes=routes)
    for layer in layers:
        app = layer(app)
    return _RequestLog(app, caller)
