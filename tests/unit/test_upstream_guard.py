"""Which addresses a tenant's custom provider may reach."""

from __future__ import annotations

import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from data_plane.upstream.guard import PublicOnlyResolver, is_public, literal_host_refused


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("not-an-address", False),
    ],
)
def test_is_public(address: str, public: bool) -> None:
    assert is_public(address) is public


@pytest.mark.parametrize(
    ("host", "refused"),
    [
        ("127.0.0.1", True),
        ("[::1]", True),
        ("10.0.0.7", True),
        ("8.8.4.4", False),
        ("api.example", False),
    ],
)
def test_literal_hosts(host: str, refused: bool) -> None:
    assert literal_host_refused(host) is refused


class _Answers(AbstractResolver):
    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        return None


async def test_private_answers_are_dropped_and_none_left_is_an_error() -> None:
    mixed = PublicOnlyResolver(_Answers("10.0.0.5", "93.184.216.34"))
    assert [r["host"] for r in await mixed.resolve("llm.example", 443)] == ["93.184.216.34"]
    rebound = PublicOnlyResolver(_Answers("127.0.0.1", "169.254.169.254"))
    with pytest.raises(OSError, match="no public address"):
        await rebound.resolve("llm.example", 443)
