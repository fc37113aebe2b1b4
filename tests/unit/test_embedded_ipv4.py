"""IPv6 forms that carry an IPv4 address, judged by that address on both planes.

One table, two checks: the control plane's base-URL rule (`https://[addr]/v1`) and the
proxy's connect-time guard (resolver answers and literal hosts) must agree on every row.
"""

from __future__ import annotations

import ipaddress

import pytest

from control_plane.domain.upstreams import base_url_problem
from data_plane.shared.addresses import embedded_ipv4, is_loopback
from data_plane.upstream.guard import is_public, literal_host_refused

# (address, public, what it is)
TABLE = [
    ("64:ff9b::a00:1", False, "NAT64 well-known prefix -> 10.0.0.1"),
    ("64:ff9b::10.0.0.1", False, "NAT64, dotted spelling"),
    ("64:ff9b::7f00:1", False, "NAT64 -> 127.0.0.1"),
    ("64:ff9b::a9fe:a9fe", False, "NAT64 -> 169.254.169.254 (cloud metadata)"),
    ("64:ff9b::6440:1", False, "NAT64 -> 100.64.0.1 (carrier-grade NAT)"),
    ("64:ff9b::808:808", True, "NAT64 -> 8.8.8.8 (IPv6-only hosts reach IPv4 this way)"),
    ("64:ff9b:1::a00:1", False, "local-use NAT64 prefix (RFC 8215)"),
    ("64:ff9b:1:ffff::808:808", False, "local-use NAT64, whatever it embeds"),
    ("::ffff:10.0.0.1", False, "IPv4-mapped private"),
    ("::ffff:127.0.0.1", False, "IPv4-mapped loopback"),
    ("::ffff:8.8.8.8", True, "IPv4-mapped public"),
    ("::10.0.0.1", False, "IPv4-compatible (deprecated) private"),
    ("::a9fe:a9fe", False, "IPv4-compatible metadata address"),
    ("::ffff:0:10.0.0.1", False, "IPv4-translated (SIIT) private"),
    ("::ffff:0:a9fe:a9fe", False, "IPv4-translated metadata address"),
    ("2002:a00:1::", False, "6to4 of 10.0.0.1"),
    ("2002:7f00:1::1", False, "6to4 of 127.0.0.1"),
    ("2002:a9fe:a9fe::1", False, "6to4 of 169.254.169.254"),
    ("2002:808:808::1", True, "6to4 of 8.8.8.8"),
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False, "Teredo, client 10.0.0.1"),
    ("2001:0:a00:1::1", False, "Teredo, server 10.0.0.1"),
    ("2600::5efe:a00:1", False, "ISATAP interface id embedding 10.0.0.1"),
    ("2600::200:5efe:a9fe:a9fe", False, "ISATAP (global bit) embedding metadata"),
    ("2600::5efe:808:808", True, "ISATAP embedding a public address"),
    ("2606:4700:4700::1111", True, "ordinary global IPv6"),
    ("::1", False, "loopback"),
    ("fe80::1", False, "link-local"),
    ("fd00::1", False, "unique local"),
]


@pytest.mark.parametrize(("address", "public", "what"), TABLE, ids=[row[2] for row in TABLE])
def test_the_control_plane_judges_embedded_ipv4(address: str, public: bool, what: str) -> None:
    problem = base_url_problem(f"https://[{address}]/v1", allow_private=False)
    if public:
        assert problem is None
    else:
        assert problem is not None
        assert "private or loopback" in problem
        # The operator's switch still lets them through, as for any private address.
        assert base_url_problem(f"http://[{address}]/v1", allow_private=True) is None


@pytest.mark.parametrize(("address", "public", "what"), TABLE, ids=[row[2] for row in TABLE])
def test_the_proxy_guard_judges_embedded_ipv4(address: str, public: bool, what: str) -> None:
    assert is_public(address) is public
    assert literal_host_refused(f"[{address}]") is (not public)


def test_embedded_addresses_are_extracted() -> None:
    def inner(text: str) -> list[str]:
        return [str(a) for a in embedded_ipv4(ipaddress.IPv6Address(text))]

    assert inner("64:ff9b::a00:1") == ["10.0.0.1"]
    assert inner("2002:a00:1::") == ["10.0.0.1"]
    assert inner("2001:0:4136:e378:8000:63bf:f5ff:fffe") == ["65.54.227.120", "10.0.0.1"]
    assert inner("2606:4700:4700::1111") == []


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:50051", True),
        ("127.8.9.10:1", True),
        ("localhost:50051", True),
        ("[::1]:50051", True),
        ("::1", True),
        ("0.0.0.0:50051", False),
        ("10.0.0.5:50051", False),
        ("cp.internal:50051", False),
        ("[::]:50051", False),
        ("localhost.evil.example:50051", False),
    ],
)
def test_is_loopback(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback
