"""The official OpenAI and Anthropic SDKs against a real Keyway stack."""

from __future__ import annotations

import threading
import time
from typing import Any

import anthropic
import httpx
import openai
import pytest
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageParam

from .stack import Stack, wait_until


def route(stack: Stack, provider: str, values: list[str], **access: Any) -> tuple[str, list[str]]:
    """An access key whose configuration routes `provider` to these keys, in order."""
    key_ids = [stack.add_provider_key(provider, v) for v in values]
    doc: dict[str, Any] = {
        "name": f"e2e {provider}",
        "router": {
            "rules": [
                {
                    "provider": provider,
                    "steps": [{"type": "user", "keys": [{"id": k} for k in key_ids]}],
                }
            ]
        },
    }
    if access:
        doc["access"] = access
    _, token = stack.add_access_key(stack.add_configuration(doc))
    stack.wait_synced()
    return token, key_ids


def oai(stack: Stack, token: str, **options: Any) -> openai.OpenAI:
    client = openai.OpenAI(
        api_key=token, base_url=f"{stack.proxy_url}/v1", max_retries=0, **options
    )
    stack.clients.append(client)
    return client


def claude(stack: Stack, token: str) -> anthropic.Anthropic:
    client = anthropic.Anthropic(api_key=token, base_url=stack.proxy_url, max_retries=0)
    stack.clients.append(client)
    return client


HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello"}]
CLAUDE_HELLO: list[MessageParam] = [{"role": "user", "content": "Say hello"}]


def test_chat_completion_with_keyway_headers(stack: Stack) -> None:
    token, (key_id,) = route(stack, "openai", ["sk-mock-ok-chat"])
    raw = oai(stack, token).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=HELLO
    )
    completion = raw.parse()
    assert "gpt-4o" in (completion.choices[0].message.content or "")
    assert raw.headers["x-keyway-provider"] == "openai"
    assert raw.headers["x-keyway-model"] == "gpt-4o"
    assert raw.headers["x-keyway-provider-key-id"] == key_id
    assert raw.headers["x-keyway-attempts"] == "1"
    assert raw.headers["x-keyway-request-id"].startswith("req_")


def test_chat_completion_stream(stack: Stack) -> None:
    token, _ = route(stack, "openai", ["sk-mock-ok-stream"])
    stream = oai(stack, token).chat.completions.create(
        model="openai:gpt-4o-mini", messages=HELLO, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "gpt-4o-mini" in text


def test_responses_both_ways(stack: Stack) -> None:
    token, _ = route(stack, "openai", ["sk-mock-ok-responses"])
    client = oai(stack, token)
    response = client.responses.create(model="gpt-4o", input="Say hello")
    assert "gpt-4o" in response.output_text
    events = list(client.responses.create(model="gpt-4o", input="Say hello", stream=True))
    assert events[-1].type == "response.completed"


def test_embeddings(stack: Stack) -> None:
    token, _ = route(stack, "openai", ["sk-mock-ok-embed"])
    result = oai(stack, token).embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], dimensions=8
    )
    assert [len(d.embedding) for d in result.data] == [8, 8]


def test_anthropic_messages_both_ways(stack: Stack) -> None:
    token, (key_id,) = route(stack, "anthropic", ["sk-mock-ok-claude"])
    client = claude(stack, token)
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=64, messages=CLAUDE_HELLO
    )
    message = raw.parse()
    assert "claude-sonnet-4-6" in message.content[0].text  # type: ignore[union-attr]
    assert raw.headers["x-keyway-provider-key-id"] == key_id
    with client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=64, messages=CLAUDE_HELLO
    ) as stream:
        text = "".join(stream.text_stream)
    assert "claude-sonnet-4-6" in text


def test_anthropic_count_tokens_is_routed_like_messages(stack: Stack) -> None:
    # Scoped to one model, failing over from a rate-limited key: the same path as /v1/messages.
    token, (_limited, healthy) = route(
        stack,
        "anthropic",
        ["sk-mock-429-3-count", "sk-mock-ok-count"],
        models={"allow": ["anthropic/claude-sonnet-4-6"]},
    )
    client = claude(stack, token)
    stack.reset_upstream()
    raw = client.messages.with_raw_response.count_tokens(
        model="claude-sonnet-4-6", messages=CLAUDE_HELLO
    )
    counted = raw.parse().input_tokens
    assert raw.headers["x-keyway-provider-key-id"] == healthy
    assert raw.headers["x-keyway-attempts"] == "2"
    sent = [(r["path"], r["label"]) for r in stack.upstream_requests()]
    assert sent == [
        ("/v1/messages/count_tokens", "429-3-count"),
        ("/v1/messages/count_tokens", "ok-count"),
    ]
    # The count is the input a Messages call with the same prompt reports.
    message = client.messages.create(
        model="claude-sonnet-4-6", max_tokens=64, messages=CLAUDE_HELLO
    )
    assert counted == message.usage.input_tokens > 0
    with pytest.raises(anthropic.PermissionDeniedError):
        client.messages.count_tokens(model="claude-haiku-4-5", messages=CLAUDE_HELLO)


def test_models_list_in_each_sdk_shape(stack: Stack) -> None:
    token, _ = route(stack, "openai", ["sk-mock-ok-models"], providers={"allow": ["openai"]})
    ids = {m.id for m in oai(stack, token).models.list()}
    assert "gpt-4o" in ids
    assert not any(i.startswith("claude") for i in ids)
    anthropic_ids = {m.id for m in claude(stack, token).models.list()}
    assert anthropic_ids == ids


def test_failover_from_rate_limited_key_to_healthy_key(stack: Stack) -> None:
    token, (_limited, healthy) = route(stack, "openai", ["sk-mock-429-3-a", "sk-mock-ok-b"])
    raw = oai(stack, token).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=HELLO
    )
    assert raw.headers["x-keyway-provider-key-id"] == healthy
    assert raw.headers["x-keyway-attempts"] == "2"
    # The limited key is held back: the next request goes straight to the healthy one.
    again = oai(stack, token).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=HELLO
    )
    assert again.headers["x-keyway-attempts"] == "1"
    assert again.headers["x-keyway-provider-key-id"] == healthy


def test_auth_error_is_reported_back_as_the_keys_last_error(stack: Stack) -> None:
    token, (broken, _) = route(stack, "openai", ["sk-mock-401-revoked", "sk-mock-ok-spare"])
    oai(stack, token).chat.completions.create(model="gpt-4o", messages=HELLO)

    def reported() -> bool:
        return stack.provider_key(broken).last_error.status == 401

    wait_until(reported, timeout=10, what="the proxy to report the 401")
    key = stack.provider_key(broken)
    assert "auth" in key.last_error.reason.lower()
    assert key.HasField("last_used_time")


def test_all_keys_rate_limited_raises_rate_limit_error(stack: Stack) -> None:
    token, ids = route(stack, "openai", ["sk-mock-429-30-x", "sk-mock-429-30-y"])
    with pytest.raises(openai.RateLimitError) as caught:
        oai(stack, token).chat.completions.create(model="gpt-4o", messages=HELLO)
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["code"] == "all_rate_limited"
    assert [a["provider_key_id"] for a in body["attempts"]] == ids
    assert caught.value.response.headers["retry-after"]


def test_other_4xx_fails_fast_with_the_upstream_body(stack: Stack) -> None:
    token, _ = route(stack, "openai", ["sk-mock-400-a", "sk-mock-ok-never"])
    with pytest.raises(openai.BadRequestError) as caught:
        oai(stack, token).chat.completions.create(model="gpt-4o", messages=HELLO)
    assert caught.value.response.headers["x-keyway-attempts"] == "1"
    labels = [r["label"] or "" for r in stack.upstream_requests()]
    assert "ok-never" not in " ".join(labels)


@pytest.mark.parametrize(
    ("token", "error"),
    [
        ("", openai.AuthenticationError),
        ("sk-not-a-keyway-key", openai.AuthenticationError),
        ("kwak_" + "A" * 38, openai.AuthenticationError),
    ],
)
def test_bad_access_keys_raise_authentication_error(
    stack: Stack, token: str, error: type[Exception]
) -> None:
    if token:
        client = oai(stack, token)
    else:
        client = oai(stack, "unused", default_headers={"Authorization": ""})
    with pytest.raises(error):
        client.chat.completions.create(model="gpt-4o", messages=HELLO)


def test_anthropic_sdk_gets_its_own_error_classes(stack: Stack) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        claude(stack, "kwak_" + "B" * 38).messages.create(
            model="claude-sonnet-4-6", max_tokens=8, messages=CLAUDE_HELLO
        )
    token, _ = route(
        stack, "anthropic", ["sk-mock-ok-scope"], models={"allow": ["anthropic/claude-haiku-4-5"]}
    )
    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        claude(stack, token).messages.create(
            model="claude-sonnet-4-6", max_tokens=8, messages=CLAUDE_HELLO
        )
    assert "not allowed" in str(caught.value)


def test_scope_violation_is_403_before_any_upstream_call(stack: Stack) -> None:
    token, _ = route(
        stack, "openai", ["sk-mock-ok-scoped"], models={"allow": ["openai/gpt-4o-mini"]}
    )
    stack.reset_upstream()
    with pytest.raises(openai.PermissionDeniedError):
        oai(stack, token).chat.completions.create(model="gpt-4o", messages=HELLO)
    assert stack.upstream_requests() == []
    # A fallback list keeps the allowed model and names the dropped one.
    raw = oai(stack, token).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=HELLO, extra_body={"models": ["gpt-4o-mini"]}
    )
    assert raw.headers["x-keyway-rejected-models"] == "gpt-4o"
    assert raw.headers["x-keyway-model"] == "gpt-4o-mini"
    sent = stack.upstream_requests()[-1]
    assert sent["model"] == "gpt-4o-mini"


def test_unknown_model_suggests_the_closest(stack: Stack) -> None:
    token, _ = route(stack, "openai", ["sk-mock-ok-typo"])
    with pytest.raises(openai.BadRequestError) as caught:
        oai(stack, token).chat.completions.create(model="gpt-4oo", messages=HELLO)
    assert "gpt-4o" in str(caught.value)


def test_revoked_access_key_gets_401(stack: Stack) -> None:
    key_ids = [stack.add_provider_key("openai", "sk-mock-ok-revoke")]
    access_id, token = stack.add_access_key()
    stack.wait_synced()
    assert key_ids
    oai(stack, token).chat.completions.create(model="gpt-4o", messages=HELLO)
    stack.delete_access_key(access_id)
    stack.wait_synced()
    with pytest.raises(openai.AuthenticationError):
        oai(stack, token).chat.completions.create(model="gpt-4o", messages=HELLO)


def test_access_key_never_reaches_the_provider(stack: Stack) -> None:
    token, _ = route(stack, "openai", ["sk-mock-ok-leak"])
    stack.reset_upstream()
    oai(stack, token).chat.completions.create(model="gpt-4o", messages=HELLO)
    (record,) = stack.upstream_requests()
    assert token not in repr(record)
    assert record["label"].startswith("ok")


def test_rotation_under_load_loses_no_request(stack: Stack) -> None:
    token, (key_id,) = route(stack, "openai", ["sk-mock-ok-before"])
    client = oai(stack, token)
    failures: list[BaseException] = []
    served: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                c = client.chat.completions.create(model="gpt-4o", messages=HELLO)
                served.append(c.choices[0].message.content or "")
            except Exception as error:  # any failure fails the test
                failures.append(error)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    stack.rotate_provider_key(key_id, "sk-mock-ok-after")
    stack.wait_synced()
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    assert failures == []
    assert any("ok-before" in s for s in served)
    assert "ok-after" in served[-1]


def test_client_disconnect_cancels_the_upstream_request(stack: Stack) -> None:
    token, _ = route(stack, "openai", ["sk-mock-stall-2-cancel"])
    stack.reset_upstream()
    with (
        httpx.Client(base_url=stack.proxy_url, timeout=10) as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {token}"},
            json={"model": "gpt-4o", "messages": HELLO, "stream": True},
        ) as response,
    ):
        assert response.status_code == 200
        next(response.iter_bytes())
    wait_until(
        lambda: [r["outcome"] for r in stack.upstream_requests()] == ["cancelled"],
        timeout=5,
        what="the mock to see the cancel",
    )


def test_stream_breaking_after_first_byte_raises_in_the_sdk(stack: Stack) -> None:
    token, _ = route(stack, "openai", ["sk-mock-break-3-x"])
    stream = oai(stack, token).chat.completions.create(model="gpt-4o", messages=HELLO, stream=True)
    with pytest.raises(openai.APIError, match="incomplete"):
        for _ in stream:
            pass
    atoken, _ = route(stack, "anthropic", ["sk-mock-break-3-y"])
    with (
        pytest.raises(anthropic.APIStatusError, match="incomplete"),
        claude(stack, atoken).messages.stream(
            model="claude-sonnet-4-6", max_tokens=64, messages=CLAUDE_HELLO
        ) as s,
    ):
        for _ in s.text_stream:
            pass
