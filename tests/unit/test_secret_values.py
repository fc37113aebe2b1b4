"""Provider key values: what can go into an upstream auth header, and errors that say why."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.domain.errors import InvalidArgument, Violations
from control_plane.domain.fields import check_secret

KEY = "sk-proj-Rt4Yu8Io2Pa6Sd0Fg3Hj7Kl1Zx5Cv9Bn"


def problems(value: str) -> list[str]:
    v = Violations()
    check_secret(v, "value", value)
    with pytest.raises(InvalidArgument) as info:
        v.raise_if_any()
    return [violation.description for violation in info.value.violations]


@pytest.mark.parametrize(
    ("char", "kind"),
    [
        ("\x01", "control"),
        ("\x7f", "control"),
        ("\t", "whitespace"),
        (" ", "whitespace"),
        ("\u00a0", "whitespace"),
        ("\u200b", "non-ASCII"),
        ("é", "non-ASCII"),
    ],
)
def test_the_first_bad_character_is_named_by_kind_and_position(char: str, kind: str) -> None:
    [description] = problems(KEY[:5] + char + KEY[5:])
    assert f"{kind} character at position 6" in description
    assert KEY[:5] not in description
    assert KEY[5:17] not in description


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1))
def test_printable_ascii_without_spaces_is_accepted(value: str) -> None:
    v = Violations()
    check_secret(v, "value", value)
    assert not v


@given(st.text(min_size=1, max_size=64))
def test_any_value_is_accepted_only_if_a_header_can_carry_it(value: str) -> None:
    v = Violations()
    check_secret(v, "value", value)
    assert (not v) == all("\x21" <= c <= "\x7e" for c in value)
