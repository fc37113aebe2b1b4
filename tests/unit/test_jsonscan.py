"""The JSON scanner: the same verdicts as a strict parser, in bounded memory.

`members` has two implementations (the standard library's C scanner up to `SMALL`
bytes, the windowed scanner above); each test runs both, the scanner with windows of a
few bytes so that every kind of token straddles a window's edge.
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_plane.http import jsonscan
from data_plane.http.body import needs_worker, read_fields, rewrite
from data_plane.http.jsonscan import JSONError, Member, members


@pytest.fixture(params=["parser", "scanner-16", "scanner-7", "scanner"])
def path(request: pytest.FixtureRequest) -> Iterator[str]:
    saved = jsonscan.SMALL, jsonscan.WINDOW
    if request.param.startswith("scanner"):
        window = request.param.removeprefix("scanner").removeprefix("-")
        jsonscan.SMALL, jsonscan.WINDOW = 0, int(window) if window else saved[1]
    else:
        jsonscan.SMALL = 1 << 40
    try:
        yield request.param
    finally:
        jsonscan.SMALL, jsonscan.WINDOW = saved


def _refuse(name: str) -> None:
    raise ValueError(name)


def strict(body: bytes) -> dict[str, Any] | None:
    """What a strict parser makes of `body`: the object, or None if it is not one."""
    try:
        text = body.decode("utf-8")
        value = json.loads(text.removeprefix("\ufeff"), parse_constant=_refuse)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def verdict(body: bytes) -> list[Member] | None:
    try:
        return members(body)
    except JSONError:
        return None


def check(body: bytes) -> None:
    expected = strict(body)
    found = verdict(body)
    assert (found is None) == (expected is None), (body, found)
    if found is None or expected is None:
        return
    keys = [m.key for m in found]
    assert list(dict.fromkeys(keys)) == list(expected)
    for m in found:
        assert body[m.start : m.start + 1] == b'"'
        value = json.loads(body[m.value_start : m.value_end])
        if keys.count(m.key) == 1:
            assert value == expected[m.key]


_KEYS = st.sampled_from(["model", "models", "stream", "", "é", "\u2028", 'q"\\', "k" * 20])
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
_VALUES: st.SearchStrategy[Any] = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=4),
    max_leaves=12,
)
_NOISE = st.sampled_from(list(b'{}[],:"\\ 0123456789.eE+-tfnul\x00\x1f\x7f\xc3\xff'))


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    doc = draw(st.dictionaries(_KEYS, _VALUES, max_size=5))
    text = json.dumps(
        doc,
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.sampled_from([None, 0, 2])),
        separators=draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " :")])),
    ).encode()
    data = bytearray(text)
    for _ in range(draw(st.integers(0, 2))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["delete", "insert", "replace"]))
        if action == "delete":
            del data[i]
        elif action == "insert":
            data.insert(i, draw(_NOISE))
        else:
            data[i] = draw(_NOISE)
    return bytes(data)


# The fixture only sets module constants, the same for every example.
@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies())
def test_agrees_with_a_strict_parser(path: str, body: bytes) -> None:
    check(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":"' + b"x" * 100 + b'"}',
        b'{"a":"' + b"\\u00e9" * 30 + b'\\n"}',
        b'{"a":["' + b"\\\\" * 40 + b'"]}',
        b'{"a":' + b"1" * 100 + b".5e-10}",
        b'{"a":[' + b"-" + b"9" * 50 + b",true,false,null]}",
        b'{"a":' + b" " * 100 + b"1" + b"\n" * 50 + b"}",
        b'{"' + b"k" * 100 + b'":{"' + b"j" * 50 + b'":[{},[]]}}',
        b'\xef\xbb\xbf{"a":1}',
        b'{"a":"\\ud800"}',
        b'{"a":"unterminated',
        b'{"a":"bad escape \\q"}',
        b'{"a":"control \x01 char"}',
        b'{"a":"cut escape \\u12"}',
        b'{"a":' + b"9" * 60 + b"x}",
        b'{"a":[1,2,]}',
        b'{"a":{"b":1,}}',
        b'{"a":tru}',
        b'{"a":1}{"b":2}',
        b'{"a":"\xc3"}',
        b'{"a":"\xed\xa0\x80"}',
    ],
)
def test_tokens_across_window_edges(path: str, body: bytes) -> None:
    check(body)


# Around the limit, so that containers the scanner matches whole (up to three levels) are
# counted as exactly as those it walks.
@pytest.mark.parametrize("depth", range(jsonscan.MAX_DEPTH - 4, jsonscan.MAX_DEPTH + 3))
@pytest.mark.parametrize("inner", [b"", b"1", b'{"k":[]}'])
def test_the_scanner_limits_nesting(depth: int, inner: bytes) -> None:
    saved = jsonscan.SMALL
    jsonscan.SMALL = 0
    try:
        extra = 2 if inner.startswith(b"{") else 0  # the object and its array
        arrays = depth - 1 - extra
        body = b'{"a":' + b"[" * arrays + inner + b"]" * arrays + b"}"
        assert (verdict(body) is not None) is (depth <= jsonscan.MAX_DEPTH)
    finally:
        jsonscan.SMALL = saved


def test_very_deep_nesting_is_refused_either_way(path: str) -> None:
    assert verdict(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}") is None


def test_a_huge_top_level_key_is_refused(path: str) -> None:
    key = b"k" * (jsonscan.MAX_KEY_BYTES + 1)
    assert verdict(b'{"' + key + b'":1}') is None
    assert verdict(b'{"' + key[:-1] + b'":1}') is not None


def test_offsets(path: str) -> None:
    body = '\ufeff { "é" : [1, {"x": "y"}] ,"model":"m"\n}'.encode()
    first, second = members(body)
    assert (first.key, second.key) == ("é", "model")
    assert body[first.start : first.value_end] == '"é" : [1, {"x": "y"}]'.encode()
    assert body[first.value_start : first.value_end] == b'[1, {"x": "y"}]'
    assert body[second.start : second.value_end] == b'"model":"m"'


# --- hostile bodies: memory -----------------------------------------------------------------


def _vision(size: int) -> bytes:
    head = b'{"model":"openai:gpt-4o-mini","models":["gpt-4o"],"messages":[{"role":"user",'
    head += b'"content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,'
    tail = b'"}}]}]}'
    return head + b"QUJD" * ((size - len(head) - len(tail)) // 4) + tail


def _nested(size: int) -> bytes:
    head = b'{"model":"openai:gpt-4o-mini","models":["gpt-4o"],"messages":['
    return head + b"[[1]]," * ((size - len(head)) // 6) + b"[]]}"


def _strings(size: int) -> bytes:
    head = b'{"model":"openai:gpt-4o-mini","models":["gpt-4o"],"messages":['
    return head + b'"a",' * ((size - len(head)) // 4) + b'""]}'


@pytest.mark.parametrize("make", [_vision, _nested, _strings], ids=["string", "nested", "many"])
def test_reading_and_rewriting_a_large_body_costs_a_small_multiple_of_it(make: Any) -> None:
    # Allocations, not time. Before: the tokenizer's regex kept ~120 bytes per byte of a long
    # string, and json.loads builds ~20 bytes per byte of `[[1]],`.
    body = make(2 << 20)
    assert needs_worker(body)
    tracemalloc.start()
    try:
        fields = read_fields(body)
        out = rewrite(body, "gpt-4o-mini", fields)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (fields.model, fields.fallbacks) == ("openai:gpt-4o-mini", ("gpt-4o",))
    assert out.startswith(b'{"model":"gpt-4o-mini","messages":[')
    assert len(out) == len(body) - len(b'"openai:gpt-4o-mini","models":["gpt-4o"]') + 13
    assert peak < 2.5 * len(body), f"peak {peak / len(body):.1f}x the body"
