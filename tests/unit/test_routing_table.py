"""The routing table compiled from a hand-made snapshot."""

from __future__ import annotations

import pytest
from keyway.v1 import snapshot_pb2 as spb

from data_plane.formats import ApiFormat, AuthStyle
from data_plane.routing.table import (
    ALLOW_ALL,
    Caller,
    Policy,
    ProviderKey,
    RoutingTable,
    rotated_keys,
)
from data_plane.shared.tokens import token_sha256
from data_plane.shared.validate import validate
from tests.unit.snapshots import (
    ANTHROPIC_FMT,
    GPT_4O_UPSTREAM,
    OPENAI_FMT,
    access_key,
    account,
    caller_of,
    configuration,
    key,
    openai_and_anthropic_keys,
    provider,
    route,
    secret,
    snapshot,
    table,
)

LOCAL = provider(
    "local",
    base_url="http://10.0.0.5:8000/v1/",
    formats=(OPENAI_FMT, ANTHROPIC_FMT),
    models=[("Llama-3.1-8B", "meta-llama/Llama-3.1-8B-Instruct"), "gpt-4o"],
)
SCOPED = configuration(
    "cfg_scoped",
    providers=["openai", "local"],
    models=["openai/gpt-4o", "local/llama-3.1-8b"],
    routes=[
        route("openai", "gpt-4o-mini", ["pk_o2"], ["pk_o3", "pk_o1"]),
        route("openai", "", ["pk_o3"]),
        route("local", "", ["pk_l1"]),
    ],
)
NOTHING = configuration("cfg_nothing", providers=[], models=[])


def _snapshot(version: int = 7, **values: str) -> spb.Snapshot:
    """Two accounts; `values` overrides provider key values by key id."""

    def k(key_id: str, provider_id: str) -> spb.SnapshotProviderKey:
        return key(key_id, provider_id, values.get(key_id))

    return snapshot(
        account(
            "acct_a",
            custom_providers=[LOCAL],
            keys=[
                k("pk_o1", "openai"),
                k("pk_o2", "openai"),
                k("pk_a1", "anthropic"),
                k("pk_o3", "openai"),
                k("pk_l1", "local"),
            ],
            configurations=[NOTHING, SCOPED],
            access_keys=[
                access_key("ak_1", "tok-1"),
                access_key("ak_2", "tok-2", "cfg_scoped"),
                access_key("ak_3", "tok-3", "cfg_scoped"),
                access_key("ak_4", "tok-4", "cfg_nothing"),
            ],
        ),
        account(
            "acct_b",
            keys=[k("pk_b1", "anthropic")],
            access_keys=[access_key("ak_5", "tok-5")],
        ),
        account("acct_c", access_keys=[access_key("ak_6", "tok-6")]),
        version=version,
    )


TABLE = table(_snapshot())


def _caller(token: str) -> Caller:
    return caller_of(TABLE, token)


def test_table_header_and_callers() -> None:
    assert TABLE.version == 7
    assert len(TABLE.sha256) == 64
    assert set(TABLE.callers) == {token_sha256(f"tok-{i}") for i in range(1, 7)}
    assert set(TABLE.accounts) == {"acct_a", "acct_b", "acct_c"}
    ids = {c.access_key_id: c.account.id for c in TABLE.callers.values()}
    assert ids == {
        "ak_1": "acct_a",
        "ak_2": "acct_a",
        "ak_3": "acct_a",
        "ak_4": "acct_a",
        "ak_5": "acct_b",
        "ak_6": "acct_c",
    }
    assert token_sha256("tok-7") not in TABLE.callers


def test_callers_of_one_account_share_it() -> None:
    assert _caller("tok-1").account is _caller("tok-2").account is TABLE.accounts["acct_a"]


def test_unlinked_access_keys_allow_all() -> None:
    for token in ("tok-1", "tok-5", "tok-6"):
        assert _caller(token).policy is ALLOW_ALL
    assert Policy(None, None, {}) == ALLOW_ALL


def test_configurations_are_compiled_once_and_shared() -> None:
    assert _caller("tok-2").policy is _caller("tok-3").policy
    assert _caller("tok-2").policy is not _caller("tok-4").policy
    scoped = _caller("tok-2").policy
    assert scoped.allowed_providers == frozenset({"openai", "local"})
    assert scoped.allowed_models == frozenset({"openai/gpt-4o", "local/llama-3.1-8b"})
    assert dict(scoped.routes) == {
        ("openai", "gpt-4o-mini"): ("pk_o2", "pk_o3", "pk_o1"),
        ("openai", ""): ("pk_o3",),
        ("local", ""): ("pk_l1",),
    }
    nothing = _caller("tok-4").policy
    assert (nothing.allowed_providers, nothing.allowed_models) == (frozenset(), frozenset())
    assert dict(nothing.routes) == {}


def test_configuration_limits_are_compiled() -> None:
    assert (_caller("tok-2").policy.requests_per_minute, _caller("tok-2").policy.concurrency) == (
        0,
        0,
    )
    limited = configuration("cfg_l", requests_per_minute=600, concurrency=20)
    snap = snapshot(
        account(
            "acct_l", configurations=[limited], access_keys=[access_key("ak_l", "tok-l", "cfg_l")]
        )
    )
    policy = caller_of(table(snap), "tok-l").policy
    assert (policy.requests_per_minute, policy.concurrency) == (600, 20)


@pytest.mark.parametrize("field", ["requests_per_minute", "concurrency"])
def test_limits_over_the_maximum_do_not_validate(field: str) -> None:
    limited = configuration("cfg_l")
    setattr(limited.limits, field, 10**7)
    snap = snapshot(account("acct_l", configurations=[limited]))
    assert [v.field for v in validate(snap)] == [f"accounts[0].configurations[0].limits.{field}"]


def test_providers_are_compiled() -> None:
    a = TABLE.accounts["acct_a"]
    openai, anthropic, local = (a.providers[p] for p in ("openai", "anthropic", "local"))
    assert (openai.base_url, openai.formats, openai.auth_style) == (
        "https://api.openai.com/v1",
        frozenset({ApiFormat.OPENAI}),
        AuthStyle.BEARER,
    )
    assert dict(openai.models) == {
        "gpt-4o": GPT_4O_UPSTREAM,
        "gpt-4o-mini": "gpt-4o-mini",
        "text-embedding-3-small": "text-embedding-3-small",
    }
    assert openai.listed == ("gpt-4o", "gpt-4o-mini", "text-embedding-3-small")
    assert (anthropic.formats, anthropic.auth_style) == (
        frozenset({ApiFormat.ANTHROPIC}),
        AuthStyle.X_API_KEY,
    )
    assert local.base_url == "http://10.0.0.5:8000/v1"  # trailing slash dropped
    assert local.formats == frozenset({ApiFormat.OPENAI, ApiFormat.ANTHROPIC})
    assert dict(local.models) == {
        "llama-3.1-8b": "meta-llama/Llama-3.1-8B-Instruct",
        "gpt-4o": "gpt-4o",
    }
    assert local.listed == ("Llama-3.1-8B", "gpt-4o")


def test_built_in_providers_are_shared_between_accounts() -> None:
    a, b = TABLE.accounts["acct_a"], TABLE.accounts["acct_b"]
    assert a.providers["openai"] is b.providers["openai"]
    assert set(a.providers) == {"openai", "anthropic", "local"}
    assert set(b.providers) == {"openai", "anthropic"}


def test_custom_provider_extends_the_bare_model_index_only_for_its_account() -> None:
    a, b, c = (TABLE.accounts[i] for i in ("acct_a", "acct_b", "acct_c"))
    assert a.bare_models["llama-3.1-8b"] == ("local",)
    assert a.bare_models["gpt-4o"] == ("openai", "local")  # built-ins first
    assert "llama-3.1-8b" not in b.bare_models
    assert b.bare_models["gpt-4o"] == ("openai",)
    assert b.bare_models is c.bare_models  # accounts without custom providers share one index
    assert dict(b.bare_models) == {
        "gpt-4o": ("openai",),
        "gpt-4o-mini": ("openai",),
        "text-embedding-3-small": ("openai",),
        "claude-sonnet-4-5": ("anthropic",),
    }


def test_keys_and_default_order() -> None:
    a = TABLE.accounts["acct_a"]
    assert a.keys["pk_o1"] == ProviderKey("pk_o1", "openai", secret("pk_o1"))
    assert dict(a.default_keys) == {
        "openai": ("pk_o1", "pk_o2", "pk_o3"),
        "anthropic": ("pk_a1",),
        "local": ("pk_l1",),
    }
    assert dict(TABLE.accounts["acct_c"].default_keys) == {}


@pytest.mark.parametrize(
    ("token", "provider_id", "model", "keys"),
    [
        ("tok-1", "openai", "gpt-4o-mini", ("pk_o1", "pk_o2", "pk_o3")),
        ("tok-1", "anthropic", "claude-sonnet-4-5", ("pk_a1",)),
        ("tok-1", "local", "Llama-3.1-8B", ("pk_l1",)),
        ("tok-2", "openai", "gpt-4o-mini", ("pk_o2", "pk_o3", "pk_o1")),  # model route
        ("tok-2", "openai", "GPT-4o-MINI", ("pk_o2", "pk_o3", "pk_o1")),
        ("tok-2", "openai", "gpt-4o", ("pk_o3",)),  # provider route
        ("tok-2", "openai", "ft:gpt-4o:acme", ("pk_o3",)),
        ("tok-2", "anthropic", "claude-sonnet-4-5", ("pk_a1",)),  # no rule: default
        ("tok-5", "anthropic", "claude-sonnet-4-5", ("pk_b1",)),
        ("tok-5", "openai", "gpt-4o", ()),
        ("tok-6", "openai", "gpt-4o", ()),
        ("tok-1", "nope", "x", ()),
    ],
)
def test_key_ids_precedence(
    token: str, provider_id: str, model: str, keys: tuple[str, ...]
) -> None:
    assert _caller(token).key_ids(provider_id, model) == keys


@pytest.mark.parametrize(
    ("old", "new", "rotated"),
    [
        (None, _snapshot(), []),
        (_snapshot(), _snapshot(version=8), []),
        (_snapshot(), _snapshot(version=8, pk_o2="sk-rotated"), ["pk_o2"]),
        (
            _snapshot(pk_o2="sk-old", pk_b1="sk-old-b"),
            _snapshot(version=8, pk_o1="sk-new", pk_b1="sk-new-b"),
            ["pk_o1", "pk_o2", "pk_b1"],
        ),
        # Added and deleted keys, and new accounts, are not rotations.
        (snapshot(account("acct_a")), _snapshot(version=8), []),
        (snapshot(), _snapshot(version=8), []),
        (_snapshot(), snapshot(account("acct_a", keys=[key("pk_o1", "openai")])), []),
        (
            _snapshot(),
            snapshot(account("acct_a", keys=[key("pk_o1", "openai", "sk-x")])),
            ["pk_o1"],
        ),
    ],
)
def test_rotated_keys(old: spb.Snapshot | None, new: spb.Snapshot, rotated: list[str]) -> None:
    before = table(old) if old is not None else None
    assert rotated_keys(before, table(new)) == rotated


def test_repr_never_shows_a_key_value() -> None:
    values = [secret(k.id) for k in openai_and_anthropic_keys()] + [secret("pk_l1")]
    texts = [
        repr(TABLE),
        str(TABLE),
        repr(TABLE.accounts["acct_a"]),
        repr(TABLE.accounts["acct_a"].keys["pk_o1"]),
        str(TABLE.accounts["acct_a"].keys["pk_o1"]),
        repr(_caller("tok-2")),
        repr(dict(TABLE.callers)),
    ]
    assert repr(TABLE) == "RoutingTable(version=7, callers=6)"
    for text in texts:
        assert "SECRET" not in text
        for value in values:
            assert value not in text


def test_table_is_read_only() -> None:
    a = TABLE.accounts["acct_a"]
    mappings: list[object] = [TABLE.callers, TABLE.accounts, a.keys, a.providers, a.bare_models]
    for mapping in mappings:
        with pytest.raises(TypeError):
            mapping["x"] = None  # type: ignore[index]
    assert isinstance(TABLE, RoutingTable)
