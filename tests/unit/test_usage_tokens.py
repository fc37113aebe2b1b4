"""Token counts read from real-shaped provider answers, without reading prompts or text."""

from __future__ import annotations

import json

from data_plane.formats import ApiFormat
from data_plane.mock_upstream import payloads
from data_plane.usage.tokens import AnswerUsage, Tokens, from_body

OPENAI, ANTHROPIC = ApiFormat.OPENAI, ApiFormat.ANTHROPIC


def sse(*events: object, done: bool = False) -> bytes:
    text = "".join(f"data: {json.dumps(e)}\n\n" for e in events)
    return (text + ("data: [DONE]\n\n" if done else "")).encode()


def test_chat_completion_counts_with_cached_and_reasoning_details() -> None:
    body = payloads.chat_completion("c1", 0, "gpt-4o", ["Hi", " there"], prompt=42)
    body["usage"]["prompt_tokens_details"]["cached_tokens"] = 30
    body["usage"]["completion_tokens_details"]["reasoning_tokens"] = 1
    assert from_body(payloads.dumps(body), OPENAI) == Tokens(42, 2, 30, 1)


def test_responses_and_embeddings_counts() -> None:
    response = payloads.response_object("r1", 0, "gpt-4o", [], usage=(11, 5))
    assert from_body(payloads.dumps(response), OPENAI) == Tokens(11, 5)
    embedded = payloads.embeddings("text-embedding-3-small", ["a"], 4, False, prompt=9)
    assert from_body(payloads.dumps(embedded), OPENAI) == Tokens(9, 0)


def test_anthropic_input_includes_cache_reads_and_writes() -> None:
    message = payloads.anthropic_message("m1", "claude", "Hi", 10, 3)
    message["usage"].update(cache_read_input_tokens=100, cache_creation_input_tokens=5)
    assert from_body(payloads.dumps(message), ANTHROPIC) == Tokens(115, 3, 100)


def test_a_usage_key_inside_the_text_never_counts() -> None:
    text = 'the JSON was {"usage": {"prompt_tokens": 999}}'
    body = payloads.chat_completion("c1", 0, "gpt-4o", [text], prompt=4)
    assert from_body(payloads.dumps(body), OPENAI) == Tokens(4, 1)
    del body["usage"]
    assert from_body(payloads.dumps(body), OPENAI) is None


def test_only_the_tail_of_a_json_body_is_needed() -> None:
    body = payloads.dumps(payloads.chat_completion("c1", 0, "m", ["x" * 100_000], prompt=7))
    assert from_body(body[-2000:], OPENAI) == Tokens(7, 1)


def test_anthropic_stream_takes_input_from_message_start_and_output_from_the_last_delta() -> None:
    usage = AnswerUsage(ANTHROPIC)
    start = {"type": "message_start", "message": payloads.anthropic_message("m", "c", None, 25, 1)}
    usage.feed(f"event: message_start\ndata: {json.dumps(start)}\n\n".encode())
    usage.feed(sse({"type": "content_block_delta", "delta": {"text": '"usage": {'}}))
    for output in (4, 9):
        usage.feed(sse({"type": "message_delta", "usage": {"output_tokens": output}}))
    assert usage.tokens() == Tokens(25, 9)


def test_openai_stream_counts_only_when_the_client_asked_for_usage() -> None:
    chunk = {"object": "chat.completion.chunk", "choices": [{"delta": {"content": "hi"}}]}
    without = AnswerUsage(OPENAI)
    without.feed(sse(chunk, chunk, done=True))
    assert without.tokens() is None
    asked = AnswerUsage(OPENAI)
    asked.feed(sse({**chunk, "usage": None}, {**chunk, "usage": None}))
    asked.feed(sse({"choices": [], "usage": payloads.chat_usage(12, 2)}, done=True))
    assert asked.tokens() == Tokens(12, 2)


def test_responses_stream_counts_from_response_completed() -> None:
    usage = AnswerUsage(OPENAI)
    created = payloads.response_object("r", 0, "m", [], usage=None)
    done = payloads.response_object("r", 0, "m", [], usage=(8, 6))
    usage.feed(sse({"type": "response.created", "response": created}))
    assert usage.tokens() is None
    usage.feed(sse({"type": "response.completed", "response": done}))
    assert usage.tokens() == Tokens(8, 6)


def test_malformed_usage_is_ignored_not_raised() -> None:
    usage = AnswerUsage(OPENAI)
    usage.feed(b'data: {"usage": {"prompt_tokens": 3,\n\n')
    usage.feed(b'data: {"usage": {"prompt_tokens": "many", "completion_tokens": -4}}\n\n')
    assert usage.tokens() == Tokens(0, 0)
    assert from_body(b'{"usage": [1, 2]}', OPENAI) is None


def test_a_long_stream_keeps_its_first_and_latest_usage_lines() -> None:
    usage = AnswerUsage(ANTHROPIC)
    start = {"type": "message_start", "message": payloads.anthropic_message("m", "c", None, 25, 1)}
    usage.feed(f"event: message_start\ndata: {json.dumps(start)}\n\n".encode())
    for output in range(2, 40):  # far more usage events than are kept
        usage.feed(sse({"type": "message_delta", "usage": {"output_tokens": output}}))
    assert usage.tokens() == Tokens(25, 39)


def test_a_json_body_counts_from_its_last_decodable_usage_object() -> None:
    usage = AnswerUsage(OPENAI)
    whole = payloads.dumps({"usage": payloads.chat_usage(3, 1)})
    usage.end_of_body(whole[:-1] + b',"x":{"usage":{"prompt_tokens":7,')  # the last one cut off
    assert usage.tokens() == Tokens(3, 1)


def test_usage_nested_past_the_decoders_limit_counts_nothing_and_raises_nothing() -> None:
    deep = b'{"usage":{"prompt_tokens":1,"x":' + b"[" * 15_000
    assert from_body(deep, OPENAI) is None
    usage = AnswerUsage(OPENAI)
    usage.feed(b"data: " + deep + b"\n\n")
    assert usage.tokens() is None


def test_null_usage_chunks_never_push_out_the_real_counts() -> None:
    chunk: dict[str, object] = {"object": "chat.completion.chunk", "choices": [], "usage": None}
    usage = AnswerUsage(OPENAI)
    usage.feed(sse(*[chunk] * 7))
    usage.feed(sse({"choices": [], "usage": payloads.chat_usage(12, 2)}))
    usage.feed(sse(*[chunk] * 20))
    assert usage.tokens() == Tokens(12, 2)
