"""The request body: read the routing fields, rewrite only `model` and `models`.

Everything else must reach the provider byte-for-byte, so the body is never
re-serialised. A regex tokenizer (strings and structural characters only,
scanned in C) finds the spans of the top-level members to edit.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .errors import KeywayError

_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\],:]')
_SPACE = b" \t\r\n"


@dataclass(frozen=True, slots=True)
class RequestFields:
    model: str
    fallbacks: tuple[str, ...]
    stream: bool
    has_models_member: bool


_MODEL_ID_MAX = 256


def _is_model_id(value: str) -> bool:
    # Model ids end up in response headers: control characters would make the
    # server refuse the header after the upstream call was already paid for.
    return 0 < len(value) <= _MODEL_ID_MAX and value.isprintable()


def read_fields(body: bytes) -> RequestFields:
    try:
        # UTF-8 only (a BOM is tolerated): the byte-level rewrite below cannot
        # edit UTF-16/32 bodies, which json.loads(bytes) would otherwise accept.
        doc = json.loads(body.decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise KeywayError("invalid_json", "request body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise KeywayError("invalid_json", "request body must be a JSON object")
    model = doc.get("model")
    if not isinstance(model, str) or not model:
        raise KeywayError("missing_model", "you must provide a model parameter", "model")
    if not _is_model_id(model):
        raise KeywayError("invalid_model", "`model` is not a valid model id", "model")
    models = doc.get("models", [])
    if not isinstance(models, list) or not all(
        isinstance(m, str) and _is_model_id(m) for m in models
    ):
        raise KeywayError("invalid_models", "`models` must be an array of model ids", "models")
    return RequestFields(model, tuple(models), doc.get("stream") is True, "models" in doc)


@dataclass(frozen=True, slots=True)
class _Member:
    key: str
    start: int
    """Offset of the key's opening quote."""
    value_start: int
    value_end: int
    """Offset just after the value (before whitespace, `,` or `}`)."""


def _members(body: bytes) -> list[_Member]:
    members: list[_Member] = []
    depth = 0
    key: str | None = None
    key_start = value_start = 0
    expecting_key = False
    for match in _TOKEN.finditer(body):
        token = match.group()
        first = token[:1]
        if first == b"{" or first == b"[":
            depth += 1
            expecting_key = depth == 1 and first == b"{"
        elif first == b"}" or first == b"]":
            if depth == 1 and key is not None:
                end = match.start()
                members.append(_Member(key, key_start, value_start, _rstrip(body, end)))
                key = None
            depth -= 1
        elif depth != 1:
            continue
        elif first == b'"' and expecting_key:
            # Compared decoded: `"mod\u0065l"` is `model`, and a lone-surrogate
            # escape such as `"\ud800"` is a valid key that cannot be encoded.
            key, key_start, expecting_key = json.loads(token), match.start(), False
        elif first == b":":
            value_start = _lstrip(body, match.end())
        elif first == b"," and key is not None:
            members.append(_Member(key, key_start, value_start, _rstrip(body, match.start())))
            key, expecting_key = None, True
    return members


def _lstrip(body: bytes, i: int) -> int:
    while i < len(body) and body[i] in _SPACE:
        i += 1
    return i


def _rstrip(body: bytes, i: int) -> int:
    while i > 0 and body[i - 1] in _SPACE:
        i -= 1
    return i


def rewrite(body: bytes, upstream_model: str, fields: RequestFields) -> bytes:
    """`body` with `model` set to `upstream_model` and `models` removed."""
    if upstream_model == fields.model and not fields.has_models_member:
        return body
    members = _members(body)
    edits: list[tuple[int, int, bytes]] = []
    kept_before = False
    for i, m in enumerate(members):
        if m.key != "models":
            kept_before = True
            if m.key == "model":
                edits.append((m.value_start, m.value_end, json.dumps(upstream_model).encode()))
        elif kept_before:
            # Drop the separator before it; with duplicate `models` members the
            # spans chain end to start and never overlap.
            edits.append((members[i - 1].value_end, m.value_end, b""))
        elif i + 1 < len(members):
            edits.append((m.start, members[i + 1].start, b""))
        else:
            edits.append((m.start, m.value_end, b""))
    out = bytearray(body)
    for start, end, replacement in sorted(edits, reverse=True):
        out[start:end] = replacement
    return bytes(out)
