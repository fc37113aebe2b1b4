"""HOST:PORT as every --listen flag takes it."""

from __future__ import annotations

import pytest

from data_plane.shared.startup import parse_address


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("127.0.0.1:50051", ("127.0.0.1", 50051)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("localhost:8080", ("localhost", 8080)),
        ("[::1]:8080", ("::1", 8080)),
        ("[::]:65535", ("::", 65535)),
    ],
)
def test_accepted(text: str, parsed: tuple[str, int]) -> None:
    assert parse_address(text) == parsed


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("notaport", "expected HOST:PORT"),
        ("127.0.0.1", "expected HOST:PORT"),
        ("127.0.0.1:", "expected HOST:PORT"),
        (":8080", "expected HOST:PORT"),
        ("127.0.0.1:http", "expected HOST:PORT"),
        ("127.0.0.1:65536", "port from 0 to 65535"),
        ("127.0.0.1:-1", "expected HOST:PORT"),
        ("::1:8080", "IPv6 host in brackets"),
        ("[::1:8080", "IPv6 host in brackets"),
    ],
)
def test_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as refused:
        parse_address(text)
    assert repr(text) in str(refused.value)
