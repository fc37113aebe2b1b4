"""Connection limits of the proxy's HTTP listener, tested with raw sockets.

Each limit is set low on a proxy of its own. The tests wait for the server to act, with
generous bounds, and never assert how long it took.
"""

from __future__ import annotations

import json
import select
import time
from collections.abc import Iterator

import httpx
import pytest

from data_plane.http.connections import ConnectionLimits

from . import raw_http
from .gateway_fixture import Gateway, Route, running_gateway, wait_for_route
from .proxies import RunningProxy, wait_until

CHAT = "/v1/chat/completions"
BODY = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(tmp_path_factory.mktemp("gateway") / "data") as gateway:
        yield gateway


@pytest.fixture(scope="module")
def tight(gw: Gateway) -> Iterator[RunningProxy]:
    limits = ConnectionLimits(
        max_header_bytes=4096,
        header_read_timeout=0.5,
        body_read_timeout=0.5,
        max_connections=1000,
        keepalive_timeout=0.3,
    )
    with gw.proxy(limits=limits) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def route(gw: Gateway, tight: RunningProxy) -> Route:
    route = gw.route("openai", f"sk-mock-ok-{gw.label('conn')}")
    wait_for_route(tight, route)
    return route


def head(route: Route, length: int = len(BODY), **extra: str) -> bytes:
    headers = {"authorization": f"Bearer {route.token}", "content-length": str(length), **extra}
    return raw_http.request_head("POST", CHAT, headers)


def connection_count(proxy: RunningProxy) -> int:
    return len(proxy.proxy._server.server_state.connections)


def test_a_request_within_the_limits_is_served(tight: RunningProxy, route: Route) -> None:
    with raw_http.connect(tight.proxy.port) as sock:
        sock.sendall(head(route) + BODY)
        assert raw_http.response(sock).status == 200


def test_oversized_headers_get_431_and_a_closed_connection(tight: RunningProxy) -> None:
    with raw_http.connect(tight.proxy.port) as sock:
        # No end of headers in sight: the proxy must not buffer on.
        sock.sendall(b"POST " + CHAT.encode() + b" HTTP/1.1\r\nx-filler: " + b"a" * 8192)
        answer = raw_http.response(sock)
        assert answer.status == 431
        assert json.loads(answer.body)["error"]["code"] == "headers_too_large"
        assert answer.headers["connection"] == "close"
        raw_http.closed(sock)


def test_a_large_body_right_after_small_headers_is_not_mistaken_for_headers(
    tight: RunningProxy, route: Route
) -> None:
    # Headers and body in one write: only the headers count against the header cap.
    padded = json.dumps({"model": "gpt-4o", "messages": [], "pad": "x" * 20000}).encode()
    with raw_http.connect(tight.proxy.port) as sock:
        sock.sendall(head(route, len(padded)) + padded)
        assert raw_http.response(sock).status == 200


def test_headers_trickled_byte_by_byte_time_out_with_408(tight: RunningProxy) -> None:
    request = head(Route("kwak_x", [], "ak"))
    with raw_http.connect(tight.proxy.port) as sock:
        sent = 0
        received = b""
        deadline = time.monotonic() + 20
        # One byte at a time, slower than the header timeout allows in total.
        sock.settimeout(0.05)
        while time.monotonic() < deadline:
            # A byte sent after the answer arrived would draw a reset that can discard the
            # answer before it is read: send only while nothing waits to be read.
            waiting, _, _ = select.select([sock], [], [], 0)
            if sent < len(request) and not waiting:
                try:
                    sock.sendall(request[sent : sent + 1])
                except OSError:
                    break
                sent += 1
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        assert sent < len(request), "the whole request went through: no timeout applied"
    assert received.startswith(b"HTTP/1.1 408 "), received[:200]
    assert b'"request_timeout"' in received


def test_an_idle_connection_is_closed_without_an_answer(tight: RunningProxy) -> None:
    with raw_http.connect(tight.proxy.port) as sock:
        assert raw_http.closed(sock) == b""


def test_a_body_trickled_slower_than_the_timeout_gets_408(
    gw: Gateway, tight: RunningProxy, route: Route
) -> None:
    with raw_http.connect(tight.proxy.port) as sock:
        sock.sendall(head(route) + BODY[:10])
        received = b""
        sock.settimeout(0.05)
        deadline = time.monotonic() + 20
        sent = 10
        while time.monotonic() < deadline and sent < len(BODY):
            try:
                sock.sendall(BODY[sent : sent + 1])
                sent += 1
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            received += chunk
        received += raw_http.closed(sock)
        assert sent < len(BODY), "the whole body went through: no timeout applied"
    assert received.startswith(b"HTTP/1.1 408 "), received[:200]


def test_a_keep_alive_connection_is_closed_when_idle(tight: RunningProxy, route: Route) -> None:
    with raw_http.connect(tight.proxy.port) as sock:
        sock.sendall(head(route) + BODY)
        assert raw_http.response(sock).status == 200
        sock.sendall(head(route) + BODY)  # keep-alive works
        assert raw_http.response(sock).status == 200
        assert raw_http.closed(sock) == b""


def test_bare_line_breaks_do_not_keep_a_connection_open(tight: RunningProxy, route: Route) -> None:
    with raw_http.connect(tight.proxy.port) as sock:
        sock.sendall(head(route) + BODY)
        assert raw_http.response(sock).status == 200
        # CRLFs between requests are allowed, but reset uvicorn's keep-alive timer.
        deadline = time.monotonic() + 20
        sock.settimeout(0.1)
        while time.monotonic() < deadline:
            try:
                sock.sendall(b"\r\n")
                if sock.recv(65536) == b"":
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        else:
            raise AssertionError("the connection stayed open")


def test_connections_beyond_the_limit_get_503(gw: Gateway, route: Route) -> None:
    limits = ConnectionLimits(max_connections=3)
    with gw.proxy(limits=limits) as proxy:
        wait_for_route(proxy, route)
        held = [raw_http.connect(proxy.proxy.port) for _ in range(3)]
        try:
            wait_until(lambda: connection_count(proxy) == 3, what="three connections")
            with raw_http.connect(proxy.proxy.port) as extra:
                answer = raw_http.response(extra)
                assert answer.status == 503
                assert json.loads(answer.body)["error"]["code"] == "overloaded"
                raw_http.closed(extra)
            # The held ones still work.
            held[0].sendall(head(route) + BODY)
            assert raw_http.response(held[0]).status == 200
        finally:
            for sock in held:
                sock.close()
        # Once they are gone, new connections are accepted again.
        wait_until(lambda: connection_count(proxy) == 0, what="the connections to close")
        with httpx.Client(base_url=proxy.url, timeout=10) as http:
            served = http.post(
                CHAT, headers={"authorization": f"Bearer {route.token}"}, content=BODY
            )
        assert served.status_code == 200


def test_slow_readers_do_not_block_others(tight: RunningProxy, route: Route) -> None:
    # A connection sitting in its header timeout does not delay another request.
    with raw_http.connect(tight.proxy.port) as stuck:
        stuck.sendall(b"POST /v1/chat/completions HTTP/1.1\r\n")
        with raw_http.connect(tight.proxy.port) as sock:
            sock.sendall(head(route) + BODY)
            assert raw_http.response(sock).status == 200
        assert raw_http.closed(stuck).startswith(b"HTTP/1.1 408 ")
