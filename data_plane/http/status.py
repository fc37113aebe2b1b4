"""What operators ask a proxy: liveness (`/healthz`), readiness (`/readyz`), `/metrics`.

A small Starlette app behind `app.ProxyApp`, which sends it every path that is not a
model call; model calls never pass through Starlette's router.
"""

from __future__ import annotations

import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from data_plane.formats import ApiFormat
from data_plane.routing.errors import KeywayError
from data_plane.snapshot.state import SnapshotState

from .errors import envelope


def _metrics_text(state: SnapshotState, now: float, monotonic: float) -> str:
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
        (
            "keyway_snapshot_updates_failing",
            "gauge",
            "1 while this proxy cannot get or apply snapshot updates",
            int(m.updates_failing),
        ),
        (
            "keyway_snapshot_update_failures_total",
            "counter",
            "discovery streams that failed and snapshot updates that could not be applied",
            m.update_failures,
        ),
        (
            "keyway_snapshot_unconfirmed_seconds",
            "gauge",
            "seconds since the served snapshot was last known to be current (0 while it is)",
            round(state.stale_seconds(monotonic), 3),
        ),
    ]
    lines = []
    for name, kind, help_text, value in rows:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]
    return "\n".join(lines) + "\n"


async def _not_found(request: Request, exc: Exception) -> Response:
    body = envelope(KeywayError("not_found", f"no endpoint {request.url.path}"), ApiFormat.OPENAI)
    return Response(body, status_code=404, media_type="application/json")


def status_app(state: SnapshotState) -> Starlette:
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
        return PlainTextResponse(
            _metrics_text(state, time.time(), time.monotonic()),
            media_type="text/plain; version=0.0.4",
        )

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
        ],
        exception_handlers={404: _not_found},
    )
