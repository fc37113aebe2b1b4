"""Failover edge cases through a real proxy: every standard rate-limit signal is honoured,
deadline-cut attempts are not charged to their key, and Responses streams end in the
Responses API's own error events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from data_plane.http.context import ProxyOptions
from data_plane.routing.policy import FailoverPolicy

from .gateway_fixture import SHORT_POLICY, Gateway, Route, client, running_gateway, wait_for_route
from .proxies import RunningProxy, wait_until

HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(tmp_path_factory.mktemp("gateway") / "data") as gateway:
        yield gateway


@pytest.fixture(scope="module")
def forgetful(gw: Gateway) -> Iterator[RunningProxy]:
    """A proxy that forgets an unexplained 429 at once: any longer hold came from a header."""
    policy = FailoverPolicy(
        attempt_timeout=SHORT_POLICY.attempt_timeout,
        total_deadline=SHORT_POLICY.total_deadline,
        rate_limit_default=0.0,
        max_retry_wait=0.0,
    )
    with gw.proxy(ProxyOptions(policy=policy, stream_idle_timeout=0.5)) as proxy:
        yield proxy


def kind(label: str | None) -> str:
    """The behaviour part of a mock key's label (`429date-30-x` -> `429date`)."""
    assert label is not None
    return label.split("-")[0]


def routed(gw: Gateway, proxy: RunningProxy, provider: str, *values: str) -> Route:
    route = gw.route(provider, *values)
    wait_for_route(proxy, route)
    return route


def call(http: httpx.Client, route: Route, provider: str) -> httpx.Response:
    if provider == "anthropic":
        body = {"model": "claude-sonnet-4-6", "max_tokens": 16, "messages": HELLO}
        return http.post("/v1/messages", headers={"x-api-key": route.token}, json=body)
    headers = {"authorization": f"Bearer {route.token}"}
    return http.post(
        "/v1/chat/completions", headers=headers, json={"model": "gpt-4o", "messages": HELLO}
    )


@pytest.mark.parametrize(
    ("provider", "signal"),
    [
        ("openai", "429date"),  # Retry-After: <HTTP date>
        ("anthropic", "429date"),
        ("anthropic", "429reset"),  # only anthropic-ratelimit-*-reset (RFC 3339)
        ("openai", "429reset"),  # only x-ratelimit-reset-* (durations)
    ],
)
def test_a_rate_limited_key_is_held_until_the_time_its_provider_named(
    gw: Gateway, forgetful: RunningProxy, provider: str, signal: str
) -> None:
    label = gw.label(signal)
    route = routed(gw, forgetful, provider, f"sk-mock-{signal}-30-{label}", f"sk-mock-ok-{label}")
    limited, healthy = route.key_ids
    with client(forgetful) as http:
        first = call(http, route, provider)
        assert first.status_code == 200, first.text
        assert first.headers["x-keyway-attempts"] == "2"
        # With the default hold (0 s here) the limited key would be tried first again.
        for _ in range(3):
            again = call(http, route, provider)
            assert again.status_code == 200, again.text
            assert again.headers["x-keyway-provider-key-id"] == healthy
            assert again.headers["x-keyway-attempts"] == "1"
    assert [kind(r.label) for r in gw.mock.records(label)] == [
        signal,
        "ok",
        "ok",
        "ok",
        "ok",
    ]
    assert limited != healthy


def test_every_key_rate_limited_until_a_date_tells_the_client_when(
    gw: Gateway, forgetful: RunningProxy
) -> None:
    route = routed(gw, forgetful, "openai", f"sk-mock-429date-40-{gw.label('date-all')}")
    with client(forgetful) as http:
        response = call(http, route, "openai")
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "all_rate_limited"
    assert 38 <= int(response.headers["retry-after"]) <= 42


def test_a_timeout_cut_short_by_the_deadline_is_not_the_keys_last_error(gw: Gateway) -> None:
    # [500, slow, ok] and a deadline the slow key outlasts: the ok key is never tried, and
    # the slow key's attempt is reported as the deadline's doing, not its own.
    policy = FailoverPolicy(attempt_timeout=30.0, total_deadline=0.6, min_attempt_time=0.25)
    label = gw.label("deadline")
    with gw.proxy(ProxyOptions(policy=policy)) as proxy, client(proxy) as http:
        values = (f"sk-mock-500-{label}", f"sk-mock-slow-5000-{label}", f"sk-mock-ok-{label}")
        route = routed(gw, proxy, "openai", *values)
        response = call(http, route, "openai")
        failing, slow, healthy = route.key_ids
        assert response.status_code == 504, response.text
        attempts = response.json()["error"]["attempts"]
        assert [(a["provider_key_id"], a["status"]) for a in attempts] == [
            (failing, 500),
            (slow, None),
        ]
        assert attempts[1]["reason"] == "Total deadline reached before the provider answered"
        wait_until(
            lambda: gw.provider_key(failing).last_error.status == 500,
            what="usage to reach the control plane",
        )
    assert [kind(r.label) for r in gw.mock.records(label)] == ["500", "slow"]
    assert not gw.provider_key(slow).HasField("last_error")
    assert not gw.provider_key(healthy).HasField("last_error")


# -- Responses streams ----------------------------------------------------------------------


def sse_events(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in body.decode().split("\n\n"):
        if not block.strip():
            continue
        name, data = "", ""
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        out.append((name, json.loads(data)))
    return out


def test_a_responses_stream_that_breaks_ends_the_way_the_responses_api_does(
    gw: Gateway, forgetful: RunningProxy
) -> None:
    route = routed(gw, forgetful, "openai", f"sk-mock-break-4-{gw.label('responses')}")
    body = {"model": "gpt-4o", "input": "Say hello", "stream": True}
    with client(forgetful) as http:
        response = http.post(
            "/v1/responses", headers={"authorization": f"Bearer {route.token}"}, json=body
        )
    assert response.status_code == 200, response.text
    events = sse_events(response.content)
    relayed, (error_name, error), (failed_name, failed) = events[:-2], events[-2], events[-1]
    assert len(relayed) == 4
    created = relayed[0][1]
    assert created["type"] == "response.created"
    assert error_name == "error"
    assert set(error) == {"type", "code", "message", "param", "sequence_number"}
    assert (error["type"], error["code"], error["param"]) == (
        "error",
        "upstream_stream_error",
        None,
    )
    assert "incomplete" in error["message"]
    assert error["sequence_number"] == relayed[-1][1]["sequence_number"] + 1
    assert failed_name == "response.failed"
    assert failed["type"] == "response.failed"
    assert failed["sequence_number"] == error["sequence_number"] + 1
    assert failed["response"]["id"] == created["response"]["id"]
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"]["code"] == "server_error"
