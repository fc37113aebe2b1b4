import re

import pytest

from control_plane.domain import ids

PREFIXES = [
    ids.ACCOUNT,
    ids.ADMIN_API_KEY,
    ids.PROVIDER_KEY,
    ids.ACCESS_KEY,
    ids.CONFIGURATION,
    ids.CUSTOM_PROVIDER,
]


def test_prefixes_are_distinct_and_none_is_a_prefix_of_another() -> None:
    assert len(set(PREFIXES)) == len(PREFIXES)
    for a in PREFIXES:
        for b in PREFIXES:
            assert a == b or not b.startswith(a)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_new_id_is_prefix_plus_16_base32_lowercase(prefix: str) -> None:
    value = ids.new_id(prefix)
    assert re.fullmatch(re.escape(prefix) + "[a-z2-7]{16}", value)
    assert ids.looks_like(value, prefix)
    for other in PREFIXES:
        if other != prefix:
            assert not ids.looks_like(value, other)


def test_new_id_uses_ten_random_bytes() -> None:
    asked: list[int] = []

    def token_bytes(n: int) -> bytes:
        asked.append(n)
        return bytes(n)

    assert ids.new_id(ids.PROVIDER_KEY, token_bytes) == "pk_" + "a" * 16
    assert asked == [10]
    assert ids.new_id(ids.PROVIDER_KEY, lambda n: b"\xff" * n) == "pk_" + "7" * 16


def test_ids_differ() -> None:
    assert len({ids.new_id(ids.ACCESS_KEY) for _ in range(100)}) == 100


@pytest.mark.parametrize(
    ("value", "prefix", "expected"),
    [
        ("pk_abcdefghijklmnop", "pk_", True),
        ("pk_234567abcdefghij", "pk_", True),
        ("pk_abcdefghijklmno", "pk_", False),  # 15
        ("pk_abcdefghijklmnopq", "pk_", False),  # 17
        ("pk_ABCDEFGHIJKLMNOP", "pk_", False),
        ("pk_abcdefghijklmno1", "pk_", False),  # 1 is not base32
        ("pk_abcdefghijklmno0", "pk_", False),
        ("pk_abcdefghijklmno8", "pk_", False),
        ("pk_abcdefghijklmno=", "pk_", False),
        ("ak_abcdefghijklmnop", "pk_", False),
        ("akc_abcdefghijklmnop", "ak_", False),
        ("abcdefghijklmnop", "pk_", False),
        ("pk_", "pk_", False),
        ("", "pk_", False),
        ("pk_abcdefghijklmnop\n", "pk_", False),
    ],
)
def test_looks_like(value: str, prefix: str, expected: bool) -> None:
    assert ids.looks_like(value, prefix) is expected
