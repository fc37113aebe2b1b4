"""The request body: routing fields read, and only top-level `model`/`models` edited.

Every test runs twice: with the standard library's parser (bodies up to `jsonscan.SMALL`)
and with the scanner used for larger bodies, forced here by setting `SMALL` to 0 (and its
window to a few bytes, so that tokens straddle windows).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_plane.http import jsonscan
from data_plane.http.body import MAX_FALLBACKS, RequestFields, read_fields, rewrite
from data_plane.routing.errors import KeywayError


@pytest.fixture(autouse=True, params=["parser", "scanner"])
def path(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "scanner":
        saved = jsonscan.SMALL, jsonscan.WINDOW
        jsonscan.SMALL, jsonscan.WINDOW = 0, 16
        try:
            yield request.param
        finally:
            jsonscan.SMALL, jsonscan.WINDOW = saved
    else:
        yield request.param


def same(fields: RequestFields) -> RequestFields:
    """`fields` without the offsets only the scanner records."""
    return replace(fields, edit=None)


# --- read_fields ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (b"", "invalid_json", None),
        (b"not json", "invalid_json", None),
        (b'{"model": "gpt-4o",}', "invalid_json", None),
        (b"\xff\xfe", "invalid_json", None),
        (b'{"model": "\xff"}', "invalid_json", None),
        # UTF-8 encoded surrogate: json.loads(bytes) would accept it ("surrogatepass").
        (b'{"model": "\xed\xa0\x80"}', "invalid_json", None),
        # UTF-16/32 bodies: the byte-level rewrite cannot edit them, so they are refused.
        ('{"model": "gpt-4o"}'.encode("utf-16"), "invalid_json", None),
        ('{"model": "gpt-4o"}'.encode("utf-16-le"), "invalid_json", None),
        ('{"model": "gpt-4o"}'.encode("utf-32"), "invalid_json", None),
        (b"[]", "invalid_json", None),
        (b'["gpt-4o"]', "invalid_json", None),
        (b'"gpt-4o"', "invalid_json", None),
        (b"42", "invalid_json", None),
        (b"null", "invalid_json", None),
        (b"{}", "missing_model", "model"),
        (b'{"messages": []}', "missing_model", "model"),
        (b'{"model": ""}', "missing_model", "model"),
        (b'{"model": null}', "missing_model", "model"),
        (b'{"model": 4}', "missing_model", "model"),
        (b'{"model": true}', "missing_model", "model"),
        (b'{"model": ["gpt-4o"]}', "missing_model", "model"),
        (b'{"model": {"id": "gpt-4o"}}', "missing_model", "model"),
        (b'{"models": ["gpt-4o"]}', "missing_model", "model"),
        (b'{"model": "gpt-4o", "models": "gpt-4o-mini"}', "invalid_models", "models"),
        (b'{"model": "gpt-4o", "models": null}', "invalid_models", "models"),
        (b'{"model": "gpt-4o", "models": {"a": "b"}}', "invalid_models", "models"),
        (b'{"model": "gpt-4o", "models": [1]}', "invalid_models", "models"),
        (b'{"model": "gpt-4o", "models": [""]}', "invalid_models", "models"),
        (b'{"model": "gpt-4o", "models": ["a", null]}', "invalid_models", "models"),
        (b'{"model": "gpt-4o", "models": [["a"]]}', "invalid_models", "models"),
        (b'{"model": "gpt-4o", "models": {}}', "invalid_models", "models"),
        (
            b'{"model": "gpt-4o", "models": [' + b'"m",' * MAX_FALLBACKS + b'"m"]}',
            "invalid_models",
            "models",
        ),
        (b'{"model": {}}', "missing_model", "model"),
        (b'{"model": "gpt-4o", "temperature": NaN}', "invalid_json", None),
        (b'{"model": "gpt-4o", "temperature": -Infinity}', "invalid_json", None),
        (b'{"model": "gpt-4o"} {}', "invalid_json", None),
        (b'{"model": "gpt-4o", "n": 01}', "invalid_json", None),
        (b'{"model": "gpt-4o", "x": "\x01"}', "invalid_json", None),
        # The same top-level key twice: a provider may honour the other copy.
        (b'{"model":"a","model":"b"}', "duplicate_key", "model"),
        (b'{"mod\\u0065l":"a","model":"b"}', "duplicate_key", "model"),
        (b'{"model":"a","models":[],"models":["b"]}', "duplicate_key", "models"),
        (b'{"model":"a","stream":false,"stream":true}', "duplicate_key", "stream"),
        (b'{"model":"a","messages":[],"messages":[]}', "duplicate_key", "messages"),
        (b'{"model":"a","\\n":1,"\\n":2}', "duplicate_key", None),
    ],
)
def test_read_fields_rejects(body: bytes, code: str, param: str | None) -> None:
    with pytest.raises(KeywayError) as caught:
        read_fields(body)
    assert caught.value.code == code
    assert caught.value.param == param
    assert caught.value.status == 400


def test_nested_duplicates_are_the_providers_business() -> None:
    body = b'{"model":"a","metadata":{"k":1,"k":2},"messages":[{"role":"user","role":"x"}]}'
    assert same(read_fields(body)) == RequestFields("a", (), False, False)


def test_a_duplicate_key_is_named_in_the_message() -> None:
    with pytest.raises(KeywayError) as caught:
        read_fields(b'{"model":"a","temperature":1,"temperature":2}')
    assert "temperature" in caught.value.message


def test_models_may_list_up_to_the_cap() -> None:
    ids = [f"m{i}" for i in range(MAX_FALLBACKS)]
    fields = read_fields(json.dumps({"model": "a", "models": ids}).encode())
    assert fields.fallbacks == tuple(ids)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"model": "gpt-4o"}', RequestFields("gpt-4o", (), False, False)),
        (b'{"model":"gpt-4o","stream":true}', RequestFields("gpt-4o", (), True, False)),
        (b'{"model":"gpt-4o","stream":false}', RequestFields("gpt-4o", (), False, False)),
        (b'{"model":"gpt-4o","stream":"true"}', RequestFields("gpt-4o", (), False, False)),
        (b'{"model":"gpt-4o","stream":1}', RequestFields("gpt-4o", (), False, False)),
        (b'{"model":"gpt-4o","stream":null}', RequestFields("gpt-4o", (), False, False)),
        (b'{"model":"gpt-4o","models":[]}', RequestFields("gpt-4o", (), False, True)),
        (
            b'{"models":["anthropic:claude-sonnet-4-5","gpt-4o-mini"],"model":"gpt-4o"}',
            RequestFields("gpt-4o", ("anthropic:claude-sonnet-4-5", "gpt-4o-mini"), False, True),
        ),
        # Nested members are not routing fields.
        (
            b'{"model":"a","metadata":{"models":"x","stream":true}}',
            RequestFields("a", (), False, False),
        ),
        # Escaped keys are the same keys.
        (b'{"mod\\u0065l":"a","strea\\u006d":true}', RequestFields("a", (), True, False)),
        # Numbers longer than int() takes are still JSON.
        (b'{"model":"a","seed":' + b"9" * 5000 + b"}", RequestFields("a", (), False, False)),
        # A UTF-8 byte-order mark is tolerated.
        (b'\xef\xbb\xbf{"model":"a"}', RequestFields("a", (), False, False)),
        (
            b' \n\t{"model":"\\u00e9t\xc3\xa9"} \r\n',
            RequestFields("\u00e9t\u00e9", (), False, False),
        ),
    ],
)
def test_read_fields(body: bytes, expected: RequestFields) -> None:
    assert same(read_fields(body)) == expected


# --- rewrite: worked examples --------------------------------------------------------------


def _rewrite(body: bytes, upstream: str) -> bytes:
    return rewrite(body, upstream, read_fields(body))


@pytest.mark.parametrize(
    ("body", "upstream", "expected"),
    [
        (b'{"model":"a","x":1}', "b", b'{"model":"b","x":1}'),
        (b'{ "model" : "a" , "x" : 1 }', "b", b'{ "model" : "b" , "x" : 1 }'),
        (b'{\n  "x": 1,\n  "model": "a"\n}', "b", b'{\n  "x": 1,\n  "model": "b"\n}'),
        (b'{"model":"a"}', 'q"uo\\te', b'{"model":"q\\"uo\\\\te"}'),
        (b'{"model":"a"}', "\u00e9", b'{"model":"\\u00e9"}'),
        # `models` first, in the middle, last; whitespace of the kept members stays.
        (b'{"models":["c"],"model":"a"}', "a", b'{"model":"a"}'),
        (b'{ "models" : [ "c" ] ,\n "model":"a" }', "a", b'{ "model":"a" }'),
        (b'{"model":"a","models":["c"],"x":1}', "b", b'{"model":"b","x":1}'),
        (b'{"model":"a" , "models":["c"] }', "b", b'{"model":"b" }'),
        (b'{"x":[1,{"y":2}],"model":"a",\n"models":[]\n}', "a", b'{"x":[1,{"y":2}],"model":"a"\n}'),
        # Only top-level members: nested `model`/`models` and look-alike strings stay.
        (
            b'{"messages":[{"role":"user","model":"a","models":["c"]}],'
            b'"metadata":{"model":"a"},"model":"a","models":["c"]}',
            "b",
            b'{"messages":[{"role":"user","model":"a","models":["c"]}],'
            b'"metadata":{"model":"a"},"model":"b"}',
        ),
        (
            b'{"prompt":"\\"model\\": \\"a\\", \\"models\\": []}","model":"a"}',
            "b",
            b'{"prompt":"\\"model\\": \\"a\\", \\"models\\": []}","model":"b"}',
        ),
        (
            b'{"k\\"":"{\\"model\\":1}","model":"a","z":"\\\\"}',
            "b",
            b'{"k\\"":"{\\"model\\":1}","model":"b","z":"\\\\"}',
        ),
        (
            b'{"modelx":"a","xmodel":"a","model":"a"}',
            "b",
            b'{"modelx":"a","xmodel":"a","model":"b"}',
        ),
        # Escaped spellings of the keys are the keys.
        (b'{"mod\\u0065l":"a","model\\u0073":[]}', "b", b'{"mod\\u0065l":"b"}'),
        # A key that is a lone surrogate escape is valid JSON and must not crash the scan.
        (b'{"\\ud800":1,"model":"x","models":[]}', "b", b'{"\\ud800":1,"model":"b"}'),
        (b'\xef\xbb\xbf{"model":"x","models":[]}', "b", b'\xef\xbb\xbf{"model":"b"}'),
        # Non-ASCII bytes elsewhere pass through.
        (
            '{"t":"h\u00e9 \U0001f600","model":"x"}'.encode(),
            "b",
            '{"t":"h\u00e9 \U0001f600","model":"b"}'.encode(),
        ),
    ],
)
def test_rewrite_examples(body: bytes, upstream: str, expected: bytes) -> None:
    assert _rewrite(body, upstream) == expected


@pytest.mark.parametrize(
    "body",
    [b'{"model":"gpt-4o"}', b'{ "model" : "gpt-4o", "messages": [{"model": "x"}] }'],
)
def test_rewrite_without_changes_returns_the_same_object(body: bytes) -> None:
    assert _rewrite(body, "gpt-4o") is body


def test_rewrite_with_the_same_model_still_strips_models() -> None:
    assert _rewrite(b'{"model":"gpt-4o","models":["x"]}', "gpt-4o") == b'{"model":"gpt-4o"}'


# --- rewrite: property ---------------------------------------------------------------------

_TRICKY = [
    '"model":',
    '"models": [',
    "\\",
    '"',
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\u00e9",
    "\U0001f600",
]
_TEXT = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=12),
    st.lists(st.sampled_from(_TRICKY), max_size=4).map("".join),
)
_NESTED_KEY = st.one_of(st.sampled_from(["model", "models", "stream"]), _TEXT)
_JSON: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(_NESTED_KEY, children, max_size=3)
    ),
    max_leaves=8,
)
_WS = st.text(alphabet=" \t\r\n", max_size=2).map(str.encode)
# Model ids the proxy accepts (printable, as they are echoed in headers).
_MODEL_ID = _TEXT.filter(lambda t: bool(t) and t.isprintable())
_OTHER_KEY = _TEXT.filter(lambda k: k not in ("model", "models"))


@dataclass(frozen=True)
class _Member:
    key: str
    key_text: bytes
    colon: bytes
    value: Any
    value_text: bytes


def _dumps(draw: st.DrawFn, value: Any) -> bytes:
    ascii_only = draw(st.booleans())
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " :")]))
    indent = draw(st.sampled_from([None, 0, 2, "\t"]))
    return json.dumps(value, ensure_ascii=ascii_only, separators=separators, indent=indent).encode()


@st.composite
def _bodies(draw: st.DrawFn) -> tuple[bytes, str, dict[str, Any], bytes]:
    """(body, upstream model, expected document, expected bytes)."""
    others = draw(st.dictionaries(_OTHER_KEY, _JSON, max_size=4))
    model = draw(_MODEL_ID)
    fallbacks = draw(st.none() | st.lists(_MODEL_ID, max_size=3))
    members = [
        _Member(k, _dumps(draw, k), draw(_WS) + b":" + draw(_WS), v, _dumps(draw, v))
        for k, v in others.items()
    ]
    model_key = draw(st.sampled_from([b'"model"', b'"mod\\u0065l"', b'"\\u006dodel"']))
    colon = draw(_WS) + b":" + draw(_WS)
    members.insert(
        draw(st.integers(0, len(members))),
        _Member("model", model_key, colon, model, _dumps(draw, model)),
    )
    if fallbacks is not None:
        colon = draw(_WS) + b":" + draw(_WS)
        models_key = draw(st.sampled_from([b'"models"', b'"model\\u0073"']))
        members.insert(
            draw(st.integers(0, len(members))),
            _Member("models", models_key, colon, fallbacks, _dumps(draw, fallbacks)),
        )
    opening, closing = b"{" + draw(_WS), draw(_WS) + b"}"
    commas = [draw(_WS) + b"," + draw(_WS) for _ in members[1:]]
    body = opening
    for i, m in enumerate(members):
        body += (commas[i - 1] if i else b"") + m.key_text + m.colon + m.value_text
    body = draw(_WS) + body + closing + draw(_WS)

    upstream = draw(st.one_of(st.just(model), _TEXT.filter(bool)))
    expected_doc = {**others, "model": upstream}
    # The documented edit: the model value replaced; a removed `models` takes the
    # separator before it, or the one after it when no kept member precedes it.
    expected = body[: body.index(b"{")] + opening
    kept = 0
    for i, m in enumerate(members):
        if m.key == "models":
            continue
        if kept:
            expected += commas[i - 1]
        value_text = json.dumps(upstream).encode() if m.key == "model" else m.value_text
        expected += m.key_text + m.colon + value_text
        kept += 1
    expected += body[body.rindex(b"}") - len(closing) + 1 :]
    return body, upstream, expected_doc, expected


@settings(max_examples=300, deadline=None)
@given(_bodies())
def test_rewrite_edits_only_the_top_level_members(
    case: tuple[bytes, str, dict[str, Any], bytes],
) -> None:
    body, upstream, expected_doc, expected = case
    fields = read_fields(body)
    assert fields.model == json.loads(body)["model"]
    out = rewrite(body, upstream, fields)
    assert json.loads(out) == expected_doc
    if upstream == fields.model and not fields.has_models_member:
        assert out is body
    else:
        assert out == expected


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"model": "gpt-4o\\n"}', "invalid_model"),
        (b'{"model": "' + b"m" * 257 + b'"}', "invalid_model"),
        (b'{"model": "gpt-4o", "models": ["x\\u0000y"]}', "invalid_models"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
    ],
)
def test_model_ids_that_could_not_be_echoed_and_deep_nesting_are_refused(
    body: bytes, code: str
) -> None:
    with pytest.raises(KeywayError) as refused:
        read_fields(body)
    assert refused.value.code == code
