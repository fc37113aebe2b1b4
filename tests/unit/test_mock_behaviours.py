"""The mock upstream's pure parts: key grammar, payload shapes, SSE framing."""

from __future__ import annotations

import base64
import json
import struct

import pytest

from data_plane.formats import ApiFormat
from data_plane.mock_upstream import payloads, sse
from data_plane.mock_upstream.behaviours import (
    FAILURES,
    FOREIGN_LABEL,
    Behaviour,
    Kind,
    parse_key,
)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("sk-mock-ok", Behaviour(Kind.OK, "ok")),
        ("sk-mock-ok-a", Behaviour(Kind.OK, "ok-a")),
        ("sk-mock-429", Behaviour(Kind.RATE_LIMITED, "429", 1.0)),
        ("sk-mock-429-2", Behaviour(Kind.RATE_LIMITED, "429-2", 2.0)),
        ("sk-mock-429-0.25-backup", Behaviour(Kind.RATE_LIMITED, "429-0.25-backup", 0.25)),
        ("sk-mock-429-b", Behaviour(Kind.RATE_LIMITED, "429-b", 1.0)),
        ("sk-mock-429date-30-x", Behaviour(Kind.RATE_LIMITED_DATE, "429date-30-x", 30.0)),
        ("sk-mock-429reset", Behaviour(Kind.RATE_LIMITED_RESET, "429reset", 1.0)),
        ("sk-mock-trickle-50-y", Behaviour(Kind.TRICKLE, "trickle-50-y", 50.0)),
        ("sk-mock-trickle", Behaviour(Kind.TRICKLE, "trickle", 100.0)),
        ("sk-mock-slow-150", Behaviour(Kind.SLOW, "slow-150", 150.0)),
        ("sk-mock-slow", Behaviour(Kind.SLOW, "slow", 1000.0)),
        ("sk-mock-break-3-x", Behaviour(Kind.BREAK, "break-3-x", 3.0)),
        ("sk-mock-break-0", Behaviour(Kind.BREAK, "break-0", 0.0)),
        ("sk-mock-stall-2", Behaviour(Kind.STALL, "stall-2", 2.0)),
        ("sk-mock-hold-c", Behaviour(Kind.HOLD, "hold-c")),
        ("sk-mock-401", Behaviour(Kind.UNAUTHORIZED, "401")),
        ("sk-mock-529-z", Behaviour(Kind.OVERLOADED, "529-z")),
    ],
)
def test_keys_name_a_behaviour_a_parameter_and_a_free_label(key: str, expected: Behaviour) -> None:
    assert parse_key(key) == expected


@pytest.mark.parametrize(
    ("key", "label"),
    [
        ("sk-mock-frobnicate", "frobnicate"),  # unknown behaviour: still a mock key, label kept
        ("sk-mock-", FOREIGN_LABEL),
        ("sk-proj-realLookingSecret0123456789", FOREIGN_LABEL),  # never copied into records
        ("", FOREIGN_LABEL),
    ],
)
def test_anything_else_is_an_invalid_key(key: str, label: str) -> None:
    behaviour = parse_key(key)
    assert behaviour == Behaviour(Kind.INVALID_KEY, label)
    assert FAILURES[behaviour.kind].status == 401
    assert FAILURES[behaviour.kind].openai_code == "invalid_api_key"


@pytest.mark.parametrize("text", ["break-1.5", "break--1", "429-nan", "429-inf", "slow--5"])
def test_parameters_that_make_no_sense_fall_back_to_the_default(text: str) -> None:
    behaviour = parse_key("sk-mock-" + text)
    assert behaviour.param == {"break": 1.0, "429": 1.0, "slow": 1000.0}[text.split("-")[0]]


def test_every_error_behaviour_has_its_status() -> None:
    statuses = {kind.value: failure.status for kind, failure in FAILURES.items()}
    for code in ("400", "401", "403", "429", "500", "503", "529"):
        assert statuses[code] == int(code)


def test_answer_pieces_join_into_the_sentence_naming_model_and_key() -> None:
    pieces = payloads.text_pieces("gpt-4o", "ok-a")
    assert "".join(pieces) == "Hello from mock (model gpt-4o, key ok-a)"
    assert pieces[:2] == ["Hello", " from"]


@pytest.mark.parametrize(
    ("seconds", "duration", "retry_after"),
    [(0.02, "20ms", "0.02"), (1.0, "1s", "1"), (1.5, "1.5s", "1.5"), (360.0, "6m0s", "360")],
)
def test_reset_and_retry_after_formats(seconds: float, duration: str, retry_after: str) -> None:
    assert payloads.go_duration(seconds) == duration
    assert payloads.retry_after_value(seconds) == retry_after


def test_rate_limited_headers_carry_every_hint_a_client_might_read() -> None:
    openai = dict(payloads.limit_headers(ApiFormat.OPENAI, "req_1", 0.0, 2.0))
    assert openai[b"retry-after"] == b"2"
    assert openai[b"retry-after-ms"] == b"2000"
    assert openai[b"x-ratelimit-reset-requests"] == b"2s"
    assert openai[b"x-ratelimit-remaining-requests"] == b"0"
    assert openai[b"x-request-id"] == b"req_1"
    anthropic = dict(payloads.limit_headers(ApiFormat.ANTHROPIC, "req_2", 0.0, 2.0))
    assert anthropic[b"anthropic-ratelimit-requests-reset"] == b"1970-01-01T00:00:02Z"
    assert anthropic[b"retry-after-ms"] == b"2000"
    assert anthropic[b"request-id"] == b"req_2"


def test_a_429_can_name_its_time_as_a_date_or_only_by_reset_headers() -> None:
    dated = dict(payloads.limit_headers(ApiFormat.OPENAI, "r", 100.2, 2.0, "date"))
    assert dated[b"retry-after"] == b"Thu, 01 Jan 1970 00:01:43 GMT"  # ceil(102.2)
    assert b"retry-after-ms" not in dated
    reset = dict(payloads.limit_headers(ApiFormat.ANTHROPIC, "r", 0.0, 2.0, "reset"))
    assert b"retry-after" not in reset
    assert b"retry-after-ms" not in reset
    assert reset[b"anthropic-ratelimit-requests-remaining"] == b"0"
    assert reset[b"anthropic-ratelimit-requests-reset"] == b"1970-01-01T00:00:02Z"


def test_successful_responses_have_no_retry_hints() -> None:
    headers = dict(payloads.limit_headers(ApiFormat.OPENAI, "req_1", 0.0, None))
    assert b"retry-after" not in headers
    assert headers[b"x-ratelimit-remaining-requests"] == b"9999"


def test_error_bodies_use_each_providers_format() -> None:
    failure = FAILURES[Kind.RATE_LIMITED]
    openai = json.loads(payloads.error_body(ApiFormat.OPENAI, failure, "req_1"))
    assert openai["error"]["code"] == "rate_limit_exceeded"
    assert set(openai["error"]) == {"message", "type", "param", "code"}
    anthropic = json.loads(payloads.error_body(ApiFormat.ANTHROPIC, failure, "req_1"))
    assert anthropic["type"] == "error"
    assert anthropic["error"] == {"type": "rate_limit_error", "message": failure.message}


def test_embeddings_are_deterministic_unit_vectors_and_base64_carries_the_same_floats() -> None:
    floats = payloads.embeddings("text-embedding-3-small", ["a", "b"], 16, False, 1)
    again = payloads.embeddings("text-embedding-3-small", ["a", "b"], 16, False, 1)
    assert floats == again
    first = floats["data"][0]["embedding"]
    assert len(first) == 16
    assert abs(sum(v * v for v in first) - 1.0) < 1e-5
    assert first != floats["data"][1]["embedding"]
    encoded = payloads.embeddings("text-embedding-3-small", ["a"], 16, True, 1)
    raw = base64.b64decode(encoded["data"][0]["embedding"])
    assert list(struct.unpack("<16f", raw)) == first


def test_embedding_sizes_default_per_model() -> None:
    small = payloads.embeddings("text-embedding-3-small", ["a"], None, False, 1)
    large = payloads.embeddings("text-embedding-3-large", ["a"], None, False, 1)
    assert len(small["data"][0]["embedding"]) == 1536
    assert len(large["data"][0]["embedding"]) == 3072


@pytest.mark.parametrize(
    ("value", "texts"),
    [("x", ["x"]), (["x", "y"], ["x", "y"]), ([1, 2], ["[1, 2]"]), ([[1], [2]], ["[1]", "[2]"])],
)
def test_embedding_inputs_accept_the_apis_shapes(value: object, texts: list[str]) -> None:
    assert payloads.embedding_inputs(value) == texts


@pytest.mark.parametrize("value", [None, [], 3, [1, "x"], {"a": 1}])
def test_embedding_inputs_reject_other_shapes(value: object) -> None:
    assert payloads.embedding_inputs(value) is None


def _data_lines(frames: list[bytes]) -> list[str]:
    return [f.decode().split("data: ", 1)[1].strip() for f in frames]


def test_chat_stream_ends_with_usage_when_asked_then_done() -> None:
    pieces = ["Hello", " there"]
    frames = sse.chat_events("chatcmpl-1", 0, "gpt-4o", pieces, 5, include_usage=True)
    data = _data_lines(frames)
    assert data[-1] == "[DONE]"
    usage_chunk = json.loads(data[-2])
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 2
    assert all(json.loads(d)["usage"] is None for d in data[:-2])
    content = [json.loads(d)["choices"][0]["delta"].get("content") for d in data[:-2]]
    assert content == ["", "Hello", " there", None]
    without = sse.chat_events("chatcmpl-1", 0, "gpt-4o", pieces, 5, include_usage=False)
    assert len(without) == len(frames) - 1
    assert "usage" not in json.loads(_data_lines(without)[0])


def _event_names(frames: list[bytes]) -> list[str]:
    return [f.decode().split("\n", 1)[0].removeprefix("event: ") for f in frames]


def test_responses_stream_has_the_apis_event_sequence() -> None:
    frames = sse.responses_events("resp_1", "msg_1", 0, "gpt-4o", ["a", "b"], 3)
    assert _event_names(frames) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    events = [json.loads(d) for d in _data_lines(frames)]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "ab"
    assert events[-1]["response"]["status"] == "completed"


def test_messages_stream_has_the_apis_event_sequence() -> None:
    frames = sse.messages_events("msg_1", "claude-sonnet-4-6", ["a", "b"], 3)
    assert _event_names(frames) == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    delta = json.loads(_data_lines(frames)[-2])
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"] == {"output_tokens": 2}
