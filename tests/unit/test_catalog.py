from urllib.parse import urlsplit

import pytest

from control_plane.domain import catalog
from control_plane.domain.formats import ApiFormat, AuthStyle
from control_plane.domain.upstreams import CUSTOM_PREFIX

EXPECTED = [
    "openai",
    "anthropic",
    "google",
    "groq",
    "deepseek",
    "mistral",
    "xai",
    "openrouter",
    "together",
    "fireworks",
]
BY_ID = {p.id: p for p in catalog.BUILT_IN}


def test_ids_are_unique_and_include_the_documented_ten() -> None:
    all_ids = [p.id for p in catalog.BUILT_IN]
    assert len(all_ids) == len(set(all_ids))
    assert set(EXPECTED) <= set(all_ids)
    assert frozenset(all_ids) == catalog.BUILT_IN_IDS


@pytest.mark.parametrize("provider_id", EXPECTED)
def test_built_in_is_complete(provider_id: str) -> None:
    spec = BY_ID[provider_id]
    parts = urlsplit(spec.base_url)
    assert parts.scheme == "https"
    assert parts.hostname
    assert not parts.query
    assert not parts.fragment
    assert not spec.base_url.endswith("/")
    assert spec.name
    assert spec.built_in
    assert spec.formats
    assert set(spec.formats) <= {ApiFormat.OPENAI, ApiFormat.ANTHROPIC}
    assert spec.models
    model_ids = [m.id for m in spec.models]
    assert all(model_ids)
    assert len({m.lower() for m in model_ids}) == len(model_ids)
    assert all(not any(c.isspace() for c in m) for m in model_ids)


@pytest.mark.parametrize(
    ("provider_id", "formats", "auth_style"),
    [
        ("anthropic", (ApiFormat.ANTHROPIC,), AuthStyle.X_API_KEY),
        *[(p, (ApiFormat.OPENAI,), AuthStyle.BEARER) for p in EXPECTED if p != "anthropic"],
    ],
)
def test_formats_and_auth_style(
    provider_id: str, formats: tuple[ApiFormat, ...], auth_style: AuthStyle
) -> None:
    assert BY_ID[provider_id].formats == formats
    assert BY_ID[provider_id].auth_style == auth_style


@pytest.mark.parametrize(
    ("provider_id", "model"),
    [
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-5"),
        ("openrouter", "meta-llama/llama-3.3-70b-instruct"),
    ],
)
def test_documented_models_are_listed(provider_id: str, model: str) -> None:
    assert model in [m.id for m in BY_ID[provider_id].models]


def test_google_uses_its_openai_compatible_endpoint() -> None:
    assert BY_ID["google"].base_url.endswith("/openai")


def test_overrides_apply_only_to_the_named_provider() -> None:
    url = "http://127.0.0.1:8080/v1"
    overridden = catalog.with_overrides({"openai": url})
    assert [p.id for p in overridden] == [p.id for p in catalog.BUILT_IN]
    for before, after in zip(catalog.BUILT_IN, overridden, strict=True):
        if before.id == "openai":
            assert after.base_url == url
            assert after.formats == before.formats
            assert after.auth_style == before.auth_style
            assert after.models == before.models
        else:
            assert after == before
    # The catalog itself is not mutated.
    assert BY_ID["openai"].base_url == "https://api.openai.com/v1"


def test_overrides_for_unknown_providers_change_nothing() -> None:
    assert catalog.with_overrides({"nope": "https://example.com"}) == catalog.BUILT_IN
    assert catalog.with_overrides({}) == catalog.BUILT_IN


def test_no_built_in_id_is_in_the_custom_namespace() -> None:
    """The promise that lets custom providers never collide with a catalog release: a
    provider added to catalog.json must not start with the custom prefix."""
    assert CUSTOM_PREFIX == "x-"
    assert [p for p in catalog.BUILT_IN_IDS if p.startswith(CUSTOM_PREFIX)] == []
