"""Which addresses count as public and which listen addresses are loopback. Pure.

Used by the control plane when it checks a custom provider's base URL and by the proxy
when it connects to one, so both apply exactly the same rule.

`ipaddress`'s `is_global` alone is not enough: several IPv6 forms carry an IPv4 address
inside them, and a translator or tunnel on the path turns them back into IPv4 packets. A
"global" IPv6 address that embeds 10.0.0.1 reaches 10.0.0.1. So an IPv6 address is
public only when it is global *and* every IPv4 address embedded in it is public.
"""

from __future__ import annotations

import ipaddress

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# RFC 8215: reserved for local-use IPv4/IPv6 translation; what it maps to is site-specific.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")
# Prefixes whose last 32 bits are an IPv4 address.
_LOW_32_EMBEDDING = (
    ipaddress.IPv6Network("64:ff9b::/96"),  # RFC 6052 well-known NAT64 prefix
    ipaddress.IPv6Network("::ffff:0:0/96"),  # IPv4-mapped (RFC 4291)
    ipaddress.IPv6Network("::ffff:0:0:0/96"),  # IPv4-translated (RFC 2765, SIIT)
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible, deprecated (RFC 4291)
)
# ISATAP (RFC 5214) interface identifiers: ::0:5efe:a.b.c.d and ::200:5efe:a.b.c.d.
_ISATAP_IIDS = (0x00005EFE, 0x02005EFE)


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address an IPv6 address carries (NAT64, mapped, compatible, translated,
    6to4, Teredo server and client, ISATAP)."""
    value = int(address)
    found: list[ipaddress.IPv4Address] = []
    if any(address in network for network in _LOW_32_EMBEDDING):
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if (value >> 32) & 0xFFFFFFFF in _ISATAP_IIDS:
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    return found


def is_public_address(address: Address) -> bool:
    """True when `address` is globally routable and hides no internal IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # An IPv4-mapped address is that IPv4 address, spelled for an IPv6 socket.
        return address.ipv4_mapped.is_global
    if not address.is_global:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return True
    if address in _LOCAL_NAT64:
        return False
    return all(inner.is_global for inner in embedded_ipv4(address))


def parse_ip(text: str) -> Address | None:
    """An IP literal (brackets and an IPv6 zone id allowed), or None for a host name."""
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def is_loopback(address: str) -> bool:
    """Whether a `host:port` (or bare host) names this machine only.

    Only `localhost` and loopback literals count: a name that happens to resolve to
    127.0.0.1 today is not trusted with plaintext. A gRPC `unix:` target is local too.
    """
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 or "]" in address else address
    host = host.strip("[]")
    if host == "localhost":
        return True
    ip = parse_ip(host)
    return ip is not None and ip.is_loopback
