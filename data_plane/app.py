"""The proxy's HTTP surface."""

from __future__ import annotations

import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from .http.gateway import KeywayApp, not_found
from .http.proxy import Gateway
from .state import ProxyState


def _metrics_text(state: ProxyState, now: float) -> str:
    m = state.metrics
    age = now - m.generated_at if m.generated_at else (now - m.applied_at if m.applied_at else 0.0)
    rows = [
        (
            "keyway_snapshot_connected",
            "gauge",
            "1 while the discovery stream is up",
            int(m.connected),
        ),
        (
            "keyway_snapshot_applied_version",
            "gauge",
            "version of the served snapshot",
            m.applied_version,
        ),
        (
            "keyway_snapshot_age_seconds",
            "gauge",
            "seconds since the served snapshot was compiled",
            round(age, 3),
        ),
        ("keyway_snapshot_applies_total", "counter", "snapshots applied", m.applies),
        (
            "keyway_snapshot_rejections_total",
            "counter",
            "snapshots rejected (NACKed)",
            m.rejections,
        ),
        (
            "keyway_snapshot_propagation_seconds",
            "gauge",
            "applied time minus compile time, last snapshot",
            round(m.propagation_seconds, 6),
        ),
        (
            "keyway_snapshot_from_cache",
            "gauge",
            "1 while serving a snapshot loaded from the disk cache",
            int(m.loaded_from_cache),
        ),
    ]
    lines = []
    for name, kind, help_text, value in rows:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]
    return "\n".join(lines) + "\n"


def create_app(state: ProxyState, gateway: Gateway) -> ASGIApp:
    """Model calls through `gateway`; health, readiness and metrics beside them."""

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        table = state.table
        if table is None:
            return JSONResponse({"status": "no snapshot loaded"}, status_code=503)
        return JSONResponse({"status": "ready", "version": table.version})

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(
            _metrics_text(state, time.time()), media_type="text/plain; version=0.0.4"
        )

    admin = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
        ],
        exception_handlers={404: not_found},
    )
    return KeywayApp(gateway, admin)
