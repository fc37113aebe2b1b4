"""Which headers (and query parameters) cross the proxy, in each direction. Pure.

Client -> upstream is an allow-list: the app's credentials, cookies and
internal headers never reach a provider, and the provider key is injected
here and nowhere else; so is the query string, of which only the parameters
the provider's API defines for the call go through. Upstream -> client passes
everything except hop-by-hop headers, so provider rate-limit headers reach
the app.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode

from data_plane.formats import AuthStyle
from data_plane.routing.table import Provider, ProviderKey

ANTHROPIC_VERSION = "2023-06-01"

_FORWARD = frozenset(
    {
        "content-type",
        "accept",
        "user-agent",
        "anthropic-version",
        "anthropic-beta",
        "openai-beta",
        "idempotency-key",
    }
)
_FORWARD_PREFIXES = ("x-stainless-",)
_ORGANIZATION = frozenset({"openai-organization", "openai-project"})
_NOT_RELAYED = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
        "set-cookie",
        "server",
        "date",
        "alt-svc",
    }
)
KEYWAY_HEADERS = (
    "x-keyway-request-id",
    "x-keyway-attempts",
    "x-keyway-provider",
    "x-keyway-model",
    "x-keyway-provider-key-id",
    "x-keyway-rejected-models",
)
# CORS has no partial wildcards, so the provider headers apps read are named.
_RATE_LIMIT_HEADERS = tuple(
    f"x-ratelimit-{what}-{unit}"
    for what in ("limit", "remaining", "reset")
    for unit in ("requests", "tokens")
) + tuple(
    f"anthropic-ratelimit-{unit}-{what}"
    for unit in ("requests", "tokens", "input-tokens", "output-tokens")
    for what in ("limit", "remaining", "reset")
)
_EXPOSED = ", ".join(
    (
        *KEYWAY_HEADERS,
        "retry-after",
        "retry-after-ms",
        "x-request-id",
        "request-id",
        *_RATE_LIMIT_HEADERS,
    )
)
CORS = (
    (b"access-control-allow-origin", b"*"),
    (b"access-control-expose-headers", _EXPOSED.encode()),
)
PREFLIGHT = (
    *CORS,
    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
    (
        b"access-control-allow-headers",
        b"authorization, x-api-key, content-type, anthropic-version, anthropic-beta, "
        b"openai-beta, x-stainless-*",
    ),
    (b"access-control-max-age", b"600"),
)


def retry_after_header(seconds: float) -> tuple[bytes, bytes]:
    """`Retry-After` in whole seconds, at least 1 (what SDKs wait for before retrying)."""
    return (b"retry-after", str(max(1, math.ceil(seconds))).encode())


def forwarded(client: Iterable[tuple[bytes, bytes]], forward_organization: bool) -> dict[str, str]:
    """The client headers that go upstream: the same for every attempt of a request."""
    out: dict[str, str] = {}
    for raw_name, raw_value in client:
        name = raw_name.decode("latin-1").lower()
        if (
            name in _FORWARD
            or name.startswith(_FORWARD_PREFIXES)
            or (forward_organization and name in _ORGANIZATION)
        ):
            value = raw_value.decode("latin-1")
            # Repeated headers (two anthropic-beta lines) mean a comma-joined list.
            out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def forwarded_query(query: bytes, allowed: frozenset[str]) -> str:
    """`?…` with only the `allowed` parameters of the client's query string, or ""."""
    if not query or not allowed:
        return ""
    kept = [
        (name, value)
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True)
        if name in allowed
    ]
    return "?" + urlencode(kept) if kept else ""


def with_credentials(base: dict[str, str], provider: Provider, key: ProviderKey) -> dict[str, str]:
    """`base` plus the provider key in the provider's auth style (a new dict)."""
    out = dict(base)
    if provider.auth_style is AuthStyle.X_API_KEY:
        out["x-api-key"] = key.value
        out.setdefault("anthropic-version", ANTHROPIC_VERSION)
    else:
        out["authorization"] = f"Bearer {key.value}"
    return out


_NOT_RELAYED_RAW = frozenset(name.encode() for name in _NOT_RELAYED)
_OWN_PREFIXES = (b"access-control-", b"x-keyway-")


def relayed(upstream: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Upstream response headers to pass on, names lowercased as ASGI requires."""
    out = []
    for name, value in upstream:
        lowered = name.lower()
        # The proxy sets CORS and x-keyway-* itself; an upstream's copies (or a
        # chained Keyway's) would duplicate them, and two allow-origin
        # headers make browsers reject the response.
        if lowered not in _NOT_RELAYED_RAW and not lowered.startswith(_OWN_PREFIXES):
            out.append((lowered, value))
    return out
