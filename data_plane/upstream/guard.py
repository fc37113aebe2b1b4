"""Public-address-only connections for tenants' own upstreams.

A custom provider's base URL is checked by the control plane, but a host
name can resolve to an internal address later (DNS rebinding, an internal
zone). The check that counts is the one made when the proxy connects.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

PRIVATE_REFUSED = (
    "the operator allows no private upstreams (control plane flag --allow-private-upstreams)"
)


def is_public(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_global
    except ValueError:
        return False


def literal_host_refused(host: str) -> bool:
    """True for an IP-literal host that is not public (literals skip the resolver)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return not is_public(host.strip("[]"))


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
