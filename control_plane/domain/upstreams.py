"""Rules for upstream base URLs and custom provider definitions."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from keyway.v1 import providers_pb2 as pb

from data_plane.shared.addresses import is_public_address

from . import formats
from .catalog import BUILT_IN_IDS
from .errors import Violations
from .fields import NAME_MAX, check_common

CUSTOM_PREFIX = "x-"
"""Every custom provider id starts with it and no built-in id ever does, so a catalog
release can never take an id a tenant already uses (the catalog test enforces it)."""
_PROVIDER_ID = re.compile(r"x-[a-z0-9][a-z0-9-]{0,60}")


_IPV4_PART = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """IPv4 spellings that inet_aton, and so the resolver, still accepts: `127.1`,
    `2130706433`, `0x7f000001`, `0177.0.0.1` (like inet_aton, text after a space is ignored)."""
    parts = re.split(r"\s", host, maxsplit=1)[0].split(".")
    if not 1 <= len(parts) <= 4 or not all(_IPV4_PART.fullmatch(p) for p in parts):
        return None
    values = [
        int(p[2:], 16) if p[:2] in ("0x", "0X") else int(p, 8 if p[0] == "0" else 10) for p in parts
    ]
    *head, last = values
    if any(v > 0xFF for v in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    address = last
    for i, value in enumerate(head):
        address |= value << (24 - 8 * i)
    return ipaddress.IPv4Address(address)


def _ip_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return _legacy_ipv4(host)


def _is_private_host(host: str) -> bool:
    host = host.rstrip(".")  # `localhost.` and `127.0.0.1.` are the same hosts
    if host == "localhost" or host.endswith(".localhost"):
        return True
    address = _ip_address(host)
    # Not just is_private: shared (100.64/10, carrier-grade NAT) space is internal too, and
    # IPv6 forms that embed an IPv4 address (NAT64, 6to4, Teredo, …) are judged by it.
    return address is not None and not is_public_address(address)


def base_url_problem(url: str, *, allow_private: bool) -> str | None:
    """Why `url` cannot be an upstream, or None when it can.

    Private and loopback addresses are refused unless the operator allows
    them, so a tenant cannot point the gateway at internal services. Names
    are not resolved here: DNS answers can change after validation.
    """
    if not url:
        return "is required"
    if len(url) > 2048:
        return "must be at most 2048 characters"
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError:
        return "must be an absolute http(s) URL"
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        return "must be an absolute http(s) URL"
    if parts.query or parts.fragment or parts.username or parts.password:
        return "must not contain credentials, a query or a fragment"
    private = _is_private_host(host)
    if private and not allow_private:
        return (
            "points at a private or loopback address, which the operator has not allowed "
            "(start the control plane with --allow-private-upstreams to allow it)"
        )
    if parts.scheme == "http" and not private:
        return (
            "must use https (plain http is only for private addresses, "
            "allowed with --allow-private-upstreams)"
        )
    return None


def check_custom_provider(
    v: Violations, cp: pb.CustomProvider, *, allow_private: bool, creating: bool
) -> None:
    check_common(v, "", name=cp.name, description=cp.description, metadata=cp.metadata)
    if creating:
        if not cp.provider_id:
            v.add("provider_id", "is required")
        elif cp.provider_id in BUILT_IN_IDS:
            v.add("provider_id", f"'{cp.provider_id}' is a built-in provider")
        elif not _PROVIDER_ID.fullmatch(cp.provider_id):
            v.add(
                "provider_id",
                f"must be '{CUSTOM_PREFIX}' then 1-61 lowercase letters, digits or '-', e.g. "
                f"'{CUSTOM_PREFIX}acme' (built-in providers never use the prefix, so no "
                "catalog release can clash with a custom id)",
            )
    problem = base_url_problem(cp.base_url, allow_private=allow_private)
    if problem:
        v.add("base_url", problem)
    if not cp.formats:
        v.add("formats", "must list at least one format")
    for i, fmt in enumerate(cp.formats):
        try:
            formats.from_api_format(fmt)
        except ValueError:
            v.add(f"formats[{i}]", "must be API_FORMAT_OPENAI or API_FORMAT_ANTHROPIC")
    if len(set(cp.formats)) != len(cp.formats):
        v.add("formats", "lists a format twice")
    try:
        formats.from_api_auth_style(cp.auth_style)
    except ValueError:
        v.add("auth_style", "is not a known auth style")
    seen: set[str] = set()
    for i, model in enumerate(cp.models):
        if (
            not model.id
            or len(model.id) > NAME_MAX
            or not model.id.isprintable()
            or any(c.isspace() for c in model.id)
        ):
            v.add(f"models[{i}].id", f"must be a model id of 1-{NAME_MAX} characters, no spaces")
        elif model.id.lower() in seen:
            v.add(f"models[{i}].id", f"model '{model.id}' is listed twice")
        seen.add(model.id.lower())
        if len(model.upstream_id) > NAME_MAX or not model.upstream_id.isprintable():
            v.add(
                f"models[{i}].upstream_id",
                f"must be at most {NAME_MAX} printable characters",
            )
