"""Validates a JSON body and reports where its top-level members are. Pure.

The proxy must know a body is JSON and where its top-level members are, but
nothing else about it. Two implementations give the same answers (a property
test holds them to it):

- up to `SMALL` bytes, the standard library's C scanner walks the top level
  and validates each member's value, keeping none of it. Fast, but it builds
  each nested value while checking it: several bytes of memory per byte on
  hostile input, which is fine only because the body is small.
- above that, a scanner that decodes nothing below the top level: linear time
  and constant extra memory whatever the body holds. Every regex uses
  possessive repeats (backtracking repeats of a group keep state per
  repetition: ~100 bytes per byte of a long string), and every match runs in
  a window of at most `WINDOW` bytes, so that no single C call holds the GIL
  for long while a worker thread scans a large body; longer scalars are
  matched piecewise. It is slower per byte, which is why callers run it off
  the event loop.

Accepted: RFC 8259 JSON in UTF-8 (a leading byte-order mark aside) whose
root is an object, with top-level keys of at most `MAX_KEY_BYTES` bytes.
`NaN` and `Infinity` are refused. Nesting is limited to `MAX_DEPTH` levels
by the scanner, and by the recursion limit (about 990 levels) below `SMALL`.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

SMALL = 256 * 1024
WINDOW = 128 * 1024
MAX_DEPTH = 512
MAX_KEY_BYTES = 64 * 1024
BOM = codecs.BOM_UTF8

_WS_CHARS = b" \t\n\r"
_WS = rb"[ \t\n\r]*+"
_CHARS = rb'[^"\\\x00-\x1f]*+'
_ESCAPE = rb'\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})'
_STRING_BODY = _CHARS + rb"(?:" + _ESCAPE + _CHARS + rb")*+"
_STRING = rb'"' + _STRING_BODY + rb'"'
_NUMBER = rb"-?+(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?+(?:[eE][+-]?+[0-9]++)?+"
_BARE = rb"(?:" + _STRING + rb"|" + _NUMBER + rb"|true|false|null)"
_KEY = _STRING + _WS + rb":" + _WS


def _containers_of(value: bytes) -> bytes:
    """An array, or an object, whose values all match `value`."""
    array = rb"\[" + _WS + rb"(?:" + value + _WS + rb"(?:," + _WS + value + _WS + rb")*+)?+\]"
    members = _KEY + value + _WS + rb"(?:," + _WS + _KEY + value + _WS + rb")*+"
    return array + rb"|\{" + _WS + rb"(?:" + members + rb")?+\}"


# Containers nested a few levels deep (two, and empty ones a third) are matched like
# scalars: most arrays and objects in real bodies are, and a body of `[],[],…` or
# `[{"a":[]}],…` is then a few C calls, not millions of Python steps.
_EMPTY = rb"\[" + _WS + rb"\]|\{" + _WS + rb"\}"
_SHALLOW = _containers_of(rb"(?:" + _BARE + rb"|" + _EMPTY + rb")")
_NESTED = _containers_of(rb"(?:" + _BARE + rb"|" + _SHALLOW + rb")")
_FLAT_LEVELS = 3  # levels a matched element may add: `[[[]]]`
# A value must be followed by a delimiter *inside* the window: a number cut by the
# window's end would otherwise look complete.
_END = rb"(?=[ \t\n\r,\]}])"
_SCALAR = _BARE + _END
_ELEMENT = rb"(?:" + _BARE + rb"|" + _NESTED + rb")" + _END

_ws = re.compile(_WS).match
_string_body = re.compile(_STRING_BODY).match
_number = re.compile(_NUMBER).match
_literal = re.compile(rb"true|false|null").match
_key = re.compile(_KEY).match
_element = re.compile(_ELEMENT).match


def _runs(value: bytes) -> tuple[Callable[..., re.Match[bytes] | None], ...]:
    """Matchers of a run of array elements and of object members whose values are `value`."""
    array = re.compile(value + _WS + rb"(?:," + _WS + value + _WS + rb")*+").match
    members = re.compile(value + _WS + rb"(?:," + _WS + _KEY + value + _WS + rb")*+").match
    return array, members


# Runs of elements or members, one C call for many tokens: with flat containers among
# them, and (at the deepest level allowed) without.
_RUNS = _runs(_ELEMENT)
_SCALAR_RUNS = _runs(_SCALAR)

_QUOTE, _BACKSLASH, _COMMA, _COLON = 0x22, 0x5C, 0x2C, 0x3A
_OPEN_OBJECT, _CLOSE_OBJECT, _OPEN_ARRAY, _CLOSE_ARRAY = 0x7B, 0x7D, 0x5B, 0x5D


class JSONError(ValueError):
    """The body is not JSON this scanner accepts; the message says where."""


@dataclass(frozen=True, slots=True)
class Member:
    key: str
    start: int
    """Offset of the key's opening quote."""
    value_start: int
    value_end: int
    """Offset just after the value (before whitespace, `,` or `}`)."""


def _error(what: str, pos: int) -> JSONError:
    return JSONError(f"{what} at byte {pos}")


def _check_utf8(body: bytes) -> None:
    if len(body) <= WINDOW:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _error("invalid UTF-8", error.start) from None
        return
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(body)
    for start in range(0, len(body), WINDOW):
        try:
            decoder.decode(view[start : start + WINDOW], final=start + WINDOW >= len(body))
        except UnicodeDecodeError:
            raise _error("invalid UTF-8", start) from None


def _skip_ws(body: bytes, pos: int) -> int:
    while pos < len(body) and body[pos] in _WS_CHARS:
        pos = _ws(body, pos, pos + WINDOW).end()  # type: ignore[union-attr]
    return pos


def _long_string(body: bytes, pos: int) -> int:
    """End of the string at `pos` (its opening quote), matched window by window."""
    n = len(body)
    p = pos + 1
    while True:
        limit = min(n, p + WINDOW)
        q = _string_body(body, p, limit).end()  # type: ignore[union-attr]
        if q < n and body[q] == _QUOTE:
            return q + 1
        # Stopped at the window's edge, or before an escape the edge cut: go on from there.
        if q > p and q < n and (q == limit or body[q] == _BACKSLASH):
            p = q
            continue
        raise _error("unterminated or invalid string", q)


def _long_scalar(body: bytes, pos: int) -> int:
    """End of a scalar too long for one window (a long string or number)."""
    if pos < len(body) and body[pos] == _QUOTE:
        return _long_string(body, pos)
    match = _number(body, pos) or _literal(body, pos)
    if match is None or match.end() == pos:
        raise _error("expected a value", pos)
    return match.end()


def _object_key(body: bytes, pos: int) -> int:
    """Past `"key":` and the whitespace after it."""
    match = _key(body, pos, pos + WINDOW)
    if match is not None:
        return _skip_ws(body, match.end())  # the window may have cut the whitespace
    if pos >= len(body) or body[pos] != _QUOTE:
        raise _error("expected a string key", pos)
    pos = _skip_ws(body, _long_string(body, pos))
    if pos >= len(body) or body[pos] != _COLON:
        raise _error("expected ':'", pos)
    return _skip_ws(body, pos + 1)


def _container(body: bytes, pos: int, depth: int) -> int:
    """End of the array or object opening at `pos`, validated; `depth` is its parent's."""
    n = len(body)
    stack = bytearray()
    while True:
        # A value starts at `pos`; inside a container, usually a run of them.
        match = None
        if stack:
            room = MAX_DEPTH - depth - len(stack)
            runs = _RUNS if room >= _FLAT_LEVELS else _SCALAR_RUNS
            match = runs[0 if stack[-1] == _OPEN_ARRAY else 1](body, pos, pos + WINDOW)
        c = body[pos] if pos < n else -1
        if match is not None:
            pos = match.end()
        elif c in (_OPEN_ARRAY, _OPEN_OBJECT):
            if depth + len(stack) >= MAX_DEPTH:
                raise _error(f"nested deeper than {MAX_DEPTH} levels", pos)
            pos = _skip_ws(body, pos + 1)
            close = _CLOSE_ARRAY if c == _OPEN_ARRAY else _CLOSE_OBJECT
            if pos < n and body[pos] == close:
                pos += 1  # empty: a value like any scalar
            else:
                stack.append(c)
                if c == _OPEN_OBJECT:
                    pos = _object_key(body, pos)
                continue
        else:
            pos = _skip_ws(body, _long_scalar(body, pos))
        # A value ended just before `pos` (whitespace after it may follow).
        while True:
            if not stack:
                return pos
            pos = _skip_ws(body, pos)
            c = body[pos] if pos < n else -1
            top = stack[-1]
            if c == _COMMA:
                pos = _skip_ws(body, pos + 1)
                if top == _OPEN_OBJECT:
                    pos = _object_key(body, pos)
                break
            if c != (_CLOSE_ARRAY if top == _OPEN_ARRAY else _CLOSE_OBJECT):
                raise _error("expected ',' or a closing bracket", pos)
            del stack[-1]
            pos += 1


def _value(body: bytes, pos: int) -> int:
    """End of the (top-level member's) value at `pos`."""
    match = _element(body, pos, pos + WINDOW)
    if match is not None:
        return match.end()
    c = body[pos] if pos < len(body) else -1
    if c in (_OPEN_ARRAY, _OPEN_OBJECT):
        return _container(body, pos, 1)
    return _long_scalar(body, pos)


def _decode_string(token: bytes) -> str:
    """A validated JSON string token (quotes included) as text."""
    if _BACKSLASH not in token:
        return token[1:-1].decode("utf-8")
    decoded: str = json.loads(token)
    return decoded


def members(body: bytes) -> list[Member]:
    """The top-level members of a JSON object body, in order; raises JSONError."""
    return _parsed(body) if len(body) <= SMALL else _scanned(body)


# -- up to SMALL bytes: the standard library's C scanner ------------------------------


def _discard(_: object) -> None:
    return None


def _refuse(name: str) -> None:
    raise JSONError(f"{name} is not JSON")


# Validates one value and keeps as little of it as it can: objects and numbers become
# None (which also avoids int()'s 4300-digit limit, which JSON does not have).
# (Both callables exist at runtime; the type stubs do not declare them.)
_skip_value: Callable[[str, int], tuple[object, int]] = json.JSONDecoder(
    object_pairs_hook=_discard, parse_int=_discard, parse_float=_discard, parse_constant=_refuse
).scan_once  # type: ignore[attr-defined]
_scan_string: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
_text_ws = re.compile(r"[ \t\n\r]*").match


def _byte_offsets(body: bytes, text: str, positions: list[int]) -> list[int]:
    """Byte offsets in `body` of ascending character offsets in `text`, its decoding."""
    if body.isascii():
        return positions
    out: list[int] = []
    done = byte = 0
    for p in positions:
        byte += len(text[done:p].encode("utf-8", "surrogatepass"))
        done = p
        out.append(byte)
    return out


def _skip_text_ws(text: str, pos: int) -> int:
    return _text_ws(text, pos).end()  # type: ignore[union-attr]


def _parsed(body: bytes) -> list[Member]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _error("invalid UTF-8", error.start) from None

    def at(char: int) -> int:
        return _byte_offsets(body, text, [char])[0]

    pos = _skip_text_ws(text, 1 if text.startswith("\ufeff") else 0)
    if text[pos : pos + 1] != "{":
        raise JSONError("the body must be a JSON object")
    keys: list[str] = []
    positions: list[int] = []  # key start, key end, value start, value end per member
    try:
        pos = _skip_text_ws(text, pos + 1)
        if text[pos : pos + 1] == "}":
            pos += 1
        else:
            while True:
                if text[pos : pos + 1] != '"':
                    raise _error("expected a string key", at(pos))
                start = pos
                key, pos = _scan_string(text, pos + 1, True)
                key_end = pos
                pos = _skip_text_ws(text, pos)
                if text[pos : pos + 1] != ":":
                    raise _error("expected ':'", at(pos))
                value_start = _skip_text_ws(text, pos + 1)
                _, pos = _skip_value(text, value_start)
                keys.append(key)
                positions += (start, key_end, value_start, pos)
                pos = _skip_text_ws(text, pos)
                c = text[pos : pos + 1]
                if c == ",":
                    pos = _skip_text_ws(text, pos + 1)
                    continue
                if c != "}":
                    raise _error("expected ',' or '}'", at(pos))
                pos += 1
                break
        if _skip_text_ws(text, pos) != len(text):
            raise _error("unexpected data after the object", at(pos))
    except StopIteration as stop:
        raise _error("expected a value", at(stop.value)) from None
    except RecursionError:
        raise JSONError("nested too deeply") from None
    except json.JSONDecodeError as error:  # from scanstring: a malformed string
        raise _error("unterminated or invalid string", at(error.pos)) from None
    offsets = _byte_offsets(body, text, positions)
    found = []
    for i, key in enumerate(keys):
        start, key_end, value_start, value_end = offsets[4 * i : 4 * i + 4]
        if key_end - start - 2 > MAX_KEY_BYTES:
            raise _error(f"a top-level key is longer than {MAX_KEY_BYTES} bytes", start)
        found.append(Member(key, start, value_start, value_end))
    return found


# -- above SMALL bytes: the scanner -----------------------------------------------------


def _scanned(body: bytes) -> list[Member]:
    _check_utf8(body)
    n = len(body)
    pos = _skip_ws(body, len(BOM) if body.startswith(BOM) else 0)
    if pos >= n or body[pos] != _OPEN_OBJECT:
        raise JSONError("the body must be a JSON object")
    pos = _skip_ws(body, pos + 1)
    found: list[Member] = []
    if pos < n and body[pos] == _CLOSE_OBJECT:
        pos += 1
    else:
        while True:
            start = pos
            if pos >= n or body[pos] != _QUOTE:
                raise _error("expected a string key", pos)
            key_end = _long_string(body, pos)
            if key_end - pos - 2 > MAX_KEY_BYTES:
                raise _error(f"a top-level key is longer than {MAX_KEY_BYTES} bytes", pos)
            key = _decode_string(body[pos:key_end])
            pos = _skip_ws(body, key_end)
            if pos >= n or body[pos] != _COLON:
                raise _error("expected ':'", pos)
            value_start = _skip_ws(body, pos + 1)
            value_end = _value(body, value_start)
            found.append(Member(key, start, value_start, value_end))
            pos = _skip_ws(body, value_end)
            c = body[pos] if pos < n else -1
            if c == _COMMA:
                pos = _skip_ws(body, pos + 1)
                continue
            if c != _CLOSE_OBJECT:
                raise _error("expected ',' or '}'", pos)
            pos += 1
            break
    if _skip_ws(body, pos) != n:
        raise _error("unexpected data after the object", pos)
    return found
