"""Usage, request records, /metrics and the request log agree with what clients received.

Real processes (mock upstream, control plane, proxy with `--request-log json`), the
official SDKs as clients: a failover, a fail-fast 400, streams with and without usage,
an Anthropic stream, a client that leaves mid-stream; then the same again while the
control plane is down, which loses nothing once it is back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from keyway.v1 import usage_pb2, usage_pb2_grpc

from .stack import Stack, running_stack, wait_until

HELLO: list[Any] = [{"role": "user", "content": "Say hello"}]
FAILING, SERVING = "sk-mock-503-usage-first", "sk-mock-ok-usage-second"
BAD, CLAUDE, SLOW = "sk-mock-400-usage", "sk-mock-ok-usage-claude", "sk-mock-trickle-50-usage"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(
        tmp_path / "keyway",
        proxy_args=["--request-log", "json"],
    ) as s:
        yield s


def route(stack: Stack, provider: str, *values: str) -> tuple[str, list[str]]:
    keys = [stack.add_provider_key(provider, v) for v in values]
    rule = {"provider": provider, "steps": [{"type": "user", "keys": [{"id": k} for k in keys]}]}
    _, token = stack.add_access_key(
        stack.add_configuration({"name": f"usage {values[0]}", "router": {"rules": [rule]}})
    )
    return token, keys


class Seen:
    """What the clients received, per request id: the truth the records must match."""

    def __init__(self) -> None:
        self.tokens: dict[str, tuple[int, int] | None] = {}

    def add(self, headers: Any, tokens: tuple[int, int] | None) -> str:
        request_id = str(headers["x-keyway-request-id"])
        self.tokens[request_id] = tokens
        return request_id


def traffic(stack: Stack, seen: Seen, openai_token: str, bad: str, claude: str, slow: str) -> None:
    client = openai.OpenAI(api_key=openai_token, base_url=f"{stack.proxy_url}/v1", max_retries=0)
    stack.clients.append(client)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
    done = raw.parse()
    assert done.usage is not None
    seen.add(raw.headers, (done.usage.prompt_tokens, done.usage.completion_tokens))

    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=HELLO, stream=True, stream_options={"include_usage": True}
    ) as response:
        chunks = list(response.parse())
    usage = chunks[-1].usage
    assert usage is not None
    seen.add(response.headers, (usage.prompt_tokens, usage.completion_tokens))

    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=HELLO, stream=True
    ) as response:
        assert all(chunk.usage is None for chunk in response.parse())
    seen.add(response.headers, None)  # unknown: the client did not ask for usage

    failing = openai.OpenAI(api_key=bad, base_url=f"{stack.proxy_url}/v1", max_retries=0)
    stack.clients.append(failing)
    with pytest.raises(openai.BadRequestError) as refused:
        failing.chat.completions.create(model="gpt-4o", messages=HELLO)
    seen.add(refused.value.response.headers, None)

    claude_client = anthropic.Anthropic(api_key=claude, base_url=stack.proxy_url, max_retries=0)
    stack.clients.append(claude_client)
    with claude_client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=64, messages=HELLO
    ) as stream:
        final = stream.get_final_message()
        headers = stream.response.headers
    seen.add(headers, (final.usage.input_tokens, final.usage.output_tokens))

    with (
        httpx.Client(base_url=stack.proxy_url, timeout=10) as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {slow}"},
            json={"model": "gpt-4o", "messages": HELLO, "stream": True},
        ) as gone,
    ):
        next(gone.iter_raw())  # the first event, then the client leaves
    seen.add(gone.headers, None)


def usage_client(stack: Stack) -> usage_pb2_grpc.UsageServiceStub:
    return usage_pb2_grpc.UsageServiceStub(stack.channel)


def recorded(stack: Stack, request_id: str) -> usage_pb2.Request | None:
    try:
        return (
            usage_client(stack)
            .GetRequest(usage_pb2.GetRequestRequest(request_id=request_id), metadata=stack.auth)
            .request
        )
    except Exception:
        return None


def metric_sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:{{(.*)}})? (\S+)", line)
        if match is None:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match[1] or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match[2])
    return total


def test_usage_records_metrics_and_the_request_log_agree_with_the_clients(stack: Stack) -> None:
    openai_token, (failing_id, serving_id) = route(stack, "openai", FAILING, SERVING)
    bad, _ = route(stack, "openai", BAD)
    claude, (claude_id,) = route(stack, "anthropic", CLAUDE)
    slow, _ = route(stack, "openai", SLOW)
    stack.wait_synced()
    seen = Seen()
    traffic(stack, seen, openai_token, bad, claude, slow)
    wait_until(
        lambda: all(recorded(stack, r) is not None for r in seen.tokens),
        timeout=20,
        what="every request to be recorded",
    )

    records = {r: recorded(stack, r) for r in seen.tokens}
    first = records[next(iter(seen.tokens))]
    assert first is not None
    assert [(a.provider_key_id, a.outcome, a.status) for a in first.attempts] == [
        (failing_id, "retryable", 503),
        (serving_id, "success", 200),
    ]
    for request_id, tokens in seen.tokens.items():
        record = records[request_id]
        assert record is not None
        last = record.attempts[-1]
        got = (last.input_tokens, last.output_tokens) if last.tokens_known else None
        assert got == tokens, (request_id, record)
    outcomes = [records[r].attempts[-1].outcome for r in seen.tokens]  # type: ignore[union-attr]
    assert outcomes == ["success", "success", "success", "fail_fast", "success", "client_cancelled"]
    claude_attempt = list(records.values())[4].attempts[-1]  # type: ignore[union-attr]
    assert claude_attempt.provider_key_id == claude_id
    assert claude_attempt.cost_known is False  # no list price for this model: no guess

    input_total = sum(t[0] for t in seen.tokens.values() if t)
    output_total = sum(t[1] for t in seen.tokens.values() if t)
    totals = usage_client(stack).ListUsage(usage_pb2.ListUsageRequest(), metadata=stack.auth)
    (row,) = totals.rows
    attempts = sum(len(r.attempts) for r in records.values() if r is not None)
    assert attempts > 6  # the 503 key is tried first again (a server error holds no cooldown)
    assert (row.requests, row.attempts, row.failovers) == (6, attempts, attempts - 6)
    assert dict(row.errors) == {"fail_fast": 1, "client_cancelled": 1}
    assert (row.input_tokens, row.output_tokens) == (input_total, output_total)
    assert row.cost_usd > 0  # gpt-4o has a list price

    metrics = httpx.get(f"{stack.proxy_url}/metrics").text
    assert metric_sum(metrics, "keyway_requests_total") == 6
    assert metric_sum(metrics, "keyway_failovers_total") == attempts - 6
    assert metric_sum(metrics, "keyway_tokens_total", kind="input") == input_total
    assert metric_sum(metrics, "keyway_tokens_total", kind="output") == output_total
    assert metric_sum(metrics, "keyway_attempts_total", outcome="retryable") == attempts - 6

    lines = [json.loads(line) for line in stack.proxy.lines if line.startswith("{")]
    logged = {line["request_id"]: line for line in lines}
    assert set(logged) == set(seen.tokens)
    assert logged[first.request_id]["attempts"] == 2
    assert logged[first.request_id]["provider_key_id"] == serving_id
    output = stack.proxy.output()
    for secret in (FAILING, SERVING, BAD, CLAUDE, SLOW, openai_token, bad, claude, slow):
        assert secret not in output

    scraped = httpx.get(f"{stack.http_url}/metrics").text
    assert metric_sum(scraped, "keyway_usage_records_ingested_total") == attempts
    assert metric_sum(scraped, "keyway_connected_proxies") == 1
    assert metric_sum(scraped, "keyway_rpcs_total", method="CreateProviderKey") == 5


def test_requests_made_while_the_control_plane_is_down_are_counted_once_it_is_back(
    stack: Stack,
) -> None:
    token, _ = route(stack, "openai", SERVING)
    stack.wait_synced()
    client = openai.OpenAI(api_key=token, base_url=f"{stack.proxy_url}/v1", max_retries=0)
    stack.clients.append(client)
    address = stack.control_plane.address
    stack.control_plane.kill()
    ids = []
    for _ in range(5):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
        ids.append(raw.headers["x-keyway-request-id"])
    stack.control_plane = stack.control_plane.respawn(listen=address)
    stack.processes.append(stack.control_plane)
    stack.control_plane.wait_listening()
    wait_until(
        lambda: all(recorded(stack, r) is not None for r in ids),
        timeout=40,
        what="the requests made meanwhile to be recorded",
    )
    totals = usage_client(stack).ListUsage(usage_pb2.ListUsageRequest(), metadata=stack.auth)
    assert sum(r.requests for r in totals.rows) == 5
