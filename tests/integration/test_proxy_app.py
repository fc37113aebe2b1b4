"""The proxy's HTTP behaviour against a real control plane and the in-loop mock upstream.

What the SDK suite (tests/e2e) cannot see: raw statuses, headers and bytes, the failover
engine's timing (per-attempt timeout, total deadline, the one bounded wait), hold-backs across
requests, what reaches the upstream byte for byte, and how the mock saw each upstream request
end (completed, cancelled by the proxy, broken).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from keyway.v1 import access_keys_pb2 as ak
from keyway.v1 import provider_keys_pb2 as pk

from data_plane.http.context import ProxyOptions
from data_plane.mock_upstream.app import Outcome
from data_plane.routing.policy import FailoverPolicy
from data_plane.shared.tokens import ACCESS_PREFIX, BODY_LEN, checksum, token_sha256

from .gateway_fixture import (
    SHORT_OPTIONS,
    SHORT_POLICY,
    Gateway,
    Route,
    client,
    running_gateway,
    wait_for_route,
)
from .proxies import RunningProxy, free_port, proxy_running, wait_until

HELLO = [{"role": "user", "content": "Say hello"}]
CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
EXPOSED = "access-control-expose-headers"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(tmp_path_factory.mktemp("gateway") / "data") as gateway:
        yield gateway


@pytest.fixture(scope="module")
def shared(gw: Gateway) -> Iterator[RunningProxy]:
    """One proxy with SHORT_OPTIONS; tests never share keys, so hold-backs never cross tests."""
    with gw.proxy() as proxy:
        yield proxy


@pytest.fixture
def http(shared: RunningProxy) -> Iterator[httpx.Client]:
    with client(shared) as c:
        yield c


def routed(gw: Gateway, proxy: RunningProxy, provider: str, *values: str) -> Route:
    route = gw.route(provider, *values)
    wait_for_route(proxy, route)
    return route


def bearer(route: Route) -> dict[str, str]:
    return {"authorization": f"Bearer {route.token}"}


def chat(http: httpx.Client, route: Route, model: str = "gpt-4o", **body: Any) -> httpx.Response:
    return http.post(CHAT, headers=bearer(route), json={"model": model, "messages": HELLO, **body})


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def attempted(response: httpx.Response) -> list[tuple[str, int | None]]:
    return [(a["provider_key_id"], a["status"]) for a in error_of(response)["attempts"]]


def events(body: bytes) -> list[bytes]:
    """The SSE events of a whole stream body (each without its blank-line terminator)."""
    assert body.endswith(b"\n\n"), body[-200:]
    return body[:-2].split(b"\n\n")


def served_by(response: httpx.Response, key_id: str, attempts: int) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["x-keyway-provider-key-id"] == key_id
    assert response.headers["x-keyway-attempts"] == str(attempts)


# -- failover ----------------------------------------------------------------------------------


def test_attempt_timeout_fails_over_and_all_timeouts_within_the_deadline_are_502(
    gw: Gateway,
) -> None:
    policy = FailoverPolicy(attempt_timeout=0.4, total_deadline=10.0)
    label = gw.label("slow")
    with gw.proxy(ProxyOptions(policy=policy)) as proxy, client(proxy) as http:
        route = routed(gw, proxy, "openai", f"sk-mock-slow-5000-{label}", "sk-mock-ok-next")
        started = time.monotonic()
        response = chat(http, route)
        served_by(response, route.key_ids[1], attempts=2)
        assert time.monotonic() - started >= 0.4
        # The timed-out attempt was dropped, not left running at the provider.
        wait_until(lambda: gw.mock.outcomes(label) == [Outcome.CANCELLED], what="cancel")

        both = routed(
            gw, proxy, "openai", f"sk-mock-slow-5000-{label}-b", f"sk-mock-slow-5000-{label}-c"
        )
        started = time.monotonic()
        response = chat(http, both)
        elapsed = time.monotonic() - started
    assert response.status_code == 502, response.text
    assert error_of(response)["code"] == "all_attempts_failed"
    assert attempted(response) == [(both.key_ids[0], None), (both.key_ids[1], None)]
    assert {a["reason"] for a in error_of(response)["attempts"]} == {
        "Provider did not answer in time"
    }
    assert response.headers["x-keyway-attempts"] == "2"
    assert 0.8 <= elapsed < 5


def test_the_failure_message_names_each_attempt_and_the_log_says_what_comes_next(
    gw: Gateway, shared: RunningProxy, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    label = gw.label("why")
    route = routed(gw, shared, "openai", f"sk-mock-500-{label}", f"sk-mock-401-{label}")
    first, second = route.key_ids
    with caplog.at_level(logging.INFO, logger="keyway.data_plane.proxy"):
        response = chat(http, route)
    assert response.status_code == 502
    assert error_of(response)["message"] == (
        f"2 attempts, all failed: openai/gpt-4o with {first}: 500 Provider server error; "
        f"openai/gpt-4o with {second}: 401 Provider returns an auth error"
    )
    request_id = response.headers["x-keyway-request-id"]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(request_id)]
    assert lines == [
        f"{request_id}: openai key {first} -> 500 Provider server error; "
        f"failing over to openai key {second}",
        f"{request_id}: openai key {second} -> 401 Provider returns an auth error; "
        "nothing left to try (all_attempts_failed)",
    ]


def test_total_deadline_is_504_and_stops_trying_keys(gw: Gateway) -> None:
    policy = FailoverPolicy(attempt_timeout=0.4, total_deadline=0.7)
    label = gw.label("late")
    with gw.proxy(ProxyOptions(policy=policy)) as proxy, client(proxy) as http:
        route = routed(gw, proxy, "openai", *(f"sk-mock-slow-5000-{label}-{i}" for i in range(3)))
        started = time.monotonic()
        response = chat(http, route)
        elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    error = error_of(response)
    assert error["code"] == "deadline_exceeded"
    # The second attempt gets only what is left of the deadline (on a slow machine the first
    # may already use it up); the third key never runs.
    attempts = attempted(response)
    assert attempts == [(route.key_ids[0], None), (route.key_ids[1], None)][: len(attempts)]
    assert attempts
    assert 0.7 <= elapsed < 3
    wait_until(
        lambda: gw.mock.outcomes(label) == [Outcome.CANCELLED] * len(attempts),
        what="the slow attempts to be cancelled",
    )


def test_server_errors_fail_over_and_hold_nothing_back(
    gw: Gateway, shared: RunningProxy, http: httpx.Client
) -> None:
    label = gw.label("5xx")
    values = [f"sk-mock-{s}-{label}" for s in ("500", "503", "529")] + [f"sk-mock-ok-{label}"]
    route = routed(gw, shared, "openai", *values)
    for _ in range(2):
        served_by(chat(http, route), route.key_ids[3], attempts=4)
    labels = [r.label for r in gw.mock.records(label)]
    assert labels == [v.removeprefix("sk-mock-") for v in values] * 2


def test_auth_errors_hold_the_key_back_until_it_is_rotated(
    gw: Gateway, shared: RunningProxy, http: httpx.Client
) -> None:
    label = gw.label("auth")
    route = routed(
        gw, shared, "openai", f"sk-mock-401-{label}", f"sk-mock-403-{label}", f"sk-mock-ok-{label}"
    )
    revoked, _, healthy = route.key_ids
    served_by(chat(http, route), healthy, attempts=3)
    # Both failed keys are now tried last: the next request goes straight to the healthy one.
    served_by(chat(http, route), healthy, attempts=1)
    assert [r.status for r in gw.mock.records(label)] == [401, 403, 200, 200]

    rotated = f"sk-mock-ok-rotated-{label}"
    gw.admin.rotate(revoked, rotated)

    def applied() -> bool:
        keys = [a.keys.get(revoked) for a in shared.table().accounts.values()]
        return any(k is not None and k.value == rotated for k in keys)

    wait_until(applied, what="the proxy to apply the rotation")
    # A new credential has no history: the rotated key is first in line again.
    served_by(chat(http, route), revoked, attempts=1)
    assert gw.mock.records(label)[-1].label == rotated.removeprefix("sk-mock-")


def test_short_retry_after_is_waited_for_once(
    gw: Gateway, shared: RunningProxy, http: httpx.Client
) -> None:
    label = gw.label("wait")
    route = routed(gw, shared, "openai", f"sk-mock-429-1-{label}")
    started = time.monotonic()
    response = chat(http, route)
    elapsed = time.monotonic() - started
    assert response.status_code == 429, response.text
    assert error_of(response)["code"] == "all_rate_limited"
    # The same (model, key) twice: the one bounded wait-and-retry, after the announced second.
    assert attempted(response) == [(route.key_ids[0], 429)] * 2
    assert response.headers["x-keyway-attempts"] == "2"
    assert response.headers["retry-after"] == "1"
    assert elapsed >= 0.9
    assert len(gw.mock.records(label)) == 2


def test_long_retry_after_is_answered_at_once(
    gw: Gateway, shared: RunningProxy, http: httpx.Client
) -> None:
    label = gw.label("nowait")
    # 8 s is over max_retry_wait (5 s): holding the client that long is not worth it.
    route = routed(gw, shared, "openai", f"sk-mock-429-8-{label}")
    started = time.monotonic()
    response = chat(http, route)
    assert time.monotonic() - started < 2
    assert response.status_code == 429, response.text
    assert attempted(response) == [(route.key_ids[0], 429)]
    assert response.headers["retry-after"] == "8"
    assert response.headers["x-keyway-attempts"] == "1"


def test_models_fallback_rewrites_model_and_drops_models_byte_for_byte(
    gw: Gateway, shared: RunningProxy, http: httpx.Client
) -> None:
    label = gw.label("fallback")
    route = routed(gw, shared, "openai", f"sk-mock-ok-{label}")
    # Odd spacing, escapes, raw UTF-8 and number formats that a re-serialiser would change.
    head = b'{ "model" :"groq:llama-3.3-70b-versatile" ,\n  "messages":[{"role":"user",'
    middle = b'"content":"caf\xc3\xa9 \\u00e9 \\"q\\""}],'
    models = b' "models": ["openai:gpt-4o-mini"],'
    tail = b'"temperature":1.50e0,"n":1 }'
    body = head + middle + models + tail
    response = http.post(
        CHAT, headers={**bearer(route), "content-type": "application/json"}, content=body
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-keyway-provider"] == "openai"
    assert response.headers["x-keyway-model"] == "gpt-4o-mini"
    assert response.headers["x-keyway-attempts"] == "1"
    (record,) = gw.mock.records(label)
    expected = b'{ "model" :"gpt-4o-mini" ,\n  "messages":[{"role":"user",' + middle + tail
    assert record.body == expected
    assert record.model == "gpt-4o-mini"


def test_no_key_for_the_provider_is_502_naming_it(
    gw: Gateway, shared: RunningProxy, http: httpx.Client
) -> None:
    route = routed(gw, shared, "openai", f"sk-mock-ok-{gw.label('nokey')}")
    response = chat(http, route, model="groq:llama-3.3-70b-versatile")
    assert response.status_code == 502, response.text
    error = error_of(response)
    assert error["code"] == "no_provider_key"
    assert "groq" in error["message"]
    assert error["attempts"] == []
    assert "x-keyway-attempts" not in response.headers


# -- streaming ---------------------------------------------------------------------------------

OPENAI_STREAM = (CHAT, {"model": "gpt-4o", "messages": HELLO, "stream": True})
ANTHROPIC_STREAM = (
    MESSAGES,
    {"model": "claude-sonnet-4-6", "max_tokens": 16, "messages": HELLO, "stream": True},
)


@pytest.mark.parametrize(
    ("provider", "path", "body"),
    [("openai", *OPENAI_STREAM), ("anthropic", *ANTHROPIC_STREAM)],
    ids=["openai", "anthropic"],
)
def test_stream_stall_after_first_byte_ends_with_an_error_event(
    gw: Gateway,
    shared: RunningProxy,
    http: httpx.Client,
    provider: str,
    path: str,
    body: dict[str, Any],
) -> None:
    label = gw.label("stall")
    route = routed(gw, shared, provider, f"sk-mock-stall-2-{label}", f"sk-mock-ok-{label}")
    started = time.monotonic()
    response = http.post(path, headers={"x-api-key": route.token}, json=body)
    elapsed = time.monotonic() - started
    # Committed to the stalling key: it had produced bytes, so no failover was possible.
    served_by(response, route.key_ids[0], attempts=1)
    assert elapsed >= SHORT_OPTIONS.stream_idle_timeout
    *relayed, last = events(response.content)
    assert len(relayed) == 2
    assert all(e.startswith((b"data: {", b"event: ")) for e in relayed)
    name, data = last.split(b"\n")
    assert name == b"event: error"
    payload = json.loads(data.removeprefix(b"data: "))
    if provider == "anthropic":
        assert payload["type"] == "error"
        assert payload["error"]["type"] == "api_error"
        assert "incomplete" in payload["error"]["message"]
    else:
        assert payload["error"]["code"] == "upstream_stream_error"
        assert "stalled" in payload["error"]["message"]
    wait_until(lambda: gw.mock.outcomes(label) == [Outcome.CANCELLED], what="upstream cancelled")


@pytest.mark.parametrize("failing", ["break-0", "stall-0"])
def test_stream_failing_before_the_first_byte_fails_over_invisibly(
    gw: Gateway, shared: RunningProxy, http: httpx.Client, failing: str
) -> None:
    label = gw.label("first-byte")
    route = routed(gw, shared, "openai", f"sk-mock-{failing}-{label}", f"sk-mock-ok-{label}")
    path, body = OPENAI_STREAM
    response = http.post(path, headers=bearer(route), json=body)
    served_by(response, route.key_ids[1], attempts=2)
    assert response.headers["content-type"].startswith("text/event-stream")
    stream = events(response.content)
    assert stream[-1] == b"data: [DONE]"
    assert not any(b"error" in e for e in stream)
    first = gw.mock.records(label)[0]
    expected = Outcome.BROKEN if failing.startswith("break") else Outcome.CANCELLED
    wait_until(lambda: first.outcome is expected, what=f"the first attempt to end {expected}")


def test_client_leaving_during_failover_cancels_the_upstream_request(gw: Gateway) -> None:
    # Bounds far beyond the test: only the client leaving can end the held upstream request.
    patient = ProxyOptions(policy=FailoverPolicy(attempt_timeout=30.0, total_deadline=60.0))
    label = gw.label("leave")
    with gw.proxy(patient) as proxy:
        route = routed(gw, proxy, "openai", f"sk-mock-500-{label}", f"sk-mock-hold-{label}")
        with (
            httpx.Client(base_url=proxy.url, timeout=httpx.Timeout(5, read=0.3)) as http,
            pytest.raises(httpx.ReadTimeout),
        ):
            chat(http, route)
        wait_until(
            lambda: gw.mock.outcomes(label) == [Outcome.COMPLETED, Outcome.CANCELLED],
            timeout=3,
            what="the held request to be cancelled",
        )


def test_client_leaving_before_the_first_byte_cancels_the_upstream_request(gw: Gateway) -> None:
    # The upstream has answered 200 but sent no body yet: the proxy is waiting for the
    # first byte before committing, and the client gives up.
    patient = ProxyOptions(policy=FailoverPolicy(attempt_timeout=30.0, total_deadline=60.0))
    label = gw.label("first-byte")
    with gw.proxy(patient) as proxy:
        route = routed(gw, proxy, "openai", f"sk-mock-stall-0-{label}")
        with (
            httpx.Client(base_url=proxy.url, timeout=httpx.Timeout(5, read=0.3)) as http,
            pytest.raises(httpx.ReadTimeout),
        ):
            chat(http, route, stream=True)
        wait_until(
            lambda: gw.mock.outcomes(label) == [Outcome.CANCELLED],
            timeout=3,
            what="the stalled request to be cancelled",
        )


# -- request validation and authentication -----------------------------------------------------


def test_body_size_json_and_model_are_checked_before_any_upstream_call(
    gw: Gateway, shared: RunningProxy, http: httpx.Client
) -> None:
    label = gw.label("invalid")
    route = routed(gw, shared, "openai", f"sk-mock-ok-{label}")
    headers = {**bearer(route), "content-type": "application/json"}
    filler = "x" * (SHORT_OPTIONS.max_body_bytes + 1)
    too_large = http.post(CHAT, headers=headers, json={"model": "gpt-4o", "pad": filler})
    assert too_large.status_code == 413
    assert error_of(too_large)["code"] == "request_too_large"

    not_json = http.post(CHAT, headers=headers, content=b'{"model": "gpt-4o",')
    assert not_json.status_code == 400
    assert error_of(not_json)["code"] == "invalid_json"

    no_model = http.post(CHAT, headers=headers, json={"messages": HELLO})
    assert no_model.status_code == 400
    assert (error_of(no_model)["code"], error_of(no_model)["param"]) == ("missing_model", "model")

    # The Anthropic surface answers in its own envelope.
    anthropic = http.post(MESSAGES, headers={"x-api-key": route.token}, content=b"[1]")
    assert anthropic.status_code == 400
    assert anthropic.json()["type"] == "error"
    assert anthropic.json()["error"]["type"] == "invalid_request_error"
    assert anthropic.json()["error"]["code"] == "invalid_json"

    assert gw.mock.records(label) == []
    for response in (too_large, not_json, no_model, anthropic):
        assert "x-keyway-attempts" not in response.headers
        assert response.headers["x-keyway-request-id"].startswith("req_")


def test_access_key_forms(gw: Gateway, shared: RunningProxy, http: httpx.Client) -> None:
    label = gw.label("auth-forms")
    route = routed(gw, shared, "openai", f"sk-mock-ok-{label}")
    body = {"model": "gpt-4o", "messages": HELLO}
    ok = http.post(CHAT, headers={"x-api-key": route.token}, json=body)
    assert ok.status_code == 200, ok.text

    basic = http.post(CHAT, headers={"authorization": f"Basic {route.token}"}, json=body)
    assert basic.status_code == 401
    assert error_of(basic)["code"] == "missing_access_key"

    # One character changed: the CRC no longer matches, so it is refused as malformed.
    position = len(ACCESS_PREFIX) + 3
    swapped = "A" if route.token[position] != "A" else "B"
    typo = route.token[:position] + swapped + route.token[position + 1 :]
    bad_check = http.post(CHAT, headers={"authorization": f"Bearer {typo}"}, json=body)
    assert bad_check.status_code == 401
    assert error_of(bad_check)["code"] == "malformed_access_key"

    # Well formed but never issued: that one is looked up, and unknown.
    head = ACCESS_PREFIX + "Z" * BODY_LEN
    unknown = http.post(
        CHAT, headers={"authorization": f"Bearer {head}{checksum(head)}"}, json=body
    )
    assert unknown.status_code == 401
    assert error_of(unknown)["code"] == "invalid_access_key"
    assert len(gw.mock.records(label)) == 1


def test_proxy_without_a_snapshot_is_not_ready(gw: Gateway) -> None:
    settings = gw.settings(control_plane=f"127.0.0.1:{free_port()}")
    with proxy_running(settings) as proxy, client(proxy) as http:
        response = http.post(CHAT, headers={"authorization": "Bearer x"}, json={"model": "gpt-4o"})
        assert response.status_code == 503
        assert error_of(response)["code"] == "not_ready"
        assert response.headers["x-keyway-request-id"]
        models = http.get("/v1/models", headers={"authorization": "Bearer x"})
        assert models.status_code == 503
        assert error_of(models)["code"] == "not_ready"
        assert http.get("/readyz").status_code == 503
        assert http.get("/healthz").status_code == 200


def test_unknown_paths_methods_and_preflight(
    gw: Gateway, shared: RunningProxy, http: httpx.Client
) -> None:
    route = routed(gw, shared, "openai", f"sk-mock-ok-{gw.label('paths')}")
    missing = http.post("/v1/nothing", headers=bearer(route), json={})
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"
    batches = http.get("/v1/messages/batches", headers={"x-api-key": route.token})
    assert batches.status_code == 404
    assert batches.json()["error"]["type"] == "not_found_error"
    # A base URL without `/v1` (a common SDK misconfiguration) reaches the health app's 404.
    no_prefix = http.post("/chat/completions", headers=bearer(route), json={})
    assert no_prefix.status_code == 404
    assert error_of(no_prefix)["code"] == "not_found"
    health = http.get("/healthz")
    assert health.status_code == 200
    wrong_method = http.get(CHAT, headers=bearer(route))
    assert wrong_method.status_code == 405
    assert error_of(wrong_method)["code"] == "method_not_allowed"
    preflight = http.options(
        CHAT,
        headers={
            "origin": "https://app.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.content == b""
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "authorization" in preflight.headers["access-control-allow-headers"]
    served = chat(http, route)
    assert served.status_code == 200
    unauthenticated = http.post(CHAT, json={"model": "gpt-4o"})
    assert unauthenticated.status_code == 401
    everything = (
        missing,
        batches,
        no_prefix,
        health,
        wrong_method,
        preflight,
        served,
        unauthenticated,
    )
    for response in everything:
        assert response.headers["x-keyway-request-id"].startswith("req_"), response
        exposed = response.headers[EXPOSED]
        assert "x-keyway-request-id" in exposed
        assert "x-keyway-attempts" in exposed
    ids = [r.headers["x-keyway-request-id"] for r in everything]
    assert len(set(ids)) == len(ids)


# -- headers -----------------------------------------------------------------------------------


def test_openai_upstream_headers(gw: Gateway, shared: RunningProxy, http: httpx.Client) -> None:
    label = gw.label("oai-headers")
    route = routed(gw, shared, "openai", f"sk-mock-ok-{label}")
    headers = {
        **bearer(route),
        "openai-organization": "org-kept-out",
        "cookie": "session=1",
        "x-internal": "1",
        "x-stainless-lang": "python",
    }
    response = http.post(CHAT, headers=headers, json={"model": "gpt-4o", "messages": HELLO})
    assert response.status_code == 200, response.text
    # The provider's rate-limit headers reach the client.
    assert response.headers["x-ratelimit-remaining-requests"] == "9999"
    assert response.headers["x-ratelimit-limit-tokens"]
    (record,) = gw.mock.records(label)
    # The mock derives the label from `authorization: Bearer <provider key>`.
    assert record.label == f"ok-{label}"
    assert "x-stainless-lang" in record.header_names
    for name in ("openai-organization", "cookie", "x-internal", "x-api-key"):
        assert name not in record.header_names
    assert route.token not in repr(record)

    with gw.proxy(ProxyOptions(policy=SHORT_POLICY, forward_organization=True)) as forwarding:
        wait_for_route(forwarding, route)
        with client(forwarding) as other:
            forwarded = other.post(
                CHAT, headers=headers, json={"model": "gpt-4o", "messages": HELLO}
            )
    assert forwarded.status_code == 200, forwarded.text
    assert gw.mock.records(label)[-1].headers["openai-organization"] == "org-kept-out"


def test_anthropic_upstream_headers(gw: Gateway, shared: RunningProxy, http: httpx.Client) -> None:
    label = gw.label("claude-headers")
    route = routed(gw, shared, "anthropic", f"sk-mock-ok-{label}")
    body = {"model": "claude-sonnet-4-6", "max_tokens": 16, "messages": HELLO}
    beta = {"anthropic-version": "2023-06-01", "anthropic-beta": "tools-2024-04-04"}
    response = http.post(MESSAGES, headers={**bearer(route), **beta}, json=body)
    assert response.status_code == 200, response.text
    assert response.headers["anthropic-ratelimit-requests-remaining"] == "3999"
    # No anthropic-version from the client: the proxy supplies the one it speaks.
    plain = http.post(MESSAGES, headers={"x-api-key": route.token}, json=body)
    assert plain.status_code == 200, plain.text
    with_beta, without = gw.mock.records(label)
    for record in (with_beta, without):
        assert record.label == f"ok-{label}"
        assert "x-api-key" in record.header_names
        assert "authorization" not in record.header_names
        assert route.token not in repr(record)
        assert record.headers["anthropic-version"] == "2023-06-01"
    assert with_beta.headers["anthropic-beta"] == "tools-2024-04-04"
    assert "anthropic-beta" not in without.header_names


def test_only_query_parameters_the_provider_api_defines_are_forwarded(
    gw: Gateway, shared: RunningProxy, http: httpx.Client
) -> None:
    label = gw.label("query")
    openai_route = routed(gw, shared, "openai", f"sk-mock-ok-{label}-o")
    anthropic_route = routed(gw, shared, "anthropic", f"sk-mock-ok-{label}-a")
    chat_body = {"model": "gpt-4o", "messages": HELLO}
    # Chat completions defines no query parameters: nothing of the client's goes through.
    response = http.post(
        CHAT + "?api-version=2024-10-21&key=AIza-secret&debug=1",
        headers=bearer(openai_route),
        json=chat_body,
    )
    assert response.status_code == 200, response.text
    # The Anthropic beta client's `?beta=true` goes through; the rest does not.
    body = {"model": "claude-sonnet-4-6", "max_tokens": 16, "messages": HELLO}
    beta = http.post(
        MESSAGES + "?beta=true&x=%2Fetc&beta=false",
        headers={"x-api-key": anthropic_route.token},
        json=body,
    )
    assert beta.status_code == 200, beta.text
    plain = http.post(MESSAGES + "?x=1", headers={"x-api-key": anthropic_route.token}, json=body)
    assert plain.status_code == 200, plain.text
    chat_record, beta_record, plain_record = gw.mock.records(label)
    assert (chat_record.path, chat_record.query) == ("/v1/chat/completions", "")
    assert (beta_record.path, beta_record.query) == ("/v1/messages", "beta=true&beta=false")
    assert plain_record.query == ""


# -- usage reporting ---------------------------------------------------------------------------


def _set_disabled(gw: Gateway, resource: str, key_id: str, disabled: bool) -> None:
    mask = FieldMask(paths=["disabled"])
    if resource == "provider":
        gw.admin.provider_keys.UpdateProviderKey(
            pk.UpdateProviderKeyRequest(
                provider_key=pk.ProviderKey(id=key_id, disabled=disabled), update_mask=mask
            ),
            metadata=gw.admin.md,
        )
    else:
        gw.admin.access_keys.UpdateAccessKey(
            ak.UpdateAccessKeyRequest(
                access_key=ak.AccessKey(id=key_id, disabled=disabled), update_mask=mask
            ),
            metadata=gw.admin.md,
        )


def test_disabled_keys_are_skipped_or_refused_until_enabled_again(
    gw: Gateway, shared: RunningProxy, http: httpx.Client
) -> None:
    label = gw.label("pause")
    route = routed(gw, shared, "openai", f"sk-mock-ok-{label}-a", f"sk-mock-ok-{label}-b")
    first, second = route.key_ids

    def loaded(key_id: str) -> bool:
        table = shared.state.table
        return table is not None and any(key_id in a.keys for a in table.accounts.values())

    _set_disabled(gw, "provider", first, True)
    wait_until(lambda: not loaded(first), what="the proxy to drop the disabled key")
    served_by(chat(http, route), second, attempts=1)
    assert gw.provider_key(first).disabled
    _set_disabled(gw, "provider", second, True)
    wait_until(lambda: not loaded(second), what="the proxy to drop the second key")
    none_left = chat(http, route)
    assert (none_left.status_code, error_of(none_left)["code"]) == (502, "no_provider_key")
    _set_disabled(gw, "provider", first, False)
    wait_until(lambda: loaded(first), what="the proxy to take the key back")
    served_by(chat(http, route), first, attempts=1)
    assert [r.label for r in gw.mock.records(label)] == [f"ok-{label}-b", f"ok-{label}-a"]

    _set_disabled(gw, "access", route.access_key_id, True)
    wait_until(lambda: caller_disabled(shared, route.token), what="the proxy to see the paused key")
    refused = chat(http, route)
    assert refused.status_code == 401
    assert error_of(refused)["code"] == "access_key_disabled"
    assert f"keyway admin access-keys enable {route.access_key_id}" in error_of(refused)["message"]
    models = http.get("/v1/models", headers=bearer(route))
    assert (models.status_code, error_of(models)["code"]) == (401, "access_key_disabled")
    _set_disabled(gw, "access", route.access_key_id, False)
    wait_until(lambda: not caller_disabled(shared, route.token), what="the key enabled")
    served_by(chat(http, route), first, attempts=1)


def caller_disabled(proxy: RunningProxy, token: str) -> bool:
    table = proxy.state.table
    caller = table.callers.get(token_sha256(token)) if table is not None else None
    return caller is not None and caller.disabled


def test_usage_is_reported_to_the_control_plane(
    gw: Gateway, shared: RunningProxy, http: httpx.Client
) -> None:
    label = gw.label("usage")
    route = routed(gw, shared, "openai", f"sk-mock-503-{label}", f"sk-mock-ok-{label}")
    failing, healthy = route.key_ids
    before = time.time()
    served_by(chat(http, route), healthy, attempts=2)

    wait_until(
        lambda: (
            gw.provider_key(failing).last_error.status == 503
            and gw.provider_key(healthy).HasField("last_used_time")
        ),
        what="usage to reach the control plane",
    )
    bad = gw.provider_key(failing)
    assert bad.last_error.reason == "Provider server error"
    assert bad.last_error.time.ToSeconds() >= int(before) - 1
    assert bad.last_used_time.ToSeconds() >= int(before) - 1
    good = gw.provider_key(healthy)
    assert not good.HasField("last_error")
    assert good.last_success_time.ToSeconds() >= int(before) - 1
    assert not bad.HasField("last_success_time")
    access = gw.admin.access_keys.GetAccessKey(
        ak.GetAccessKeyRequest(id=route.access_key_id), metadata=gw.admin.md
    ).access_key
    assert access.last_used_time.ToSeconds() >= int(before) - 1
