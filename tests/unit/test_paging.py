import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.domain import paging
from control_plane.domain.errors import InvalidArgument


def _forge(doc: object) -> str:
    raw = json.dumps(doc).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _fp(filter_key: str) -> str:
    """The fingerprint a genuine token carries, read back from one."""
    token = paging.encode(0, filter_key)
    doc = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert isinstance(doc, dict)
    fp = doc["f"]
    assert isinstance(fp, str)
    return fp


@given(after=st.integers(0, 2**63 - 1), filter_key=st.text(max_size=40))
def test_round_trip(after: int, filter_key: str) -> None:
    token = paging.encode(after, filter_key)
    assert "=" not in token
    assert paging.decode(token, filter_key) == after


def test_empty_token_means_first_page() -> None:
    assert paging.decode("") == 0
    assert paging.decode("", "provider=openai") == 0


def test_token_is_opaque_url_safe() -> None:
    token = paging.encode(123456, "provider=openai")
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert "openai" not in token


def _reject(token: str, filter_key: str = "", field: str = "page_token") -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        paging.decode(token, filter_key, field)
    err = caught.value
    assert [v.field for v in err.violations] == [field]
    assert err.reason == "INVALID_ARGUMENT"
    return err


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("garbage", id="garbage"),
        pytest.param("!!!!", id="not-base64"),
        pytest.param("a", id="one-char"),
        pytest.param("é", id="non-ascii"),
        pytest.param(base64.urlsafe_b64encode(b"\xff\xfe").decode(), id="not-utf8"),
        pytest.param(_forge([1, 2]), id="json-list"),
        pytest.param(_forge("x"), id="json-string"),
        pytest.param(_forge(7), id="json-number"),
        pytest.param(_forge({"a": 5}), id="missing-fingerprint"),
        pytest.param(_forge({"f": _fp("")}), id="missing-after"),
        pytest.param(_forge({"a": -1, "f": _fp("")}), id="negative"),
        pytest.param(_forge({"a": "5", "f": _fp("")}), id="after-string"),
        pytest.param(_forge({"a": 5.0, "f": _fp("")}), id="after-float"),
        pytest.param(_forge({"a": True, "f": _fp("")}), id="after-bool"),
        pytest.param(_forge({"a": None, "f": _fp("")}), id="after-null"),
        pytest.param(_forge({"a": 2**63, "f": _fp("")}), id="after-beyond-int64"),
        pytest.param(base64.urlsafe_b64encode(b"[" * 100_000).decode(), id="deeply-nested"),
    ],
)
def test_malformed_tokens_are_invalid_argument(token: str) -> None:
    err = _reject(token)
    assert "previous response" in err.violations[0].description


def test_tampered_token_is_rejected() -> None:
    token = paging.encode(10)
    doc = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    doc["f"] = "0" * 12
    _reject(_forge(doc))


def test_token_for_another_filter_is_rejected() -> None:
    token = paging.encode(10, "provider=openai")
    err = _reject(token, "provider=anthropic")
    assert "different filter" in err.violations[0].description
    err = _reject(token, "")
    assert "different filter" in err.violations[0].description


def test_field_name_is_configurable() -> None:
    _reject("garbage", field="other_page_token")
