"""Hostile and large request bodies through a real proxy and the in-loop mock upstream.

Memory and event-loop stalls are measured by `make bench`; these tests pin the behaviour:
what is refused before any upstream call, and that large bodies (scanned off the event
loop) reach the provider edited exactly as small ones do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from data_plane.http import jsonscan
from data_plane.http.body import MAX_FALLBACKS

from . import raw_http
from .gateway_fixture import SHORT_OPTIONS, Gateway, Route, client, running_gateway, wait_for_route
from .proxies import RunningProxy

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Say hello"}]
BIG = SHORT_OPTIONS.max_body_bytes


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(tmp_path_factory.mktemp("gateway") / "data") as gateway:
        yield gateway


@pytest.fixture(scope="module")
def proxy(gw: Gateway) -> Iterator[RunningProxy]:
    # A body limit well above jsonscan.SMALL, so that large bodies take the scanner.
    options = SHORT_OPTIONS.__class__(
        policy=SHORT_OPTIONS.policy,
        stream_idle_timeout=SHORT_OPTIONS.stream_idle_timeout,
        max_body_bytes=4 * jsonscan.SMALL,
    )
    with gw.proxy(options) as running:
        yield running


@pytest.fixture
def http(proxy: RunningProxy) -> Iterator[httpx.Client]:
    with client(proxy) as c:
        yield c


def routed(gw: Gateway, proxy: RunningProxy, *values: str) -> Route:
    route = gw.route("openai", *values)
    wait_for_route(proxy, route)
    return route


def post(http: httpx.Client, route: Route, body: bytes) -> httpx.Response:
    headers = {"authorization": f"Bearer {route.token}", "content-type": "application/json"}
    return http.post(CHAT, headers=headers, content=body)


def code(response: httpx.Response) -> str:
    value: str = response.json()["error"]["code"]
    return value


@pytest.mark.parametrize("padding", [0, 2 * jsonscan.SMALL], ids=["small", "large"])
def test_a_second_model_key_is_refused_before_any_upstream_call(
    gw: Gateway, proxy: RunningProxy, http: httpx.Client, padding: int
) -> None:
    # Scope checks read one `model`; a provider that takes the other would bypass them.
    label = gw.label("dup")
    route = routed(gw, proxy, f"sk-mock-ok-{label}")
    pad = json.dumps("x" * padding)
    body = f'{{"model":"gpt-4o","pad":{pad},"messages":[],"model":"openai:gpt-4o-mini"}}'
    response = post(http, route, body.encode())
    assert response.status_code == 400, response.text
    assert code(response) == "duplicate_key"
    assert response.json()["error"]["param"] == "model"
    assert gw.mock.records(label) == []


def test_too_many_fallback_models_are_refused(
    gw: Gateway, proxy: RunningProxy, http: httpx.Client
) -> None:
    label = gw.label("models")
    route = routed(gw, proxy, f"sk-mock-500-{label}")
    models = [f"openai:gpt-4o-mini-{i}" for i in range(MAX_FALLBACKS + 1)]
    body = json.dumps({"model": "gpt-4o", "models": models, "messages": HELLO}).encode()
    response = post(http, route, body)
    assert response.status_code == 400, response.text
    assert code(response) == "invalid_models"
    assert gw.mock.records(label) == []


def test_a_large_body_is_rewritten_byte_for_byte_for_each_upstream_model(
    gw: Gateway, proxy: RunningProxy, http: httpx.Client
) -> None:
    label = gw.label("large")
    route = routed(gw, proxy, f"sk-mock-500-{label}", f"sk-mock-ok-{label}")
    image = "QUJD" * (jsonscan.SMALL // 2)
    content = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image}"}}]
    head = b'{ "model" : "openai:gpt-4o-mini",\n "models": ["openai:gpt-4o"], "messages": '
    rest = json.dumps([{"role": "user", "content": content}], indent=1).encode() + b"}"
    body = head + rest
    assert len(body) > jsonscan.SMALL
    response = post(http, route, body)
    assert response.status_code == 200, response.text
    assert response.headers["x-keyway-model"] == "gpt-4o-mini"
    first, second = gw.mock.records(label)
    expected = b'{ "model" : "gpt-4o-mini", "messages": ' + rest
    assert first.body == second.body == expected


def test_a_large_malformed_body_is_refused(
    gw: Gateway, proxy: RunningProxy, http: httpx.Client
) -> None:
    label = gw.label("large-bad")
    route = routed(gw, proxy, f"sk-mock-ok-{label}")
    body = b'{"model":"gpt-4o","messages":[' + b"[1]," * (jsonscan.SMALL // 2) + b"[1],]}"
    response = post(http, route, body)
    assert response.status_code == 400, response.text
    assert code(response) == "invalid_json"
    assert gw.mock.records(label) == []


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(
    gw: Gateway, proxy: RunningProxy
) -> None:
    route = routed(gw, proxy, f"sk-mock-ok-{gw.label('declared')}")
    limit = 4 * jsonscan.SMALL
    head = raw_http.request_head(
        "POST",
        CHAT,
        {"authorization": f"Bearer {route.token}", "content-length": str(limit + 1)},
    )
    with raw_http.connect(proxy.proxy.port) as sock:
        sock.sendall(head)
        # No body byte is sent: the answer can only come from the declared length.
        answer = raw_http.response(sock)
    assert answer.status == 413
    assert json.loads(answer.body)["error"]["code"] == "request_too_large"
