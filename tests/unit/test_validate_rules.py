"""The snapshot validator, one rule at a time: one tiny snapshot per rule.

Each case spoils a minimal valid snapshot in exactly one way and expects exactly one
violation, with its field path and description. Both planes run this validator (the
control plane before publishing, every proxy before applying), so each row is a
snapshot both would refuse, and a NACK would carry that row's field path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from keyway.v1 import snapshot_pb2 as spb

from data_plane.shared.limits import MAX_CONCURRENCY, MAX_REQUESTS_PER_MINUTE
from data_plane.shared.validate import SCHEMA_VERSION, Violation, validate

H1 = hashlib.sha256(b"token-1").hexdigest()
H2 = hashlib.sha256(b"token-2").hexdigest()


def minimal() -> spb.Snapshot:
    """One built-in provider; one account with a key, a routed configuration, an access key."""
    snap = spb.Snapshot(schema_version=SCHEMA_VERSION, version=1)
    snap.providers.add(
        id="openai",
        base_url="https://api.openai.com/v1",
        formats=[spb.SNAPSHOT_FORMAT_OPENAI],
        auth_style=spb.SNAPSHOT_AUTH_STYLE_BEARER,
    )
    account = snap.accounts.add(id="acct_1")
    account.provider_keys.add(id="pk_1", provider_id="openai", value="sk-1")
    route = account.configurations.add(id="cfg_1").routes.add(provider_id="openai", model="")
    route.steps.add(strategy="ordered", key_ids=["pk_1"])
    account.access_keys.add(id="ak_1", token_sha256=H1, configuration_id="cfg_1")
    return snap


def _custom(snap: spb.Snapshot, provider_id: str = "x-acme") -> spb.SnapshotProvider:
    return snap.accounts[0].custom_providers.add(
        id=provider_id,
        base_url="https://llm.acme.example/v1",
        formats=[spb.SNAPSHOT_FORMAT_OPENAI],
        auth_style=spb.SNAPSHOT_AUTH_STYLE_BEARER,
    )


def _second_account(snap: spb.Snapshot, account_id: str, token_sha256: str) -> None:
    other = snap.accounts.add(id=account_id)
    other.access_keys.add(id="ak_2", token_sha256=token_sha256)


def _route_to_foreign_key(snap: spb.Snapshot) -> None:
    _custom(snap)
    snap.accounts[0].provider_keys.add(id="pk_acme", provider_id="x-acme", value="sk-a")
    snap.accounts[0].configurations[0].routes[0].steps[0].key_ids.append("pk_acme")


Spoil = Callable[[spb.Snapshot], object]
A = "accounts[0]"
ROUTE = f"{A}.configurations[0].routes[0]"
RULES: list[tuple[str, Spoil, str, str]] = [
    # The header.
    (
        "unknown schema version",
        lambda s: setattr(s, "schema_version", SCHEMA_VERSION + 1),
        "schema_version",
        f"is {SCHEMA_VERSION + 1}, this proxy knows {SCHEMA_VERSION}",
    ),
    ("version not positive", lambda s: setattr(s, "version", 0), "version", "must be positive"),
    (
        "provider without id",
        lambda s: s.providers.add().CopyFrom(
            spb.SnapshotProvider(
                id="",
                base_url="https://x.example/v1",
                formats=[spb.SNAPSHOT_FORMAT_OPENAI],
                auth_style=spb.SNAPSHOT_AUTH_STYLE_BEARER,
            )
        ),
        "providers[1].id",
        "is empty",
    ),
    (
        "base URL not absolute",
        lambda s: setattr(s.providers[0], "base_url", "api.openai.com/v1"),
        "providers[0].base_url",
        "is not an absolute http(s) URL",
    ),
    (
        "base URL not http(s)",
        lambda s: setattr(s.providers[0], "base_url", "ftp://files.example"),
        "providers[0].base_url",
        "is not an absolute http(s) URL",
    ),
    (
        "base URL unparsable",
        lambda s: setattr(s.providers[0], "base_url", "http://["),
        "providers[0].base_url",
        "is not an absolute http(s) URL",
    ),
    (
        "no format",
        lambda s: s.providers[0].ClearField("formats"),
        "providers[0].formats",
        "is empty",
    ),
    (
        "unknown format",
        lambda s: s.providers[0].formats.append(spb.SNAPSHOT_FORMAT_UNSPECIFIED),
        "providers[0].formats[1]",
        "unknown format 0",
    ),
    (
        "unknown auth style",
        lambda s: setattr(s.providers[0], "auth_style", spb.SNAPSHOT_AUTH_STYLE_UNSPECIFIED),
        "providers[0].auth_style",
        "unknown auth style 0",
    ),
    (
        "duplicate built-in provider",
        lambda s: s.providers.add().CopyFrom(s.providers[0]),
        "providers[1].id",
        "duplicate provider 'openai'",
    ),
    # One account.
    (
        "custom provider checked like a built-in",
        lambda s: setattr(_custom(s), "base_url", "not a url"),
        f"{A}.custom_providers[0].base_url",
        "is not an absolute http(s) URL",
    ),
    (
        "duplicate custom provider",
        lambda s: (_custom(s), _custom(s)),
        f"{A}.custom_providers[1].id",
        "duplicate provider 'x-acme'",
    ),
    (
        "provider key without id",
        lambda s: s.accounts[0].provider_keys.add(id="", provider_id="openai", value="sk-2"),
        f"{A}.provider_keys[1].id",
        "empty or duplicate id ''",
    ),
    (
        "duplicate provider key",
        lambda s: s.accounts[0].provider_keys.add(id="pk_1", provider_id="openai", value="sk-2"),
        f"{A}.provider_keys[1].id",
        "empty or duplicate id 'pk_1'",
    ),
    (
        "key of an unknown provider",
        lambda s: s.accounts[0].provider_keys.add(id="pk_2", provider_id="nope", value="sk-2"),
        f"{A}.provider_keys[1].provider_id",
        "unknown provider 'nope'",
    ),
    (
        "enabled key without a value",
        lambda s: setattr(s.accounts[0].provider_keys[0], "value", ""),
        f"{A}.provider_keys[0].value",
        "is empty",
    ),
    (
        "configuration without id",
        lambda s: s.accounts[0].configurations.add(id=""),
        f"{A}.configurations[1].id",
        "empty or duplicate id ''",
    ),
    (
        "duplicate configuration",
        lambda s: s.accounts[0].configurations.add(id="cfg_1"),
        f"{A}.configurations[1].id",
        "empty or duplicate id 'cfg_1'",
    ),
    (
        "requests per minute over the maximum",
        lambda s: setattr(
            s.accounts[0].configurations[0].limits,
            "requests_per_minute",
            MAX_REQUESTS_PER_MINUTE + 1,
        ),
        f"{A}.configurations[0].limits.requests_per_minute",
        f"is over {MAX_REQUESTS_PER_MINUTE}",
    ),
    (
        "concurrency over the maximum",
        lambda s: setattr(
            s.accounts[0].configurations[0].limits, "concurrency", MAX_CONCURRENCY + 1
        ),
        f"{A}.configurations[0].limits.concurrency",
        f"is over {MAX_CONCURRENCY}",
    ),
    (
        "route to an unknown provider",
        lambda s: (
            s.accounts[0]
            .configurations[0]
            .routes.add(provider_id="nope", model="m")
            .steps.add(strategy="ordered", key_ids=["pk_1"])
        ),
        f"{A}.configurations[0].routes[1].provider_id",
        "unknown provider 'nope'",
    ),
    (
        "duplicate route target",
        lambda s: (
            s.accounts[0]
            .configurations[0]
            .routes.add()
            .CopyFrom(s.accounts[0].configurations[0].routes[0])
        ),
        f"{A}.configurations[0].routes[1]",
        "duplicate route target",
    ),
    (
        "route without steps",
        lambda s: s.accounts[0].configurations[0].routes[0].ClearField("steps"),
        f"{ROUTE}.steps",
        "is empty",
    ),
    (
        "unknown key selection strategy",
        lambda s: setattr(s.accounts[0].configurations[0].routes[0].steps[0], "strategy", "random"),
        f"{ROUTE}.steps[0].strategy",
        "unknown strategy 'random'",
    ),
    (
        "step without keys",
        lambda s: s.accounts[0].configurations[0].routes[0].steps[0].ClearField("key_ids"),
        f"{ROUTE}.steps[0].key_ids",
        "is empty",
    ),
    (
        "step naming an unknown key",
        lambda s: s.accounts[0].configurations[0].routes[0].steps[0].key_ids.append("pk_gone"),
        f"{ROUTE}.steps[0].key_ids[1]",
        "unknown provider key 'pk_gone'",
    ),
    (
        "step naming another provider's key",
        lambda s: _route_to_foreign_key(s),
        f"{ROUTE}.steps[0].key_ids[1]",
        "key 'pk_acme' belongs to 'x-acme'",
    ),
    (
        "token hash not a SHA-256",
        lambda s: setattr(s.accounts[0].access_keys[0], "token_sha256", H1.upper()),
        f"{A}.access_keys[0].token_sha256",
        "is not a lowercase hex SHA-256",
    ),
    (
        "token hash twice in one account",
        lambda s: s.accounts[0].access_keys.add(id="ak_2", token_sha256=H1),
        f"{A}.access_keys[1].token_sha256",
        "duplicate token hash (access key 'ak_2')",
    ),
    (
        "access key naming an unknown configuration",
        lambda s: setattr(s.accounts[0].access_keys[0], "configuration_id", "cfg_gone"),
        f"{A}.access_keys[0].configuration_id",
        "unknown configuration 'cfg_gone'",
    ),
    # Across accounts.
    (
        "account without id",
        lambda s: _second_account(s, "", H2),
        "accounts[1].id",
        "empty or duplicate id ''",
    ),
    (
        "duplicate account",
        lambda s: _second_account(s, "acct_1", H2),
        "accounts[1].id",
        "empty or duplicate id 'acct_1'",
    ),
    (
        "token hash in two accounts",
        lambda s: _second_account(s, "acct_2", H1),
        "accounts[1].access_keys[0].token_sha256",
        "duplicate token hash (access key 'ak_2')",
    ),
]


# A route to an unknown provider cannot name a key of it: each key it names is reported too.
ALSO = {
    "route to an unknown provider": [
        Violation(
            f"{A}.configurations[0].routes[1].steps[0].key_ids[0]", "key 'pk_1' belongs to 'openai'"
        )
    ]
}


def test_the_minimal_snapshot_is_valid() -> None:
    assert validate(minimal()) == []


@pytest.mark.parametrize(
    ("name", "spoil", "field", "description"), RULES, ids=[r[0] for r in RULES]
)
def test_each_rule_alone(name: str, spoil: Spoil, field: str, description: str) -> None:
    snap = minimal()
    spoil(snap)
    assert validate(snap) == [Violation(field, description), *ALSO.get(name, [])]


@pytest.mark.parametrize(
    "allowed",
    [
        pytest.param(
            lambda s: setattr(_custom(s, "openai"), "base_url", "http://10.0.0.5/v1"),
            id="custom provider with a built-in id",
        ),
        pytest.param(
            lambda s: s.accounts[0].provider_keys.add(
                id="pk_off", provider_id="openai", disabled=True
            ),
            id="disabled key without a value",
        ),
        pytest.param(
            lambda s: setattr(s.accounts[0].access_keys[0], "configuration_id", ""),
            id="access key without configuration",
        ),
        pytest.param(
            lambda s: s.providers[0].formats.append(spb.SNAPSHOT_FORMAT_ANTHROPIC),
            id="a provider speaking both formats",
        ),
    ],
)
def test_what_the_rules_allow(allowed: Spoil) -> None:
    snap = minimal()
    allowed(snap)
    assert validate(snap) == []
