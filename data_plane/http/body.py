"""The request body: read the routing fields, rewrite only `model` and `models`. Pure.

Everything else must reach the provider byte-for-byte, so the body is never
re-serialised: `rewrite` splices the new `model` into the original bytes at
the offsets `jsonscan` found, in one copy.

A top-level key that appears twice is refused. JSON leaves duplicates to the
parser, and a provider that honours the first `model` while the proxy
checked the last would let a request past the access scope.

Bodies up to `jsonscan.SMALL` bytes are read with the standard library's C
parser (fast; the values it builds are small because the body is); larger
ones with the scanner, which builds nothing and which callers run off the
event loop (`needs_worker`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from data_plane.routing.errors import KeywayError

from . import jsonscan
from .jsonscan import JSONError, Member

MAX_FALLBACKS = 10
"""Most entries a `models` fallback list may have."""
_MODEL_ID_MAX = 256
# The longest JSON text a valid model id can have: every character escaped, an astral one
# as a surrogate pair (12 bytes), plus the quotes. Longer values are refused undecoded.
_MODEL_TEXT_MAX = 12 * _MODEL_ID_MAX + 2
_MODELS_TEXT_MAX = 64 * 1024


@dataclass(frozen=True, slots=True)
class Edit:
    """Where `rewrite` works: the `model` value, and the bytes removing `models`."""

    model: tuple[int, int]
    cut: tuple[int, int] | None


@dataclass(frozen=True, slots=True)
class RequestFields:
    model: str
    fallbacks: tuple[str, ...]
    stream: bool
    has_models_member: bool
    edit: Edit | None = None
    """Known when the body was scanned; found on demand otherwise."""


def needs_worker(body: bytes) -> bool:
    """Whether reading or rewriting `body` is slow enough to belong off the event loop."""
    return len(body) > jsonscan.SMALL


def _is_model_id(value: object) -> bool:
    # Model ids end up in response headers: control characters would make the
    # server refuse the header after the upstream call was already paid for.
    return isinstance(value, str) and 0 < len(value) <= _MODEL_ID_MAX and value.isprintable()


def _invalid(message: str) -> KeywayError:
    return KeywayError("invalid_json", f"request body is not valid JSON: {message}")


def _refuse_duplicates(keys: list[str]) -> None:
    if len(set(keys)) == len(keys):
        return
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            shown = key if len(key) <= 64 and key.isprintable() else ascii(key[:64])
            raise KeywayError(
                "duplicate_key",
                f"the top-level key '{shown}' appears more than once in the request body",
                key if _is_model_id(key) else None,
            )
        seen.add(key)


def _fields(model: object, models: object, stream: bool, edit: Edit | None) -> RequestFields:
    if not isinstance(model, str) or not model:
        raise KeywayError("missing_model", "you must provide a model parameter", "model")
    if not _is_model_id(model):
        raise KeywayError("invalid_model", "`model` is not a valid model id", "model")
    has_models = models is not _ABSENT
    fallbacks = [] if models is _ABSENT else models
    # `type(...) is list`: an object such as `{}` is a list of pairs here.
    if type(fallbacks) is not list or not all(_is_model_id(m) for m in fallbacks):
        raise KeywayError("invalid_models", "`models` must be an array of model ids", "models")
    if len(fallbacks) > MAX_FALLBACKS:
        raise KeywayError(
            "invalid_models", f"`models` may list at most {MAX_FALLBACKS} model ids", "models"
        )
    return RequestFields(model, tuple(fallbacks), stream, has_models, edit)


_ABSENT: Any = object()
_NOT_DECODED: Any = object()


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs: duplicates kept, unlike a dict."""

    __slots__ = ()


def _refuse_constant(name: str) -> None:
    raise JSONError(f"{name} is not JSON")


# parse_int=float: int() refuses more than 4,300 digits, JSON does not.
_decoder = json.JSONDecoder(
    object_pairs_hook=_Pairs, parse_int=float, parse_constant=_refuse_constant
)


def _read_small(body: bytes) -> RequestFields:
    try:
        text = body.decode("utf-8")
        doc = _decoder.decode(text[1:] if text.startswith("\ufeff") else text)
    except UnicodeDecodeError:
        raise _invalid("it is not UTF-8") from None
    except RecursionError:
        raise _invalid("it is nested too deeply") from None
    except ValueError as error:
        raise _invalid(str(error)) from None
    if not isinstance(doc, _Pairs):
        raise KeywayError("invalid_json", "request body must be a JSON object")
    _refuse_duplicates([key for key, _ in doc])
    values = dict(doc)
    return _fields(
        values.get("model"), values.get("models", _ABSENT), values.get("stream") is True, None
    )


def _decoded(body: bytes, member: Member | None, opening: int, limit: int) -> Any:
    """A member's value if it starts with `opening` and is short enough to be valid."""
    if member is None:
        return None
    text = body[member.value_start : member.value_end]
    if text[0] != opening:
        return None  # wrong type: the checks that follow say which field
    if len(text) > limit:
        return _NOT_DECODED
    return json.loads(text)


def _read_large(body: bytes) -> RequestFields:
    try:
        members = jsonscan.members(body)
    except JSONError as error:
        if str(error) == "the body must be a JSON object":
            raise KeywayError("invalid_json", "request body must be a JSON object") from None
        raise _invalid(str(error)) from None
    _refuse_duplicates([m.key for m in members])
    edit = _edit(members)
    by_key = {m.key: m for m in members}
    model = _decoded(body, by_key.get("model"), ord('"'), _MODEL_TEXT_MAX)
    if model is _NOT_DECODED:
        raise KeywayError("invalid_model", "`model` is not a valid model id", "model")
    models = _decoded(body, by_key.get("models"), ord("["), _MODELS_TEXT_MAX)
    if models is _NOT_DECODED:
        models = [None]  # too long to be a short list of model ids
    stream = by_key.get("stream")
    streaming = stream is not None and body[stream.value_start : stream.value_end] == b"true"
    return _fields(model, _ABSENT if "models" not in by_key else models, streaming, edit)


def read_fields(body: bytes) -> RequestFields:
    """The routing fields; KeywayError (400) for anything the proxy will not forward."""
    return _read_large(body) if needs_worker(body) else _read_small(body)


def _edit(members: list[Member]) -> Edit | None:
    model = next((m for m in members if m.key == "model"), None)
    if model is None:
        return None  # refused by the field checks
    cut = None
    i = next((i for i, m in enumerate(members) if m.key == "models"), None)
    if i is not None:
        m = members[i]
        if i > 0:
            # Drop the separator before it, with the whitespace around it.
            cut = (members[i - 1].value_end, m.value_end)
        elif len(members) > 1:
            cut = (m.start, members[1].start)
        else:
            cut = (m.start, m.value_end)
    return Edit((model.value_start, model.value_end), cut)


def rewrite(body: bytes, upstream_model: str, fields: RequestFields) -> bytes:
    """`body` with `model` set to `upstream_model` and `models` removed."""
    if upstream_model == fields.model and not fields.has_models_member:
        return body
    edit = fields.edit or _edit(jsonscan.members(body))
    assert edit is not None, "rewrite() of a body read_fields() refused"
    edits = [(*edit.model, json.dumps(upstream_model).encode())]
    if edit.cut is not None:
        edits.append((*edit.cut, b""))
    edits.sort()
    view = memoryview(body)
    pieces: list[bytes | memoryview] = []
    done = 0
    for start, end, replacement in edits:
        pieces += (view[done:start], replacement)
        done = end
    pieces.append(view[done:])
    return b"".join(pieces)
