"""The REST endpoint in-process (httpx ASGITransport) with servicers that misbehave: an
unexpected exception is a 500 Google JSON error with a request id and no traceback, and a
route without a servicer stops the start."""

from __future__ import annotations

import logging
from typing import Any, cast

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from control_plane.http import http_app
from control_plane.http.app import rest_routes
from control_plane.http.rest import RestApi
from control_plane.server import ADMIN_SERVICES
from control_plane.store.port import Store

from .rest_client import ROUTER


class _Unused:
    """A servicer whose every method fails the test if it is called."""

    def __getattr__(self, name: str) -> Any:
        async def method(request: Any, context: Any) -> Any:
            raise AssertionError(f"{name} called")

        return method


class _Broken(_Unused):
    async def GetProviderKey(self, request: Any, context: Any) -> Any:
        raise RuntimeError("sk-proj-secret-in-a-traceback")


def _servicers(**replace: object) -> dict[str, object]:
    found: dict[str, object] = {name: _Unused() for name in ADMIN_SERVICES}
    found.update(replace)
    return found


async def test_an_unexpected_error_is_a_500_with_a_request_id_and_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = RestApi(
        ROUTER, _servicers(**{"keyway.v1.ProviderKeyService": _Broken()}), max_body_bytes=1024
    )
    app = Starlette(routes=rest_routes(api))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://cp"
    ) as client:
        with caplog.at_level(logging.ERROR):
            response = await client.get("/provider-keys/pk_1")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["status"] == "INTERNAL"
    assert "request id" in error["message"]
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    request_id = error["message"].split("request id ")[1].split(")")[0]
    assert request_id in caplog.text  # the log has the traceback, for the operator


def test_a_route_without_a_servicer_stops_the_start() -> None:
    servicers = _servicers()
    del servicers["keyway.v1.MasterKeyService"]
    with pytest.raises(LookupError, match=r"no servicer for keyway.v1.MasterKeyService"):
        RestApi(ROUTER, servicers, max_body_bytes=1024)


async def test_more_parts_mount_before_the_rest_api() -> None:
    async def ready() -> str | None:
        return None

    async def metrics(_: Request) -> PlainTextResponse:
        return PlainTextResponse("keyway_up 1\n")

    app = http_app(
        cast(Store, None),  # no request here carries a token to look up
        _servicers(),
        ready=ready,
        parts=[[Route("/metrics", metrics)]],
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://cp"
    ) as client:
        assert (await client.get("/metrics")).text == "keyway_up 1\n"
        assert (await client.get("/openapi.json")).json()["openapi"] == "3.1.0"
        unknown = await client.get("/metrics/x")
        assert unknown.json()["error"]["status"] == "NOT_FOUND"
