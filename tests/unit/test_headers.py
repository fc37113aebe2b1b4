"""Headers across the proxy: an allow-list going upstream, hop-by-hop filtering coming back."""

from __future__ import annotations

import pytest

from data_plane.http.headers import ANTHROPIC_VERSION, forwarded, relayed, with_credentials
from data_plane.routing.table import Provider, ProviderKey
from tests.unit.snapshots import openai_and_anthropic_keys, secret, single_caller

_ACCOUNT = single_caller(keys=openai_and_anthropic_keys()).account
OPENAI = _ACCOUNT.providers["openai"]
ANTHROPIC = _ACCOUNT.providers["anthropic"]
OPENAI_KEY = _ACCOUNT.keys["pk_o1"]
ANTHROPIC_KEY = _ACCOUNT.keys["pk_a1"]
ACCESS_KEY = "kwak_0123456789abcdefghijklmnopqrstuvwxyz"

PROVIDERS = [
    pytest.param(OPENAI, OPENAI_KEY, id="openai"),
    pytest.param(ANTHROPIC, ANTHROPIC_KEY, id="anthropic"),
]


def upstream_headers(
    client: list[tuple[bytes, bytes]],
    provider: Provider,
    key: ProviderKey,
    *,
    forward_organization: bool = False,
) -> dict[str, str]:
    """What the proxy sends for one attempt: forwarded headers plus the key."""
    return with_credentials(forwarded(client, forward_organization), provider, key)


def _raw(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in pairs]


@pytest.mark.parametrize(("provider", "key"), PROVIDERS)
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("content-type", "application/json"),
        ("Content-Type", "application/json; charset=utf-8"),
        ("accept", "text/event-stream"),
        ("user-agent", "OpenAI/Python 1.60.0"),
        ("anthropic-beta", "prompt-caching-2024-07-31,output-128k-2025-02-19"),
        ("openai-beta", "assistants=v2"),
        ("Idempotency-Key", "stainless-python-retry-7f3c"),
        ("x-stainless-lang", "python"),
        ("X-Stainless-Retry-Count", "0"),
        ("x-stainless-arch", "arm64"),
    ],
)
def test_allow_listed_headers_pass_lowercased(
    provider: Provider, key: ProviderKey, name: str, value: str
) -> None:
    out = upstream_headers(_raw((name, value)), provider, key)
    assert out[name.lower()] == value


def test_anthropic_version_passes_unchanged() -> None:
    out = upstream_headers(_raw(("anthropic-version", "2024-10-22")), ANTHROPIC, ANTHROPIC_KEY)
    assert out["anthropic-version"] == "2024-10-22"
    out = upstream_headers(_raw(("Anthropic-Version", "2024-10-22")), OPENAI, OPENAI_KEY)
    assert out["anthropic-version"] == "2024-10-22"


BLOCKED = [
    ("authorization", f"Bearer {ACCESS_KEY}"),
    ("Authorization", f"Bearer {ACCESS_KEY}"),
    ("x-api-key", ACCESS_KEY),
    ("X-Api-Key", ACCESS_KEY),
    ("proxy-authorization", f"Basic {ACCESS_KEY}"),
    ("cookie", f"session={ACCESS_KEY}"),
    ("x-forwarded-for", "10.0.0.1"),
    ("x-forwarded-host", "internal.example"),
    ("x-real-ip", "10.0.0.1"),
    ("forwarded", "for=10.0.0.1"),
    ("host", "keyway.internal:8080"),
    ("connection", "keep-alive"),
    ("keep-alive", "timeout=5"),
    ("transfer-encoding", "chunked"),
    ("content-length", "123"),
    ("accept-encoding", "gzip"),
    ("openai-organization", "org-internal"),
    ("OpenAI-Project", "proj_internal"),
    ("x-keyway-request-id", "req_spoofed"),
    ("origin", "https://app.example"),
]


@pytest.mark.parametrize(("provider", "key"), PROVIDERS)
@pytest.mark.parametrize(("name", "value"), BLOCKED)
def test_other_headers_never_pass(
    provider: Provider, key: ProviderKey, name: str, value: str
) -> None:
    out = upstream_headers(_raw((name, value)), provider, key)
    assert set(out) <= {"authorization", "x-api-key", "anthropic-version"}
    assert all(ACCESS_KEY not in v and "internal" not in v for v in out.values())


@pytest.mark.parametrize(("provider", "key"), PROVIDERS)
def test_all_at_once_only_the_provider_key_is_sent(provider: Provider, key: ProviderKey) -> None:
    client = _raw(*BLOCKED, ("content-type", "application/json"))
    out = upstream_headers(client, provider, key)
    assert ACCESS_KEY not in repr(out)
    assert key.value in repr(out)
    assert "content-type" in out


@pytest.mark.parametrize(("provider", "key"), PROVIDERS)
def test_organization_headers_only_when_enabled(provider: Provider, key: ProviderKey) -> None:
    client = _raw(("OpenAI-Organization", "org-1"), ("openai-project", "proj_1"))
    assert "openai-organization" not in upstream_headers(client, provider, key)
    out = upstream_headers(client, provider, key, forward_organization=True)
    assert out["openai-organization"] == "org-1"
    assert out["openai-project"] == "proj_1"


@pytest.mark.parametrize(
    "client",
    [
        [],
        [("authorization", f"Bearer {ACCESS_KEY}")],
        [("x-api-key", ACCESS_KEY), ("authorization", "Bearer other")],
    ],
)
def test_bearer_provider_gets_authorization(client: list[tuple[str, str]]) -> None:
    out = upstream_headers(_raw(*client), OPENAI, OPENAI_KEY)
    assert out == {"authorization": f"Bearer {secret('pk_o1')}"}


@pytest.mark.parametrize(
    "client",
    [
        [],
        [("x-api-key", ACCESS_KEY)],
        [("authorization", f"Bearer {ACCESS_KEY}"), ("X-API-KEY", ACCESS_KEY)],
    ],
)
def test_x_api_key_provider_gets_key_and_default_version(client: list[tuple[str, str]]) -> None:
    out = upstream_headers(_raw(*client), ANTHROPIC, ANTHROPIC_KEY)
    assert out == {"x-api-key": secret("pk_a1"), "anthropic-version": ANTHROPIC_VERSION}
    assert ANTHROPIC_VERSION == "2023-06-01"


# --- upstream -> client --------------------------------------------------------------------

UPSTREAM = [
    (b"Content-Type", b"application/json"),
    (b"Connection", b"keep-alive"),
    (b"Keep-Alive", b"timeout=5"),
    (b"Transfer-Encoding", b"chunked"),
    (b"TE", b"trailers"),
    (b"Trailer", b"x-checksum"),
    (b"Upgrade", b"h2c"),
    (b"Proxy-Authenticate", b"Basic"),
    (b"Proxy-Authorization", b"Basic abc"),
    (b"Set-Cookie", b"__cf_bm=abc; path=/"),
    (b"set-cookie", b"_cfuvid=def; path=/"),
    (b"Server", b"cloudflare"),
    (b"Date", b"Tue, 01 Jul 2025 00:00:00 GMT"),
    (b"Alt-Svc", b'h3=":443"'),
    (b"x-ratelimit-limit-requests", b"10000"),
    (b"X-RateLimit-Remaining-Tokens", b"29000"),
    (b"x-ratelimit-reset-requests", b"6ms"),
    (b"anthropic-ratelimit-requests-remaining", b"49"),
    (b"Retry-After", b"2"),
    (b"retry-after-ms", b"1500"),
    (b"x-request-id", b"req_upstream"),
    (b"request-id", b"req_011"),
    (b"openai-processing-ms", b"321"),
    (b"Content-Length", b"42"),
    (b"Cache-Control", b"no-cache"),
]


def test_relayed_drops_hop_by_hop_and_lowercases() -> None:
    assert relayed(UPSTREAM) == [
        (b"content-type", b"application/json"),
        (b"x-ratelimit-limit-requests", b"10000"),
        (b"x-ratelimit-remaining-tokens", b"29000"),
        (b"x-ratelimit-reset-requests", b"6ms"),
        (b"anthropic-ratelimit-requests-remaining", b"49"),
        (b"retry-after", b"2"),
        (b"retry-after-ms", b"1500"),
        (b"x-request-id", b"req_upstream"),
        (b"request-id", b"req_011"),
        (b"openai-processing-ms", b"321"),
        (b"content-length", b"42"),
        (b"cache-control", b"no-cache"),
    ]


def test_relayed_keeps_repeated_headers_in_order() -> None:
    upstream = [(b"Vary", b"Origin"), (b"vary", b"Accept-Encoding")]
    assert relayed(upstream) == [(b"vary", b"Origin"), (b"vary", b"Accept-Encoding")]
    assert relayed([]) == []


def test_upstream_copies_of_the_proxys_own_headers_are_not_relayed() -> None:
    upstream = [
        (b"Access-Control-Allow-Origin", b"*"),
        (b"access-control-expose-headers", b"X-Request-ID"),
        (b"x-keyway-model", b"from-a-chained-proxy"),
        (b"x-request-id", b"abc"),
    ]
    assert relayed(upstream) == [(b"x-request-id", b"abc")]
