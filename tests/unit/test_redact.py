import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.domain.redact import redact


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("sk-proj-abcdefghijklmnopqrstuvwxyz", "sk-proj-ab***wxyz"),
        ("sk-ant-api03-0123456789-ABCD", "sk-ant-api***ABCD"),
        ("", "***"),
        ("a", "***"),
        ("abcdefg", "***"),  # 7: fully masked
        ("abcdefgh", "***efgh"),  # 8: last 4
        ("abcdefghijklmnopqrs", "***pqrs"),  # 19: last 4
        ("abcdefghijklmnopqrst", "abcdefghij***qrst"),  # 20: first 10 + last 4
        ("abcdefghijklmnopqrstu", "abcdefghij***rstu"),  # 21
    ],
)
def test_examples_and_length_boundaries(value: str, shown: str) -> None:
    assert redact(value) == shown


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_output_reveals_at_most_14_characters_and_always_hides_some(value: str) -> None:
    out = redact(value)
    revealed = len(out) - 3
    assert "***" in out
    assert revealed <= 14
    if len(value) < 8:
        assert out == "***"
    else:
        # At least 4 characters (6 from 20 on) stay hidden.
        assert revealed <= len(value) - 4
        assert out.endswith(value[-4:])


# Distinct characters, so "this character appears in the output" is meaningful.
_distinct = st.lists(
    st.sampled_from(string.ascii_letters + string.digits), unique=True, max_size=62
).map("".join)


@settings(max_examples=300, deadline=None)
@given(_distinct)
def test_output_never_contains_the_middle(value: str) -> None:
    out = redact(value)
    shown = set(out) - {"*"}
    head = value[:10] if len(value) >= 20 else ""
    tail = value[-4:] if len(value) >= 8 else ""
    middle = value[len(head) : len(value) - len(tail)]
    assert shown == set(head) | set(tail)
    assert not shown & set(middle)
    assert len(middle) >= min(len(value), 4)
