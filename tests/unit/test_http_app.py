"""The HTTP listener's app on its own: parts in order, readiness, the request log."""

from __future__ import annotations

import httpx
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from control_plane.http.app import build_app, health_routes


async def _caller(authorization: str | None) -> str:
    return "cred_1" if authorization else "-"


async def test_readyz_says_why_it_is_not_ready_and_parts_mount_in_order() -> None:
    state = {"problem": "no snapshot published yet"}

    async def ready() -> str | None:
        return state["problem"] or None

    async def metrics(_: Request) -> PlainTextResponse:
        return PlainTextResponse("up 1\n")

    app = build_app([health_routes(ready), [Route("/metrics", metrics)]], caller=_caller)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://cp"
    ) as client:
        waiting = await client.get("/readyz")
        assert waiting.status_code == 503
        assert waiting.json() == {"status": "not ready", "reason": "no snapshot published yet"}
        state["problem"] = ""
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.get("/metrics")).text == "up 1\n"
        assert (await client.get("/healthz")).json() == {"status": "ok"}
