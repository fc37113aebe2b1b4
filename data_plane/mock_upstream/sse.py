"""Server-sent event streams for each API, as lists of ready-to-send frames (pure).

One list element is one SSE event; the ``break``/``stall`` behaviours count
these elements, so a key like ``sk-mock-break-2`` cuts after the second frame
whatever the API.
"""

from __future__ import annotations

from typing import Any

from . import payloads as p


def _data(value: object) -> bytes:
    return b"data: " + p.dumps(value) + b"\n\n"


def _event(value: dict[str, Any]) -> bytes:
    name: str = value["type"]
    return b"event: " + name.encode() + b"\ndata: " + p.dumps(value) + b"\n\n"


def chat_events(
    completion_id: str,
    created: int,
    model: str,
    pieces: list[str],
    prompt: int,
    include_usage: bool,
) -> list[bytes]:
    base = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": p.FINGERPRINT,
    }

    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        # With include_usage the real API adds `"usage": null` to every chunk.
        extra = {"usage": None} if include_usage else {}
        return _data({**base, "choices": [choice], **extra})

    frames = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
    frames += [chunk({"content": piece}, None) for piece in pieces]
    frames.append(chunk({}, "stop"))
    if include_usage:
        frames.append(_data({**base, "choices": [], "usage": p.chat_usage(prompt, len(pieces))}))
    frames.append(b"data: [DONE]\n\n")
    return frames


def responses_events(
    response_id: str, item_id: str, created: int, model: str, pieces: list[str], prompt: int
) -> list[bytes]:
    text = "".join(pieces)
    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    started = p.response_object(response_id, created, model, [], None)
    done_item = p.message_item(item_id, text)
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": p.message_item(item_id, None),
        },
        {"type": "response.content_part.added", **where, "part": p.output_text_part("")},
        *(
            {"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
            for piece in pieces
        ),
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": p.output_text_part(text)},
        {"type": "response.output_item.done", "output_index": 0, "item": done_item},
        {
            "type": "response.completed",
            "response": p.response_object(
                response_id, created, model, [done_item], (prompt, len(pieces))
            ),
        },
    ]
    return [_event({**event, "sequence_number": n}) for n, event in enumerate(events)]


def messages_events(message_id: str, model: str, pieces: list[str], prompt: int) -> list[bytes]:
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": p.anthropic_message(message_id, model, None, prompt, 1),
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        *(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}
            for t in pieces
        ),
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": len(pieces)},
        },
        {"type": "message_stop"},
    ]
    return [_event(event) for event in events]
