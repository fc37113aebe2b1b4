"""Public-address-only connections for tenants' own upstreams.

A custom provider's base URL is checked by the control plane, but a host
name can resolve to an internal address later (DNS rebinding, an internal
zone). The check that counts is the one made when the proxy connects.
"""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from data_plane.shared.addresses import is_public_address, parse_ip

PRIVATE_REFUSED = (
    "the operator allows no private upstreams (control plane flag --allow-private-upstreams)"
)


def is_public(address: str) -> bool:
    """For a resolver answer: the same rule the control plane applies to base URLs."""
    ip = parse_ip(address)
    return ip is not None and is_public_address(ip)


def literal_host_refused(host: str) -> bool:
    """True for an IP-literal host that is not public (literals skip the resolver)."""
    ip = parse_ip(host)
    return ip is not None and not is_public_address(ip)


class PublicOnlyResolver(AbstractResolver):
    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = [r for r in await self._inner.resolve(host, port, family) if is_public(r["host"])]
        if not results:
            raise OSError(f"{host} resolves to no public address; {PRIVATE_REFUSED}")
        return results

    async def close(self) -> None:
        await self._inner.close()
