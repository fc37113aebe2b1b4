"""Whether a `host:port` is on this machine: plaintext is only acceptable there. Pure."""

from __future__ import annotations

import ipaddress


def is_loopback(target: str) -> bool:
    """True for `localhost`, `127.x.x.x`, `[::1]` (with or without a port) and `unix:` paths."""
    if target.startswith(("unix:", "unix-abstract:")):
        return True
    host = target.rsplit(":", 1)[0] if target.count(":") == 1 or "]" in target else target
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
