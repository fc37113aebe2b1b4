"""Fairness between tenants: concurrency caps per access key and per account, the
configuration's own limits, an upstream pool no tenant can exhaust, and streams that
cannot run (or be read) for ever.

Requests are held open at the mock (`sk-mock-hold-…`) on raw sockets; the tests wait
until the proxy counts them in flight, then look at what the next request gets.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from keyway.v1 import access_key_configurations_pb2 as cfg

from data_plane.http.connections import ConnectionLimits
from data_plane.http.context import ProxyOptions
from data_plane.mock_upstream.app import Outcome
from data_plane.routing.admission import AdmissionLimits

from . import raw_http
from .gateway_fixture import SHORT_POLICY, Gateway, Route, client, running_gateway, wait_for_route
from .proxies import RunningProxy, wait_until

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
HELLO = [{"role": "user", "content": "hi"}]
CAPS = AdmissionLimits(per_access_key=2, per_account=3)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(tmp_path_factory.mktemp("gateway") / "data") as gateway:
        yield gateway


@pytest.fixture(scope="module")
def capped(gw: Gateway) -> Iterator[RunningProxy]:
    options = ProxyOptions(policy=SHORT_POLICY, admission=CAPS)
    with gw.proxy(options) as proxy:
        yield proxy


def in_flight(proxy: RunningProxy, access_key_id: str) -> int:
    return proxy.proxy.context.admission.in_flight(access_key_id)


def body(path: str = CHAT) -> bytes:
    if path == MESSAGES:
        return json.dumps(
            {"model": "claude-sonnet-4-6", "max_tokens": 8, "messages": HELLO}
        ).encode()
    return json.dumps({"model": "gpt-4o", "messages": HELLO}).encode()


def hold(stack: ExitStack, proxy: RunningProxy, route: Route, path: str = CHAT) -> socket.socket:
    """A request parked at the mock until its socket closes."""
    sock = stack.enter_context(raw_http.connect(proxy.proxy.port))
    content = body(path)
    headers = {"x-api-key": route.token, "content-length": str(len(content))}
    sock.sendall(raw_http.request_head("POST", path, headers) + content)
    return sock


def post(proxy: RunningProxy, route: Route, path: str = CHAT) -> httpx.Response:
    with client(proxy) as http:
        return http.post(path, headers={"x-api-key": route.token}, content=body(path))


def routed(gw: Gateway, proxy: RunningProxy, provider: str, *values: str) -> Route:
    route = gw.route(provider, *values)
    wait_for_route(proxy, route)
    return route


@pytest.mark.parametrize("path", [CHAT, MESSAGES])
def test_an_access_key_over_its_concurrency_cap_gets_429_in_the_surfaces_envelope(
    gw: Gateway, capped: RunningProxy, path: str
) -> None:
    provider = "anthropic" if path == MESSAGES else "openai"
    route = routed(gw, capped, provider, f"sk-mock-hold-{gw.label('cap')}")
    with ExitStack() as stack:
        for _ in range(CAPS.per_access_key):
            hold(stack, capped, route, path)
        wait_until(lambda: in_flight(capped, route.access_key_id) == 2, what="two in flight")
        refused = post(capped, route, path)
        assert refused.status_code == 429, refused.text
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["x-keyway-request-id"].startswith("req_")
        if path == MESSAGES:
            error = refused.json()
            assert error["type"] == "error"
            assert error["error"]["type"] == "rate_limit_error"
            assert error["error"]["code"] == "concurrency_limit"
        else:
            assert refused.json()["error"]["code"] == "concurrency_limit"
            assert refused.json()["error"]["type"] == "rate_limit_error"
    # The held requests ended with their sockets: the key is admitted again.
    wait_until(lambda: in_flight(capped, route.access_key_id) == 0, what="the slots to free up")


def test_an_account_over_its_cap_is_refused_on_every_key_and_other_accounts_are_not(
    gw: Gateway, capped: RunningProxy
) -> None:
    label = gw.label("account")
    first = routed(gw, capped, "openai", f"sk-mock-hold-{label}")
    second_id, second_token = gw.admin.access_key()
    second = Route(second_token, first.key_ids, second_id)
    wait_for_route(capped, second)
    with ExitStack() as stack:
        hold(stack, capped, first)
        hold(stack, capped, first)
        hold(stack, capped, second)
        wait_until(
            lambda: in_flight(capped, first.access_key_id) + in_flight(capped, second_id) == 3,
            what="three in flight for the account",
        )
        refused = post(capped, second, CHAT)
        assert refused.status_code == 429, refused.text
        assert "account" in refused.json()["error"]["message"]
        # Another tenant, on the same provider and the same proxy, is served meanwhile.
        other = _other_tenant_route(gw, capped, f"sk-mock-ok-{label}")
        served = post(capped, other, CHAT)
        assert served.status_code == 200, served.text


def _other_tenant_route(gw: Gateway, proxy: RunningProxy, value: str) -> Route:
    """A provider key and access key in an account of their own."""
    tenant = gw.other_tenant()
    key_id = tenant.provider_key(value)
    access_key_id, token = tenant.access_key(tenant.configuration("openai", key_id))
    route = Route(token, [key_id], access_key_id)
    wait_for_route(proxy, route)
    return route


def _limited_route(
    gw: Gateway, proxy: RunningProxy, value: str, limits: dict[str, Any]
) -> tuple[Route, str]:
    """An access key whose configuration has `limits`, and the configuration's id."""
    key_id = gw.admin.provider_key(value)
    step = {"type": "user", "keys": [{"id": key_id}]}
    doc = {
        "name": "limited",
        "router": {"rules": [{"provider": "openai", "steps": [step]}]},
        "limits": limits,
    }
    config = json_format.ParseDict(doc, cfg.AccessKeyConfiguration())
    created = gw.admin.configurations.CreateAccessKeyConfiguration(
        cfg.CreateAccessKeyConfigurationRequest(configuration=config), metadata=gw.admin.md
    ).configuration
    access_key_id, token = gw.admin.access_key(created.id)
    route = Route(token, [key_id], access_key_id)
    wait_for_route(proxy, route)
    return route, created.id


def test_a_configurations_requests_per_minute_are_enforced_per_access_key(
    gw: Gateway, capped: RunningProxy
) -> None:
    route, config_id = _limited_route(
        gw, capped, f"sk-mock-ok-{gw.label('rpm')}", {"requestsPerMinute": 2}
    )
    assert [post(capped, route).status_code for _ in range(2)] == [200, 200]
    refused = post(capped, route)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    # Two a minute: the next one is about 30 s away.
    assert 25 <= int(refused.headers["retry-after"]) <= 31
    # A second access key of the same configuration has a minute of its own.
    other_id, other_token = gw.admin.access_key(config_id)
    other = Route(other_token, route.key_ids, other_id)
    wait_for_route(capped, other)
    assert post(capped, other).status_code == 200


def test_a_configurations_concurrency_is_enforced_below_the_proxys_cap(
    gw: Gateway, capped: RunningProxy
) -> None:
    route, _ = _limited_route(gw, capped, f"sk-mock-hold-{gw.label('conc')}", {"concurrency": 1})
    with ExitStack() as stack:
        hold(stack, capped, route)
        wait_until(lambda: in_flight(capped, route.access_key_id) == 1, what="one in flight")
        refused = post(capped, route)
        assert refused.status_code == 429, refused.text
        assert "limit 1" in refused.json()["error"]["message"]


def test_one_tenant_holding_its_whole_share_does_not_delay_another(gw: Gateway) -> None:
    # The upstream pool is as large as the connection cap, so only the per-account cap
    # bounds a tenant: B at its cap, A still gets a connection at once.
    limits = ConnectionLimits(max_connections=40)
    options = ProxyOptions(policy=SHORT_POLICY, admission=AdmissionLimits(20, 20))
    with gw.proxy(options, limits=limits) as proxy:
        label = gw.label("flood")
        tenant_b = routed(gw, proxy, "openai", f"sk-mock-hold-{label}")
        tenant_a = _other_tenant_route(gw, proxy, f"sk-mock-ok-{label}")
        with ExitStack() as stack:
            for _ in range(25):
                hold(stack, proxy, tenant_b)
            wait_until(lambda: in_flight(proxy, tenant_b.access_key_id) == 20, what="B at its cap")
            assert post(proxy, tenant_a).status_code == 200
            assert post(proxy, tenant_b).status_code == 429
        assert proxy.proxy.upstream._settings.pool_limit == 40


def test_a_stream_past_the_maximum_duration_ends_with_an_error_event(gw: Gateway) -> None:
    options = ProxyOptions(policy=SHORT_POLICY, stream_idle_timeout=5.0, max_stream_duration=1.0)
    label = gw.label("long")
    with gw.proxy(options) as proxy:
        route = routed(gw, proxy, "openai", f"sk-mock-trickle-100-{label}")
        with client(proxy) as http:
            response = http.post(
                CHAT,
                headers={"authorization": f"Bearer {route.token}"},
                json={"model": "gpt-4o", "messages": HELLO, "stream": True},
            )
    assert response.status_code == 200
    last = response.content.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
    name, data = last.split(b"\n")
    assert name == b"event: error"
    error = json.loads(data.removeprefix(b"data: "))["error"]
    assert error["code"] == "stream_too_long"
    assert "1s" in error["message"]
    wait_until(lambda: gw.mock.outcomes(label) == [Outcome.CANCELLED], what="upstream cancelled")


def test_a_client_that_stops_reading_is_disconnected_and_the_upstream_cancelled(
    gw: Gateway,
) -> None:
    limits = ConnectionLimits(write_timeout=0.5)
    label = gw.label("unread")
    with gw.proxy(limits=limits) as proxy:
        route = routed(gw, proxy, "openai", f"sk-mock-trickle-0-{label}")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", proxy.proxy.port))
        with sock:
            content = json.dumps({"model": "gpt-4o", "messages": HELLO, "stream": True}).encode()
            headers = {"x-api-key": route.token, "content-length": str(len(content))}
            sock.sendall(raw_http.request_head("POST", CHAT, headers) + content)
            # Never read: the proxy's writes stall, then it gives up on this client.
            wait_until(
                lambda: gw.mock.outcomes(label) == [Outcome.CANCELLED],
                timeout=20,
                what="the upstream request to be cancelled",
            )
            wait_until(
                lambda: in_flight(proxy, route.access_key_id) == 0, what="the slot to free up"
            )
