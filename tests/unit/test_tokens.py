import re
import string
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.domain.tokens import TokenKind, is_well_formed, kind_of, mint, token_hash

BASE62 = string.digits + string.ascii_letters
BODY_LEN = 32
CHECK_LEN = 6


def _counter() -> Iterator[int]:
    n = 0
    while True:
        yield n
        n += 7


def _fixed(kind: TokenKind) -> str:
    """A deterministic token, so failures are reproducible."""
    numbers = _counter()
    return mint(kind, lambda bound: next(numbers) % bound)


@pytest.mark.parametrize("kind", list(TokenKind))
def test_minted_token_has_prefix_base62_body_and_checksum(kind: TokenKind) -> None:
    token = mint(kind)
    assert token.startswith(kind.value)
    assert len(token) == len(kind.value) + BODY_LEN + CHECK_LEN
    assert re.fullmatch(f"[{BASE62}]+", token[len(kind.value) :])
    assert is_well_formed(token, kind)
    assert kind_of(token) is kind


@pytest.mark.parametrize("kind", list(TokenKind))
def test_token_is_not_well_formed_as_another_kind(kind: TokenKind) -> None:
    token = mint(kind)
    for other in TokenKind:
        if other is not kind:
            assert not is_well_formed(token, other)


def test_prefixes_are_distinct_and_none_is_a_prefix_of_another() -> None:
    prefixes = [k.value for k in TokenKind]
    for a in prefixes:
        for b in prefixes:
            assert a == b or not b.startswith(a)


def test_minting_uses_the_injected_randomness() -> None:
    assert _fixed(TokenKind.ACCESS) == _fixed(TokenKind.ACCESS)
    assert mint(TokenKind.ACCESS, lambda _: 0).startswith("kwak_" + "0" * BODY_LEN)


def test_two_minted_tokens_differ() -> None:
    assert mint(TokenKind.ACCESS) != mint(TokenKind.ACCESS)


def _flip(ch: str) -> str:
    return "b" if ch == "a" else "a"


def _damaged(token: str, kind: TokenKind) -> dict[str, str]:
    p = len(kind.value)
    return {
        "body char flipped": token[:p] + _flip(token[p]) + token[p + 1 :],
        "last body char flipped": token[: p + BODY_LEN - 1]
        + _flip(token[p + BODY_LEN - 1])
        + token[p + BODY_LEN :],
        "checksum char flipped": token[:-1] + _flip(token[-1]),
        "truncated by one": token[:-1],
        "checksum removed": token[:-CHECK_LEN],
        "extra char": token + "a",
        "empty": "",
        "prefix only": kind.value,
        "wrong prefix same length": "xx" + token[2:],
        "prefix upper-cased": token[:p].upper() + token[p:],
        "leading space": " " + token[:-1],
        "trailing newline": token[:-1] + "\n",
        "non-ascii in checksum": token[:-1] + "é",
        "non-ascii in body": token[:p] + "é" + token[p + 1 :],
        "symbol in body": token[:p] + "-" + token[p + 1 :],
    }


@pytest.mark.parametrize("kind", list(TokenKind))
@pytest.mark.parametrize(
    "damage",
    [
        "body char flipped",
        "last body char flipped",
        "checksum char flipped",
        "truncated by one",
        "checksum removed",
        "extra char",
        "empty",
        "prefix only",
        "wrong prefix same length",
        "prefix upper-cased",
        "leading space",
        "trailing newline",
        "non-ascii in checksum",
        "non-ascii in body",
        "symbol in body",
    ],
)
def test_damaged_tokens_are_not_well_formed(kind: TokenKind, damage: str) -> None:
    token = _fixed(kind)
    bad = _damaged(token, kind)[damage]
    assert bad != token
    assert not is_well_formed(bad, kind)
    assert kind_of(bad) is None


def test_every_single_substitution_of_one_token_is_detected() -> None:
    # Exhaustive over one token: every position after the prefix, every other
    # base62 character. CRC32 detects every error burst of at most 32 bits, and
    # one substituted ASCII character is a burst of at most 8 bits.
    kind = TokenKind.ACCESS
    token = _fixed(kind)
    p = len(kind.value)
    for i in range(p, len(token)):
        for ch in BASE62:
            if ch != token[i]:
                assert not is_well_formed(token[:i] + ch + token[i + 1 :], kind), (i, ch)


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(list(TokenKind)),
    body=st.lists(st.integers(0, 61), min_size=BODY_LEN, max_size=BODY_LEN),
    data=st.data(),
)
def test_any_single_substitution_after_the_prefix_is_detected(
    kind: TokenKind, body: list[int], data: st.DataObject
) -> None:
    numbers = iter(body)
    token = mint(kind, lambda bound: next(numbers) % bound)
    assert is_well_formed(token, kind)
    assert kind_of(token) is kind
    i = data.draw(st.integers(len(kind.value), len(token) - 1), label="position")
    ch = data.draw(st.sampled_from(BASE62).filter(lambda c: c != token[i]), label="char")
    assert not is_well_formed(token[:i] + ch + token[i + 1 :], kind)


@settings(max_examples=100, deadline=None)
@given(kind=st.sampled_from(list(TokenKind)), data=st.data())
def test_any_adjacent_transposition_in_the_body_is_detected(
    kind: TokenKind, data: st.DataObject
) -> None:
    token = mint(kind)
    p = len(kind.value)
    i = data.draw(st.integers(p, p + BODY_LEN - 2), label="position")
    swapped = token[:i] + token[i + 1] + token[i] + token[i + 2 :]
    assert swapped == token or not is_well_formed(swapped, kind)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_is_not_a_token_and_never_raises(text: str) -> None:
    # Forging a CRC32 by chance is a 1 in 2**32 event; raising is never acceptable.
    assert kind_of(text) is None


def test_token_hash_is_deterministic_sha256_hex() -> None:
    token = _fixed(TokenKind.ACCESS)
    digest = token_hash(token)
    assert digest == token_hash(token)
    assert re.fullmatch("[0-9a-f]{64}", digest)
    assert token not in digest
    assert token_hash(token[:-1] + _flip(token[-1])) != digest
    # Known answer: SHA-256 of the empty string.
    assert token_hash("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
