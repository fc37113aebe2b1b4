"""Whatever goes wrong building or sending an upstream request is one failed attempt.

A provider key value with a control character (stored before the control plane refused
them) made aiohttp raise while building the request: the next key was never tried and
the client got a plain-text 500. The routing table here is hand-built, so the test does
not depend on what the control plane accepts today.
"""

from __future__ import annotations

import logging

import pytest

from tests.unit import snapshots as s

from .asgi_gateway import Tenant, access_token, asgi_gateway

TOKEN = access_token("R")
HELLO = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("bad", ["sk-mock-ok-\x01ctl", "sk-mock-ok-\r\nx-injected: 1", "sk-\x7f"])
async def test_a_key_value_aiohttp_refuses_fails_over_to_the_next_key(
    bad: str, caplog: pytest.LogCaptureFixture
) -> None:
    keys = (s.key("pk_bad", "openai", bad), s.key("pk_good", "openai", "sk-mock-ok-good"))
    config = s.configuration("akc_1", routes=[s.route("openai", "", ["pk_bad", "pk_good"])])
    caplog.set_level(logging.INFO)
    async with asgi_gateway([Tenant(TOKEN, keys, config)]) as gw:
        response = await gw.http.post(
            "/v1/chat/completions", headers={"authorization": f"Bearer {TOKEN}"}, json=HELLO
        )
        assert response.status_code == 200, response.text
        assert response.headers["x-keyway-provider-key-id"] == "pk_good"
        assert response.headers["x-keyway-attempts"] == "2"
        assert [r.label for r in gw.mock.app.requests] == ["ok-good"]
    assert "upstream request failed: ValueError" in caplog.text
    assert bad not in caplog.text
    assert "ctl" not in caplog.text


async def test_when_every_key_is_unusable_the_client_gets_a_502_listing_them() -> None:
    keys = (s.key("pk_bad", "openai", "sk-\x00"),)
    async with asgi_gateway([Tenant(TOKEN, keys)]) as gw:
        response = await gw.http.post(
            "/v1/chat/completions", headers={"authorization": f"Bearer {TOKEN}"}, json=HELLO
        )
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "all_attempts_failed"
    assert error["attempts"][0]["reason"] == "Could not send the request to the provider"
    assert "sk-" not in response.text
