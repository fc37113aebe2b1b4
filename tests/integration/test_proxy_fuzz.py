"""Hypothesis against the proxy's ASGI app: bodies, headers, methods and paths.

Whatever arrives, the answer is never a 500, always carries a request id, and an error
of the proxy's own (no upstream attempt made) is its JSON envelope with a catalog code.
Requests go straight into the ASGI callable, so headers and paths can hold bytes an HTTP
client library would refuse to send.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_plane.routing.errors import CATALOG
from tests.unit import snapshots as s

from .asgi_gateway import Harness, Tenant, access_token, asgi_gateway
from .control_planes import BackgroundLoop

TOKEN = access_token("F")
PATHS = [
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/embeddings",
    "/v1/messages",
    "/v1/models",
    "/healthz",
    "/readyz",
    "/metrics",
    "/",
    "/v1/",
    "/v1/messages/batches",
]
MODELS = [
    "gpt-4o",
    "gpt-4o-mini",
    "openai:gpt-4o",
    "anthropic:claude-sonnet-4-5",
    "claude-sonnet-4-5",
    "openai:",
    ":gpt-4o",
    "nope:x",
    "gpt-4o\x00",
    "é" * 300,
    "",
]


class Running:
    def __init__(self) -> None:
        self.background = BackgroundLoop("fuzz")
        keys = (
            s.key("pk_o", "openai", "sk-mock-ok-fuzz"),
            s.key("pk_a", "anthropic", "sk-mock-ok-fz"),
        )
        self._context = asgi_gateway([Tenant(TOKEN, keys)])
        self.harness: Harness = self.background.run(self._context.__aenter__())

    def close(self) -> None:
        try:
            self.background.run(self._context.__aexit__(None, None, None))
        finally:
            self.background.close()


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    r = Running()
    try:
        yield r
    finally:
        r.close()


def send(
    running: Running, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> tuple[int, dict[bytes, bytes], bytes]:
    status, raw_headers, content = running.background.run(
        running.harness.raw(method, path, headers, body), timeout=30
    )
    return status, dict(raw_headers), content


def check(status: int, headers: dict[bytes, bytes], content: bytes) -> None:
    assert status != 500, content[:300]
    assert 200 <= status < 600, status
    assert headers[b"x-keyway-request-id"].startswith(b"req_")
    if status < 400 or b"x-keyway-attempts" in headers:
        return  # served, or the upstream's own answer relayed
    if not headers.get(b"content-type", b"").startswith(b"application/json"):
        return  # e.g. Starlette's 404/405 on the health app's routes
    error = json.loads(content)["error"]
    assert error["code"] in CATALOG, error
    assert CATALOG[error["code"]].status == status


_VALID_AUTH = st.sampled_from(
    [[(b"authorization", f"Bearer {TOKEN}".encode())], [(b"x-api-key", TOKEN.encode())]]
)
_BAD_AUTH = st.sampled_from(
    [
        [(b"authorization", b"Bearer kwak_garbage")],
        [(b"authorization", b"Basic " + TOKEN.encode())],
        [(b"authorization", b"Bearer " + TOKEN.encode() + b"\xff")],
        [],
    ]
)
# Mostly valid, so that most examples get past authentication.
_AUTH = st.integers(0, 4).flatmap(lambda n: _BAD_AUTH if n == 4 else _VALID_AUTH)
_HEADER_NAMES = st.sampled_from(
    [
        b"content-type",
        b"accept",
        b"anthropic-version",
        b"anthropic-beta",
        b"openai-beta",
        b"x-stainless-lang",
        b"idempotency-key",
        b"content-length",
        b"authorization",
        b"x-api-key",
        b"cookie",
        b"x-keyway-attempts",
        b"x-\xff\x00odd",
    ]
)
_HEADER_VALUES = st.binary(max_size=40) | st.sampled_from(
    [b"application/json", b"2023-06-01", b"text/event-stream", b"0", b"-1", b"99999999999"]
)
_JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def request_bodies(draw: st.DrawFn) -> bytes:
    doc: dict[str, Any] = {}
    if draw(st.integers(0, 4)):
        doc["model"] = draw(st.sampled_from(MODELS) if draw(st.integers(0, 3)) else _JSON_VALUES)
    if draw(st.integers(0, 3)) == 0:
        doc["models"] = draw(st.lists(st.sampled_from(MODELS), max_size=12) | _JSON_VALUES)
    if draw(st.booleans()):
        doc["stream"] = draw(st.booleans() | _JSON_VALUES)
    doc["messages"] = draw(st.just([{"role": "user", "content": "hi"}]) | _JSON_VALUES)
    doc["input"] = "hi"
    doc["max_tokens"] = 8
    text = json.dumps(doc).encode()
    shape = draw(st.sampled_from(["json", "json", "json", "duplicate", "mutated", "garbage"]))
    if shape == "duplicate":
        return text[:-1] + b', "model": "gpt-4o-mini"}'
    if shape == "mutated" and text:
        i = draw(st.integers(0, len(text) - 1))
        return text[:i] + draw(st.binary(min_size=1, max_size=3)) + text[i + 1 :]
    if shape == "garbage":
        return draw(st.binary(max_size=64))
    return text


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    path=st.sampled_from(PATHS[:4]),
    auth=_AUTH,
    anthropic=st.booleans(),
    body=request_bodies(),
)
def test_model_calls_never_answer_500(
    running: Running, path: str, auth: list[tuple[bytes, bytes]], anthropic: bool, body: bytes
) -> None:
    headers = [*auth, (b"content-type", b"application/json")]
    if anthropic:
        headers.append((b"anthropic-version", b"2023-06-01"))
    check(*send(running, "POST", path, headers, body))


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "HEAD"]),
    path=st.sampled_from(PATHS) | st.text(max_size=30).map(lambda t: "/" + t),
    auth=_AUTH,
    extra=st.lists(st.tuples(_HEADER_NAMES, _HEADER_VALUES), max_size=6),
)
def test_any_method_path_and_headers_never_answer_500(
    running: Running,
    method: str,
    path: str,
    auth: list[tuple[bytes, bytes]],
    extra: list[tuple[bytes, bytes]],
) -> None:
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    check(*send(running, method, path, [*auth, *extra], body.encode()))
