"""The proxy's metrics and request log, in-process against the mock upstream.

Metric names and labels, key-id labels only when asked for, one log line per request in
either format with ids and counts only (never a key value, an access token, a prompt or
a completion), and a request refused before any attempt recorded with its error code.
"""

from __future__ import annotations

import asyncio
import io
import json

import pytest

from data_plane.usage import Observer
from data_plane.usage.metrics import RequestMetrics
from data_plane.usage.request_log import LogFormat, RequestLog
from data_plane.usage.shipping import UsageBuffer
from tests.unit import snapshots as s

from .asgi_gateway import Harness, Tenant, access_token, asgi_gateway, http_scope

TOKEN = access_token("O")
PROMPT = "a prompt nobody may log"
KEYS = (
    s.key("pk_busy", "openai", "sk-mock-429-30-observe"),
    s.key("pk_ok", "openai", "sk-mock-ok-observe"),
)
CONFIG = s.configuration("akc_obs", routes=[s.route("openai", "", ["pk_busy", "pk_ok"])])


async def chat(gw: Harness, token: str = TOKEN, **extra: object) -> dict[str, object]:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": PROMPT}], **extra}
    response = await gw.http.post(
        "/v1/chat/completions", headers={"authorization": f"Bearer {token}"}, json=body
    )
    return {"status": response.status_code, "text": response.text, "headers": response.headers}


@pytest.mark.parametrize("form", [LogFormat.JSON, LogFormat.TEXT])
async def test_one_log_line_per_request_with_ids_and_counts_only(form: LogFormat) -> None:
    stream = io.StringIO()
    observer = Observer(UsageBuffer(), RequestMetrics(), RequestLog(form, stream))
    async with asgi_gateway([Tenant(TOKEN, KEYS, CONFIG)], observer=observer) as gw:
        served = await chat(gw)
        await chat(gw, token=access_token("Z"))
        assert stream.getvalue() == ""  # written off the request path, by the next digest
        observer.digest()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    request_id = served["headers"]["x-keyway-request-id"]  # type: ignore[index]
    if form is LogFormat.JSON:
        first, second = (json.loads(line) for line in lines)
        assert first["request_id"] == request_id
        assert (first["attempts"], first["status"], first["outcome"]) == (2, 200, "success")
        assert (first["provider_key_id"], first["access_key_id"]) == ("pk_ok", "ak_1")
        assert first["input_tokens"] > 0
        assert (second["status"], second["outcome"]) == (401, "invalid_access_key")
    else:
        assert lines[0].startswith("time=")
        assert f"request_id={request_id} " in lines[0]
        assert " attempts=2 status=200 outcome=success " in lines[0]
    text = stream.getvalue()
    for secret in ("sk-mock-429-30-observe", "sk-mock-ok-observe", TOKEN, access_token("Z")):
        assert secret not in text
    assert PROMPT not in text
    assert "Hello from mock" not in text


async def test_metrics_count_requests_attempts_and_tokens_without_key_ids() -> None:
    async with asgi_gateway([Tenant(TOKEN, KEYS, CONFIG)]) as gw:
        await chat(gw)
        await chat(gw, stream=True, stream_options={"include_usage": True})
        text = (await gw.http.get("/metrics")).text
    model = s.GPT_4O_UPSTREAM
    assert (
        f'keyway_requests_total{{model="{model}",provider="openai",status_class="2xx",'
        'surface="/v1/chat/completions"} 2.0'
    ) in text
    assert 'keyway_attempts_total{outcome="rate_limited",provider="openai"} 1.0' in text
    assert 'keyway_attempts_total{outcome="success",provider="openai"} 2.0' in text
    assert 'keyway_failovers_total{provider="openai"} 1.0' in text
    assert f'keyway_tokens_total{{kind="output",model="{model}",provider="openai"}}' in text
    assert "keyway_request_duration_seconds_bucket" in text
    assert "keyway_upstream_first_byte_seconds_count" in text
    assert "keyway_gateway_added_seconds_count 2.0" in text
    assert "keyway_keys_in_cooldown 1.0" in text  # the 429 said 30 s
    assert "keyway_active_streams 0.0" in text
    assert "keyway_usage_buffer_records 3.0" in text
    assert "keyway_snapshot_applied_version" in text
    assert "pk_" not in text
    assert "ak_1" not in text


async def test_key_labels_only_when_asked_for() -> None:
    observer = Observer(UsageBuffer(), RequestMetrics(key_labels=True))
    async with asgi_gateway([Tenant(TOKEN, KEYS, CONFIG)], observer=observer) as gw:
        await chat(gw)
        text = (await gw.http.get("/metrics")).text
    assert 'provider_key_id="pk_busy"' in text
    assert 'access_key_id="ak_1"' in text


async def test_a_request_refused_before_any_attempt_is_recorded_with_its_code() -> None:
    observer = Observer(UsageBuffer())
    async with asgi_gateway([Tenant(TOKEN, KEYS, CONFIG)], observer=observer) as gw:
        refused = await chat(gw, model="no-such-model-anywhere")
    assert refused["status"] == 404 or refused["status"] == 400
    assert observer.buffer is not None
    observer.digest()
    batch = observer.buffer.take()
    assert batch is not None
    (record,) = batch.attempts
    assert (record.attempt, record.final, record.provider_key_id) == (0, True, "")
    assert record.outcome == json.loads(str(refused["text"]))["error"]["code"]
    assert record.requested_model == "no-such-model-anywhere"


@pytest.mark.parametrize("stream", [False, True])
async def test_a_client_leaving_during_the_last_send_still_has_its_tokens_recorded(
    stream: bool,
) -> None:
    """The provider answered in full (and bills for it): the tokens are kept even when the
    client is gone by the time the answer's last bytes go out."""
    observer = Observer(UsageBuffer(), RequestMetrics())
    async with asgi_gateway([Tenant(TOKEN, KEYS, CONFIG)], observer=observer) as gw:
        body: dict[str, object] = {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": PROMPT}],
        }
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        headers = [
            (b"authorization", f"Bearer {TOKEN}".encode()),
            (b"content-type", b"application/json"),
        ]
        scope = http_scope("POST", "/v1/chat/completions", headers)
        requests: list[dict[str, object]] = [
            {"type": "http.request", "body": json.dumps(body).encode()}
        ]
        gone = asyncio.Event()

        async def receive() -> dict[str, object]:
            if requests:
                return requests.pop()
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                gone.set()
                raise OSError("the client is gone")

        with pytest.raises(OSError, match="the client is gone"):
            await gw.app(scope, receive, send)  # type: ignore[arg-type]
    observer.digest()
    assert observer.buffer is not None
    batch = observer.buffer.take()
    assert batch is not None
    answered = batch.attempts[-1]
    assert (answered.provider_key_id, answered.status) == ("pk_ok", 200)
    assert answered.HasField("tokens")
    assert answered.tokens.input > 0
    assert answered.tokens.output > 0
