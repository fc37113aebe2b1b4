"""The proxy's ASGI app in-process: httpx's ASGITransport in front, a fake transport behind.

No socket and no background loop anywhere: the client is `httpx.ASGITransport`, the
routing table is built from a hand-made snapshot, and upstream requests go through
`ASGIUpstream` to the mock upstream app on the same event loop, which behaves per key
like the real providers do. Each test checks what a client (or the provider) sees.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from keyway.v1 import snapshot_pb2 as spb

from data_plane.http.app import create_app
from data_plane.http.context import ProxyContext, ProxyOptions
from data_plane.mock_upstream.app import MockUpstream
from data_plane.routing.policy import FailoverPolicy
from data_plane.snapshot.state import SnapshotState
from data_plane.usage import Observer, ObserveSettings
from tests.integration.asgi_gateway import Tenant, access_token, gateway_snapshot
from tests.integration.asgi_upstream import ASGIUpstream
from tests.unit import snapshots as s

UPSTREAM = "https://upstream.test/v1"
CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
HELLO = [{"role": "user", "content": "Hello"}]
POLICY = FailoverPolicy(attempt_timeout=5.0, total_deadline=10.0, max_retry_wait=0.0)
OPTIONS = ProxyOptions(policy=POLICY, stream_idle_timeout=0.3, max_body_bytes=64 * 1024)


@dataclass
class InProcess:
    http: httpx.AsyncClient
    ctx: ProxyContext
    upstream: ASGIUpstream
    mock: MockUpstream

    def serve(self, snapshot: spb.Snapshot) -> None:
        self.ctx.state.swap(s.table(snapshot), generated_at=0.0, now=time.time())

    async def chat(self, token: str, **body: object) -> httpx.Response:
        payload = {"model": "gpt-4o", "messages": HELLO, **body}
        return await self.http.post(
            CHAT, json=payload, headers={"authorization": f"Bearer {token}"}
        )


def tenant(
    token: str, *values: str, configuration: spb.SnapshotConfiguration | None = None
) -> Tenant:
    keys = tuple(s.key(f"pk_{i}", "openai", v) for i, v in enumerate(values))
    return Tenant(token, keys, configuration)


@asynccontextmanager
async def in_process(
    tenants: Iterable[Tenant], options: ProxyOptions = OPTIONS, *, loaded: bool = True
) -> AsyncIterator[InProcess]:
    mock = MockUpstream(chunk_delay_ms=0)
    upstream = ASGIUpstream(mock)
    ctx = ProxyContext(SnapshotState(), upstream, Observer.of(ObserveSettings()), options)
    running = InProcess(httpx.AsyncClient(), ctx, upstream, mock)
    if loaded:
        running.serve(gateway_snapshot(UPSTREAM, tenants))
    transport = httpx.ASGITransport(app=create_app(ctx))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as http:
            running.http = http
            yield running
    finally:
        await upstream.aclose()
        ctx.body_worker.shutdown(wait=False, cancel_futures=True)


TOKEN = access_token("a")


async def test_a_call_reaches_the_provider_with_the_key_and_the_upstream_model() -> None:
    async with in_process([tenant(TOKEN, "sk-mock-ok-first")]) as p:
        response = await p.chat(TOKEN)
    assert response.status_code == 200
    assert "key ok-first" in response.json()["choices"][0]["message"]["content"]
    assert response.headers["x-keyway-provider-key-id"] == "pk_0"
    assert response.headers["x-keyway-attempts"] == "1"
    assert response.headers["x-keyway-model"] == s.GPT_4O_UPSTREAM
    assert response.headers["x-keyway-request-id"].startswith("req_")
    sent = p.upstream.requests[0]
    assert sent.url == UPSTREAM + "/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-mock-ok-first"
    assert json.loads(sent.body)["model"] == s.GPT_4O_UPSTREAM
    assert p.upstream.responses[0].released  # its connection goes back to the pool


async def test_a_rate_limited_key_fails_over_and_is_then_tried_last() -> None:
    async with in_process([tenant(TOKEN, "sk-mock-429-30-busy", "sk-mock-ok-spare")]) as p:
        first = await p.chat(TOKEN)
        second = await p.chat(TOKEN)
        p.ctx.observer.digest()
        buffer = p.ctx.observer.buffer
        assert buffer is not None
        batch = buffer.take()
        assert batch is not None
        records = list(batch.attempts)
    assert first.status_code == 200
    assert first.headers["x-keyway-attempts"] == "2"
    assert first.headers["x-keyway-provider-key-id"] == "pk_1"
    # The 429 said 30 s: the next request goes to the spare key at once.
    assert second.headers["x-keyway-attempts"] == "1"
    assert second.headers["x-keyway-provider-key-id"] == "pk_1"
    # Every attempt is recorded: the 429 (failed over), then the spare key twice.
    assert [(r.provider_key_id, r.outcome, r.status, r.final) for r in records] == [
        ("pk_0", "rate_limited", 429, False),
        ("pk_1", "success", 200, True),
        ("pk_1", "success", 200, True),
    ]
    assert records[0].reason == "Rate limited by provider"
    assert records[0].request_id == records[1].request_id == first.headers["x-keyway-request-id"]
    assert [r.attempt for r in records] == [1, 2, 1]


async def test_every_key_rate_limited_is_a_429_with_retry_after_and_the_attempts() -> None:
    async with in_process([tenant(TOKEN, "sk-mock-429-7-a", "sk-mock-429-9-b")]) as p:
        response = await p.chat(TOKEN)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    error = response.json()["error"]
    assert (error["code"], error["type"]) == ("all_rate_limited", "rate_limit_error")
    assert [a["provider_key_id"] for a in error["attempts"]] == ["pk_0", "pk_1"]
    assert "sk-mock-429" not in response.text  # ids only, never a key value


async def test_an_auth_error_fails_over_without_telling_the_client() -> None:
    async with in_process([tenant(TOKEN, "sk-mock-401-revoked", "sk-mock-ok-good")]) as p:
        response = await p.chat(TOKEN)
    assert response.status_code == 200
    assert response.headers["x-keyway-provider-key-id"] == "pk_1"
    assert p.ctx.cooldowns.is_held("pk_0", p.ctx.clock())


async def test_a_request_the_provider_rejects_is_relayed_unchanged() -> None:
    async with in_process([tenant(TOKEN, "sk-mock-400-a", "sk-mock-ok-b")]) as p:
        response = await p.chat(TOKEN)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.headers["x-keyway-attempts"] == "1"
    assert "x-keyway-provider-key-id" not in response.headers  # relayed, not served
    assert len(p.upstream.requests) == 1


async def test_anthropic_calls_carry_the_key_as_x_api_key_and_a_version() -> None:
    keys = (s.key("pk_a", "anthropic", "sk-mock-ok-claude"),)
    async with in_process([Tenant(TOKEN, keys)]) as p:
        response = await p.http.post(
            MESSAGES,
            json={"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": HELLO},
            headers={"x-api-key": TOKEN},
        )
    assert response.status_code == 200
    assert response.json()["type"] == "message"
    sent = p.upstream.requests[0].headers
    assert sent["x-api-key"] == "sk-mock-ok-claude"
    assert sent["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent


async def test_a_stream_is_relayed_event_by_event_to_its_end() -> None:
    async with in_process([tenant(TOKEN, "sk-mock-ok-s")]) as p:
        response = await p.chat(TOKEN, stream=True)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.rstrip().endswith("data: [DONE]")


async def test_a_stream_that_breaks_ends_with_an_error_event_in_the_api_shape() -> None:
    async with in_process([tenant(TOKEN, "sk-mock-break-2-cut")]) as p:
        chat = await p.chat(TOKEN, stream=True)
    events = [e for e in chat.text.split("\n\n") if e.strip()]
    assert len(events) == 3  # two whole events, then the proxy's
    last = json.loads(events[-1].split("data: ", 1)[1])
    assert last["error"]["code"] == "upstream_stream_error"
    assert "upstream stream broke; the answer is incomplete" in last["error"]["message"]


async def test_a_stream_that_stalls_is_ended_after_the_idle_timeout() -> None:
    keys = (s.key("pk_a", "anthropic", "sk-mock-stall-1-quiet"),)
    async with in_process([Tenant(TOKEN, keys)]) as p:
        response = await p.http.post(
            MESSAGES,
            json={
                "model": "claude-sonnet-4-5",
                "max_tokens": 16,
                "messages": HELLO,
                "stream": True,
            },
            headers={"x-api-key": TOKEN, "anthropic-version": "2023-06-01"},
        )
        records = await p.mock.settled()
    assert response.text.count("event: ") == 2
    assert "event: error" in response.text
    assert "upstream stream stalled" in response.text
    assert p.upstream.responses[0].closed  # the provider sees the request cancelled
    assert records[0].outcome == "cancelled"


async def test_refusals_before_any_upstream_work_use_the_surface_envelope() -> None:
    async with in_process([tenant(TOKEN, "sk-mock-ok-a")]) as p:
        missing = await p.http.post(MESSAGES, json={"model": "claude-sonnet-4-5"})
        malformed = await p.http.post(CHAT, headers={"authorization": "Bearer kwak_nope"})
        unknown = await p.chat(access_token("z"))
        bad_json = await p.http.post(
            CHAT, content=b"{not json", headers={"authorization": f"Bearer {TOKEN}"}
        )
        too_large = await p.http.post(
            CHAT, content=b"x" * (65 * 1024), headers={"authorization": f"Bearer {TOKEN}"}
        )
        no_model = await p.chat(TOKEN, model="no-such-model")
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"  # Anthropic's shape
    assert missing.json()["type"] == "error"
    assert (malformed.status_code, malformed.json()["error"]["code"]) == (
        401,
        "malformed_access_key",
    )
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (401, "invalid_access_key")
    assert (bad_json.status_code, bad_json.json()["error"]["code"]) == (400, "invalid_json")
    assert (too_large.status_code, too_large.json()["error"]["code"]) == (413, "request_too_large")
    assert (no_model.status_code, no_model.json()["error"]["code"]) == (400, "unknown_model")
    assert p.upstream.requests == []


async def test_a_scope_refusal_names_the_model() -> None:
    config = s.configuration("cfg_1", models=["openai/gpt-4o-mini"])
    async with in_process([tenant(TOKEN, "sk-mock-ok-a", configuration=config)]) as p:
        refused = await p.chat(TOKEN)
        allowed = await p.chat(TOKEN, model="gpt-4o-mini")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "model_not_allowed"
    assert refused.json()["error"]["param"] == "model"
    assert allowed.status_code == 200


async def test_a_key_over_its_requests_per_minute_is_told_when_to_retry() -> None:
    config = s.configuration("cfg_1")
    config.limits.requests_per_minute = 1
    async with in_process([tenant(TOKEN, "sk-mock-ok-a", configuration=config)]) as p:
        first = await p.chat(TOKEN)
        second = await p.chat(TOKEN)
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(second.headers["retry-after"]) >= 1
    assert len(p.upstream.requests) == 1


async def test_no_snapshot_yet_is_503_and_readiness_says_so() -> None:
    async with in_process([], loaded=False) as p:
        call = await p.chat(TOKEN)
        ready = await p.http.get("/readyz")
        health = await p.http.get("/healthz")
    assert (call.status_code, call.json()["error"]["code"]) == (503, "not_ready")
    assert ready.status_code == 503
    assert health.status_code == 200
    assert health.headers["x-keyway-request-id"].startswith("req_")


async def test_model_listing_preflight_and_wrong_methods() -> None:
    async with in_process([tenant(TOKEN, "sk-mock-ok-a")]) as p:
        models = await p.http.get("/v1/models", headers={"authorization": f"Bearer {TOKEN}"})
        preflight = await p.http.options(CHAT)
        wrong = await p.http.get(CHAT)
        nowhere = await p.http.post("/v1/nowhere")
    assert models.status_code == 200
    assert "gpt-4o" in [m["id"] for m in models.json()["data"]]
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (405, "method_not_allowed")
    assert (nowhere.status_code, nowhere.json()["error"]["code"]) == (404, "not_found")


async def test_rotating_a_key_lets_it_be_tried_first_again() -> None:
    async with in_process([tenant(TOKEN, "sk-mock-401-old", "sk-mock-ok-spare")]) as p:
        before = await p.chat(TOKEN)
        p.serve(gateway_snapshot(UPSTREAM, [tenant(TOKEN, "sk-mock-ok-new", "sk-mock-ok-spare")]))
        after = await p.chat(TOKEN)
    assert before.headers["x-keyway-provider-key-id"] == "pk_1"
    assert after.headers["x-keyway-provider-key-id"] == "pk_0"
    assert after.headers["x-keyway-attempts"] == "1"


async def test_an_upstream_that_never_answers_is_a_connection_failure_then_502() -> None:
    async def silent(scope: object, receive: object, send: object) -> None:
        return  # closes without a status line

    async with in_process([tenant(TOKEN, "sk-1", "sk-2")]) as p:
        p.ctx.upstream = ASGIUpstream(silent)
        response = await p.chat(TOKEN)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "all_attempts_failed"
    assert [a["reason"] for a in error["attempts"]] == [
        "Provider connection broke (the upstream closed the connection before answering)"
    ] * 2
    assert "sk-1" not in response.text
