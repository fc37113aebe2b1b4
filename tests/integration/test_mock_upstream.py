"""The mock upstream on a real socket, driven by the official OpenAI and Anthropic SDKs.

What `break` does to each SDK (pinned here so a change is noticed): the
OpenAI SDK raises `APIConnectionError` — while iterating a stream, after the
events sent before the cut, and on the call itself for a non-stream request;
the Anthropic SDK lets its HTTP client's `httpx2.RemoteProtocolError`
("incomplete chunked read") escape from the stream iterator. Neither returns a silently truncated
answer.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import struct
import time
from collections.abc import AsyncIterator

import anthropic
import httpx
import httpx2
import openai
import pytest
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageParam

from data_plane.mock_upstream.app import Outcome, RecordedRequest
from data_plane.mock_upstream.server import MockServer

HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
CLAUDE_HI: list[MessageParam] = [{"role": "user", "content": "hi"}]
CLAUDE = "claude-sonnet-4-6"


@pytest.fixture
async def mock() -> AsyncIterator[MockServer]:
    async with MockServer(chunk_delay_ms=0) as server:
        yield server


@pytest.fixture
async def oai(mock: MockServer) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=mock.base_url, api_key="sk-mock-ok-a", max_retries=0)
    async with client:
        yield client


@pytest.fixture
async def claude(mock: MockServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(base_url=mock.url, api_key="sk-mock-ok-b", max_retries=0)
    async with client:
        yield client


@pytest.fixture
async def raw(mock: MockServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=mock.url) as client:
        yield client


async def _only_record(mock: MockServer) -> RecordedRequest:
    (record,) = await mock.app.settled()
    return record


async def test_chat_completion(mock: MockServer, oai: openai.AsyncOpenAI) -> None:
    completion = await oai.chat.completions.create(model="gpt-4o", messages=HI)
    assert completion.choices[0].message.content == "Hello from mock (model gpt-4o, key ok-a)"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-4o"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 7
    record = await _only_record(mock)
    assert (record.method, record.path, record.label) == ("POST", "/v1/chat/completions", "ok-a")
    assert (record.model, record.stream, record.status) == ("gpt-4o", False, 200)
    assert record.outcome is Outcome.COMPLETED
    assert "authorization" in record.header_names
    assert json.loads(record.body)["messages"] == HI


async def test_chat_stream_with_usage(mock: MockServer, oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(
        model="gpt-4o",
        messages=HI,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from mock (model gpt-4o, key ok-a)"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens > 7
    async with oai.chat.completions.stream(model="gpt-4o", messages=HI) as helper:
        final = await helper.get_final_completion()
    assert final.choices[0].message.content == text
    records = await mock.app.settled()
    assert [(r.stream, r.outcome) for r in records] == [(True, Outcome.COMPLETED)] * 2


async def test_responses(oai: openai.AsyncOpenAI) -> None:
    response = await oai.responses.create(model="gpt-4o", input="hi")
    assert response.id.startswith("resp_")
    assert response.output_text == "Hello from mock (model gpt-4o, key ok-a)"
    assert response.usage is not None
    assert response.usage.output_tokens == 7


async def test_responses_stream(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.responses.create(model="gpt-4o", input="hi", stream=True)
    names = [event.type async for event in stream]
    assert names[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert names[-5:] == [
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    async with oai.responses.stream(model="gpt-4o", input="hi") as helper:
        final = await helper.get_final_response()
    assert final.output_text == "Hello from mock (model gpt-4o, key ok-a)"


async def test_embeddings_floats_dimensions_and_base64(oai: openai.AsyncOpenAI) -> None:
    model = "text-embedding-3-small"
    # Without encoding_format the SDK asks for base64 and decodes it itself.
    decoded = await oai.embeddings.create(model=model, input=["a", "b"])
    assert [len(d.embedding) for d in decoded.data] == [1536, 1536]
    floats = await oai.embeddings.create(
        model=model, input="a", dimensions=8, encoding_format="float"
    )
    vector = floats.data[0].embedding
    assert len(vector) == 8
    encoded = await oai.embeddings.create(
        model=model, input="a", dimensions=8, encoding_format="base64"
    )
    raw = encoded.data[0].embedding
    assert isinstance(raw, str)
    assert list(struct.unpack("<8f", base64.b64decode(raw))) == vector


async def test_messages(mock: MockServer, claude: anthropic.AsyncAnthropic) -> None:
    message = await claude.messages.create(
        model=CLAUDE,
        max_tokens=16,
        messages=CLAUDE_HI,
        extra_headers={"anthropic-beta": "mock-beta-1"},
    )
    assert message.id.startswith("msg_")
    assert message.content[0].type == "text"
    assert message.content[0].text == f"Hello from mock (model {CLAUDE}, key ok-b)"
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 7
    record = await _only_record(mock)
    assert record.label == "ok-b"
    assert record.headers["anthropic-beta"] == "mock-beta-1"
    assert "anthropic-version" in record.headers


async def test_messages_stream(mock: MockServer, claude: anthropic.AsyncAnthropic) -> None:
    stream = await claude.messages.create(
        model=CLAUDE,
        max_tokens=16,
        messages=CLAUDE_HI,
        stream=True,
    )
    names = [event.type async for event in stream]
    # The SDK drops `ping` events, so the raw stream is checked in the unit tests.
    assert names[:3] == ["message_start", "content_block_start", "content_block_delta"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    async with claude.messages.stream(model=CLAUDE, max_tokens=16, messages=CLAUDE_HI) as helper:
        final = await helper.get_final_message()
    assert final.content[0].type == "text"
    assert final.content[0].text == f"Hello from mock (model {CLAUDE}, key ok-b)"
    assert final.usage.output_tokens == 7


async def test_count_tokens_counts_the_prompt_like_a_messages_call(
    mock: MockServer, claude: anthropic.AsyncAnthropic
) -> None:
    system = "You answer briefly."
    counted = await claude.messages.count_tokens(model=CLAUDE, system=system, messages=CLAUDE_HI)
    longer = await claude.messages.count_tokens(
        model=CLAUDE, system=system * 20, messages=CLAUDE_HI
    )
    message = await claude.messages.create(
        model=CLAUDE, max_tokens=500, system=system, messages=CLAUDE_HI
    )
    # Sampling settings (max_tokens) are not input: the counts agree.
    assert counted.input_tokens == message.usage.input_tokens
    assert longer.input_tokens > counted.input_tokens
    records = await mock.app.settled()
    assert [r.path for r in records][:2] == ["/v1/messages/count_tokens"] * 2
    assert {r.label for r in records} == {"ok-b"}
    with pytest.raises(anthropic.RateLimitError):
        await claude.with_options(api_key="sk-mock-429-1").messages.count_tokens(
            model=CLAUDE, messages=CLAUDE_HI
        )


async def test_models_in_each_format(
    oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    assert "gpt-4o" in [model.id async for model in oai.models.list()]
    assert CLAUDE in [model.id async for model in claude.models.list()]


ERRORS = [
    ("sk-mock-429-2", openai.RateLimitError, anthropic.RateLimitError),
    ("sk-mock-401", openai.AuthenticationError, anthropic.AuthenticationError),
    ("sk-mock-403", openai.PermissionDeniedError, anthropic.PermissionDeniedError),
    ("sk-mock-500", openai.InternalServerError, anthropic.InternalServerError),
    ("sk-mock-503", openai.InternalServerError, anthropic.InternalServerError),
    ("sk-mock-529", openai.InternalServerError, anthropic.InternalServerError),
    ("sk-mock-400", openai.BadRequestError, anthropic.BadRequestError),
    ("sk-mock-nonsense", openai.AuthenticationError, anthropic.AuthenticationError),
    ("not-a-mock-key", openai.AuthenticationError, anthropic.AuthenticationError),
]


@pytest.mark.parametrize(("key", "openai_error", "anthropic_error"), ERRORS)
async def test_error_behaviours_raise_the_sdks_exceptions(
    mock: MockServer,
    oai: openai.AsyncOpenAI,
    claude: anthropic.AsyncAnthropic,
    key: str,
    openai_error: type[openai.APIStatusError],
    anthropic_error: type[anthropic.APIStatusError],
) -> None:
    status = int(key.split("-")[2]) if key[8:11].isdigit() else 401
    with pytest.raises(openai_error) as from_openai:
        await oai.with_options(api_key=key).chat.completions.create(model="gpt-4o", messages=HI)
    with pytest.raises(anthropic_error) as from_anthropic:
        await claude.with_options(api_key=key).messages.create(
            model=CLAUDE,
            max_tokens=8,
            messages=CLAUDE_HI,
        )
    assert from_openai.value.status_code == from_anthropic.value.status_code == status
    openai_body = from_openai.value.body
    assert isinstance(openai_body, dict)
    assert set(openai_body) == {"message", "type", "param", "code"}
    anthropic_body = from_anthropic.value.body
    assert isinstance(anthropic_body, dict)
    assert anthropic_body["type"] == "error"
    if status == 401:
        assert openai_body["code"] == "invalid_api_key"
    if status == 429:
        for error in (from_openai.value, from_anthropic.value):
            assert error.response.headers["retry-after"] == "2"
            assert error.response.headers["retry-after-ms"] == "2000"
        assert from_openai.value.response.headers["x-ratelimit-reset-requests"] == "2s"
        reset = from_anthropic.value.response.headers["anthropic-ratelimit-requests-reset"]
        assert reset.endswith("Z")
    labels = {r.label for r in await mock.app.settled()}
    assert labels == {key[len("sk-mock-") :] if key.startswith("sk-mock-") else "(not a mock key)"}


async def test_missing_key_and_missing_version(raw: httpx.AsyncClient) -> None:
    no_key = await raw.post("/v1/chat/completions", json={"model": "gpt-4o"})
    assert no_key.status_code == 401
    assert no_key.json()["error"]["type"] == "invalid_request_error"
    no_key = await raw.post(
        "/v1/messages", json={"model": CLAUDE}, headers={"anthropic-version": "2023-06-01"}
    )
    assert no_key.status_code == 401
    assert no_key.json()["error"]["type"] == "authentication_error"
    no_version = await raw.post(
        "/v1/messages", json={"model": CLAUDE}, headers={"x-api-key": "sk-mock-ok"}
    )
    assert no_version.status_code == 400
    assert no_version.json()["error"] == {
        "type": "invalid_request_error",
        "message": "anthropic-version: header is required",
    }


async def test_bad_bodies_and_unknown_paths(raw: httpx.AsyncClient) -> None:
    auth = {"authorization": "Bearer sk-mock-ok"}
    not_json = await raw.post("/v1/chat/completions", content=b"{", headers=auth)
    assert not_json.status_code == 400
    no_model = await raw.post("/v1/chat/completions", json={"messages": []}, headers=auth)
    assert no_model.status_code == 400
    bad_input = await raw.post("/v1/embeddings", json={"model": "m", "input": 3}, headers=auth)
    assert bad_input.status_code == 400
    unknown = await raw.post("/v1/completions", json={"model": "m"}, headers=auth)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_url"
    anthropic_auth = {"x-api-key": "sk-mock-ok", "anthropic-version": "2023-06-01"}
    no_messages = await raw.post(
        "/v1/messages/count_tokens", json={"model": CLAUDE}, headers=anthropic_auth
    )
    assert no_messages.status_code == 400
    assert no_messages.json()["error"]["message"] == "messages: Field required"
    # A base URL without /v1 is the usual mistake: the 404 says so.
    no_version = await raw.post("/chat/completions", json={"model": "m"}, headers=auth)
    assert no_version.status_code == 404
    assert "use a base URL ending in /v1" in no_version.json()["error"]["message"]


async def test_break_cuts_streams_and_bodies(
    mock: MockServer,
    oai: openai.AsyncOpenAI,
    claude: anthropic.AsyncAnthropic,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = oai.with_options(api_key="sk-mock-break-3")
    stream = await broken.chat.completions.create(model="gpt-4o", messages=HI, stream=True)
    received: list[str] = []

    async def drain() -> None:
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")

    with pytest.raises(openai.APIConnectionError):
        await drain()
    assert received == ["", "Hello", " from"]  # role chunk + 2 pieces = 3 events
    with pytest.raises(openai.APIConnectionError):
        await broken.chat.completions.create(model="gpt-4o", messages=HI)
    with pytest.raises(httpx2.RemoteProtocolError):
        async with claude.with_options(api_key="sk-mock-break-4").messages.stream(
            model=CLAUDE,
            max_tokens=8,
            messages=CLAUDE_HI,
        ) as helper:
            await helper.get_final_message()
    records = await mock.app.settled()
    assert [r.outcome for r in records] == [Outcome.BROKEN] * 3
    # The cut is deliberate, so uvicorn's "returned without completing" error is not logged.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_stall_goes_silent_and_a_leaving_client_is_recorded(
    mock: MockServer, oai: openai.AsyncOpenAI
) -> None:
    stalled = oai.with_options(api_key="sk-mock-stall-2")
    stream = await stalled.chat.completions.create(model="gpt-4o", messages=HI, stream=True)
    iterator = aiter(stream)
    assert (await anext(iterator)).choices[0].delta.role == "assistant"
    await anext(iterator)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await anext(iterator)
    await stream.close()
    record = await _only_record(mock)
    assert record.outcome is Outcome.CANCELLED


async def test_leaving_mid_stream_or_during_the_delay_is_recorded(
    mock: MockServer, oai: openai.AsyncOpenAI
) -> None:
    mock.app.chunk_delay_ms = 50
    stream = await oai.chat.completions.create(model="gpt-4o", messages=HI, stream=True)
    iterator = aiter(stream)
    await anext(iterator)
    await stream.close()
    with pytest.raises(openai.APITimeoutError):
        await oai.with_options(api_key="sk-mock-slow-2000", timeout=0.1).models.list()
    records = await mock.app.settled()
    assert [(r.label, r.outcome) for r in records] == [
        ("ok-a", Outcome.CANCELLED),
        ("slow-2000", Outcome.CANCELLED),
    ]


async def test_hold_then_client_cancel_is_recorded_as_cancelled(
    mock: MockServer, oai: openai.AsyncOpenAI
) -> None:
    held = oai.with_options(api_key="sk-mock-hold")
    call = asyncio.create_task(held.chat.completions.create(model="gpt-4o", messages=HI))
    async with asyncio.timeout(5):
        while not mock.app.requests:  # noqa: ASYNC110 - the record appears on arrival
            await asyncio.sleep(0.005)
    assert mock.app.requests[0].outcome is Outcome.PENDING
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    record = await _only_record(mock)
    assert record.outcome is Outcome.CANCELLED
    assert record.status == 0


async def test_stopping_the_server_releases_held_requests() -> None:
    server = MockServer()
    await server.start()
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-mock-hold", max_retries=0)
    async with client:
        call = asyncio.create_task(client.chat.completions.create(model="gpt-4o", messages=HI))
        async with asyncio.timeout(5):
            while not server.app.requests:  # noqa: ASYNC110 - the record appears on arrival
                await asyncio.sleep(0.005)
        await server.stop()
        with pytest.raises(openai.InternalServerError):
            await call
    assert server.app.requests[0].outcome is Outcome.BROKEN


async def test_slow_keys_and_global_latency_delay_the_headers(
    mock: MockServer, oai: openai.AsyncOpenAI
) -> None:
    started = time.perf_counter()
    await oai.with_options(api_key="sk-mock-slow-120").models.list()
    assert time.perf_counter() - started >= 0.12
    mock.app.latency_ms = 80
    started = time.perf_counter()
    await oai.models.list()
    assert time.perf_counter() - started >= 0.08


async def test_http_view_of_the_records(
    oai: openai.AsyncOpenAI, raw: httpx.AsyncClient, mock: MockServer
) -> None:
    await oai.chat.completions.create(model="gpt-4o", messages=HI)
    listed = (await raw.get("/_mock/requests")).json()
    assert len(listed) == 1
    assert listed[0]["label"] == "ok-a"
    assert listed[0]["outcome"] == "completed"
    assert json.loads(listed[0]["body"])["model"] == "gpt-4o"
    assert "sk-mock" not in json.dumps(listed)
    assert (await raw.post("/_mock/reset")).json() == {"cleared": 1}
    assert mock.app.requests == []
