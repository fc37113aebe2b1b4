"""Response bodies and headers shaped like the real OpenAI and Anthropic APIs (pure).

Only the fields the official SDKs read or that a proxy might look at are
filled, but every one of them has the real name and type. Times and ids are
passed in so that the same inputs always give the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any

from data_plane.formats import ApiFormat

from .behaviours import Failure

JsonObject = dict[str, Any]
Headers = list[tuple[bytes, bytes]]
FINGERPRINT = "fp_mock"


def dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def text_pieces(model: str, label: str) -> list[str]:
    """The deterministic answer, split into the pieces a stream sends one by one."""
    words = f"Hello from mock (model {model}, key {label})".split(" ")
    return [words[0], *(" " + word for word in words[1:])]


def prompt_tokens(body: bytes) -> int:
    # Roughly four bytes a token: deterministic and grows with the request.
    return max(1, len(body) // 4)


# What Anthropic counts as input: the prompt's parts, not sampling settings such as max_tokens.
_ANTHROPIC_INPUT = ("system", "messages", "tools", "tool_choice", "thinking")


def anthropic_input_tokens(fields: JsonObject) -> int:
    """Input tokens of a Messages request: what /v1/messages/count_tokens answers for it."""
    return prompt_tokens(dumps({name: fields[name] for name in _ANTHROPIC_INPUT if name in fields}))


# --- OpenAI Chat Completions ----------------------------------------------------------------


def chat_usage(prompt: int, completion: int) -> JsonObject:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_completion(
    completion_id: str, created: int, model: str, pieces: list[str], prompt: int
) -> JsonObject:
    message: JsonObject = {
        "role": "assistant",
        "content": "".join(pieces),
        "refusal": None,
        "annotations": [],
    }
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": chat_usage(prompt, len(pieces)),
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }


# --- OpenAI Responses ------------------------------------------------------------------------


def output_text_part(text: str) -> JsonObject:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str | None) -> JsonObject:
    """The output message; ``text=None`` is the empty in-progress item a stream opens with."""
    return {
        "id": item_id,
        "type": "message",
        "status": "in_progress" if text is None else "completed",
        "role": "assistant",
        "content": [] if text is None else [output_text_part(text)],
    }


def response_object(
    response_id: str,
    created: int,
    model: str,
    output: list[JsonObject],
    usage: tuple[int, int] | None,
) -> JsonObject:
    """A Responses API object; ``usage=None`` means still in progress."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": "in_progress" if usage is None else "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": None if usage is None else _responses_usage(*usage),
        "user": None,
        "metadata": {},
    }


def _responses_usage(prompt: int, completion: int) -> JsonObject:
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


# --- OpenAI Embeddings -----------------------------------------------------------------------

_DEFAULT_DIMENSIONS = {"text-embedding-3-large": 3072}


def embedding_inputs(value: object) -> list[str] | None:
    """The texts to embed, or None when ``input`` has no valid shape."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, int) for v in value):
            return [repr(value)]  # one pre-tokenised input
        if all(isinstance(v, str | list) for v in value):
            return [v if isinstance(v, str) else repr(v) for v in value]
    return None


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """A unit vector that depends only on the text and the size, as float32 values."""
    # An extendable-output hash of the text, read as uniform values in [-0.5, 0.5).
    stream = hashlib.shake_256(text.encode()).digest(4 * dimensions)
    raw = [word / 2**32 - 0.5 for word in struct.unpack(f"<{dimensions}I", stream)]
    norm = sum(v * v for v in raw) ** 0.5 or 1.0
    # Round-trip through float32 so the float and base64 forms carry equal values.
    packed = struct.pack(f"<{dimensions}f", *(v / norm for v in raw))
    return list(struct.unpack(f"<{dimensions}f", packed))


def embeddings(
    model: str, texts: list[str], dimensions: int | None, as_base64: bool, prompt: int
) -> JsonObject:
    size = dimensions or _DEFAULT_DIMENSIONS.get(model, 1536)
    data = []
    for index, text in enumerate(texts):
        vector = embedding_vector(text, size)
        encoded: object = vector
        if as_base64:
            encoded = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }


# --- Anthropic Messages ----------------------------------------------------------------------


def anthropic_usage(prompt: int, completion: int) -> JsonObject:
    return {
        "input_tokens": prompt,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": completion,
        "service_tier": "standard",
    }


def anthropic_message(
    message_id: str, model: str, text: str | None, prompt: int, completion: int
) -> JsonObject:
    """A Messages API object; ``text=None`` is the empty one a stream starts with."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [] if text is None else [{"type": "text", "text": text}],
        "stop_reason": None if text is None else "end_turn",
        "stop_sequence": None,
        "usage": anthropic_usage(prompt, completion),
    }


# --- Models ----------------------------------------------------------------------------------

_OPENAI_MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "text-embedding-3-small")
_ANTHROPIC_MODELS = {
    "claude-sonnet-4-6": "Claude Sonnet 4.6",
    "claude-opus-4-6": "Claude Opus 4.6",
    "claude-haiku-4-5": "Claude Haiku 4.5",
}
OPENAI_MODELS = dumps(
    {
        "object": "list",
        "data": [
            {"id": m, "object": "model", "created": 1_715_367_049, "owned_by": "system"}
            for m in _OPENAI_MODELS
        ],
    }
)
ANTHROPIC_MODELS = dumps(
    {
        "data": [
            {"type": "model", "id": m, "display_name": n, "created_at": "2025-09-29T00:00:00Z"}
            for m, n in _ANTHROPIC_MODELS.items()
        ],
        "has_more": False,
        "first_id": next(iter(_ANTHROPIC_MODELS)),
        "last_id": list(_ANTHROPIC_MODELS)[-1],
    }
)


# --- Errors ----------------------------------------------------------------------------------


def error_body(
    api: ApiFormat, failure: Failure, request_id: str, message: str | None = None
) -> bytes:
    text = message or failure.message
    if api is ApiFormat.ANTHROPIC:
        return dumps(
            {
                "type": "error",
                "error": {"type": failure.anthropic_type, "message": text},
                "request_id": request_id,
            }
        )
    return dumps(
        {
            "error": {
                "message": text,
                "type": failure.openai_type,
                "param": failure.openai_param,
                "code": failure.openai_code,
            }
        }
    )


# --- Headers ---------------------------------------------------------------------------------

_OPENAI_LIMITS = (
    (b"x-ratelimit-limit-requests", b"10000"),
    (b"x-ratelimit-limit-tokens", b"30000000"),
    (b"x-ratelimit-remaining-tokens", b"29999000"),
    (b"x-ratelimit-reset-tokens", b"2ms"),
)
_ANTHROPIC_LIMITS = (
    (b"anthropic-ratelimit-requests-limit", b"4000"),
    (b"anthropic-ratelimit-tokens-limit", b"2000000"),
    (b"anthropic-ratelimit-tokens-remaining", b"1999000"),
)


def go_duration(seconds: float) -> str:
    """OpenAI's reset headers are Go duration strings: ``20ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:g}s"


def retry_after_value(seconds: float) -> str:
    # Whole seconds stay an integer, which strict parsers expect; fractions keep
    # their precision (`retry-after-ms` carries it too).
    return str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"


def _timestamp(at: float) -> bytes:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()


def limit_headers(
    api: ApiFormat, request_id: str, now: float, retry_after: float | None, hint: str = "seconds"
) -> Headers:
    """Request id and rate-limit headers; ``retry_after`` set means this is a 429.

    `hint` says how a 429 tells when to come back: ``seconds`` (Retry-After and
    retry-after-ms), ``date`` (Retry-After as an HTTP date), ``reset`` (only the
    provider's own rate-limit reset headers).
    """
    limited = retry_after is not None
    wait = retry_after or 0.0
    if api is ApiFormat.ANTHROPIC:
        headers = [(b"request-id", request_id.encode()), *_ANTHROPIC_LIMITS]
        headers.append((b"anthropic-ratelimit-requests-remaining", b"0" if limited else b"3999"))
        # Reset is an RFC 3339 instant; round up so it is never before the wait ends.
        headers.append((b"anthropic-ratelimit-requests-reset", _timestamp(now + wait + 0.999)))
    else:
        headers = [(b"x-request-id", request_id.encode()), *_OPENAI_LIMITS]
        headers.append((b"x-ratelimit-remaining-requests", b"0" if limited else b"9999"))
        headers.append((b"x-ratelimit-reset-requests", go_duration(wait or 0.006).encode()))
    if limited and hint == "seconds":
        headers.append((b"retry-after", retry_after_value(wait).encode()))
        headers.append((b"retry-after-ms", str(round(wait * 1000)).encode()))
    elif limited and hint == "date":
        # Whole seconds, rounded up so that it is never before the wait ends.
        headers.append((b"retry-after", formatdate(math.ceil(now + wait), usegmt=True).encode()))
    return headers
