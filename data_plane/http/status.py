"""What operators ask a proxy: liveness (`/healthz`), readiness (`/readyz`), `/metrics`.

A small Starlette app behind `app.ProxyApp`, which sends it every path that is not a
model call; model calls never pass through Starlette's router.
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from data_plane.formats import ApiFormat
from data_plane.routing.errors import KeywayError
from data_plane.usage import metrics as proxy_metrics

from .context import ProxyContext
from .errors import envelope


async def _not_found(request: Request, exc: Exception) -> Response:
    body = envelope(KeywayError("not_found", f"no endpoint {request.url.path}"), ApiFormat.OPENAI)
    return Response(body, status_code=404, media_type="application/json")


def status_app(ctx: ProxyContext) -> Starlette:
    state = ctx.state
    observer = ctx.observer
    registry = proxy_metrics.registry(
        observer.metrics, state, ctx.cooldowns, observer.buffer, ctx.clock
    )

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        table = state.table
        if table is None:
            return JSONResponse({"status": "no snapshot loaded"}, status_code=503)
        m, now = state.metrics, time.monotonic()
        detail: dict[str, object] = {
            "version": table.version,
            "updates": "failing" if m.updates_failing else "ok",
            "unconfirmed_seconds": round(state.stale_seconds(now), 3),
        }
        if m.last_update_error:
            detail["last_error"] = m.last_update_error
        if state.expired(now):
            detail["max_snapshot_age"] = state.max_age
            return JSONResponse({"status": "snapshot too old", **detail}, status_code=503)
        return JSONResponse({"status": "ready", **detail})

    async def metrics(request: Request) -> Response:
        observer.digest()  # the requests finished since the last digest count too
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
        ],
        exception_handlers={404: _not_found},
    )
