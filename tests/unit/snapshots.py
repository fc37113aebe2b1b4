"""Hand-built Snapshot protos and RoutingTables for data-plane unit tests.

Two built-in providers stand in for the catalog: `openai` (OpenAI format,
bearer auth) and `anthropic` (Anthropic format, x-api-key). Every snapshot is
checked with the proxy's own validator before it is compiled, so a test can
never rely on a table the control plane would refuse to publish.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from keyway.v1 import snapshot_pb2 as spb

from data_plane.routing.table import Caller, RoutingTable, build
from data_plane.shared.tokens import token_sha256
from data_plane.shared.validate import SCHEMA_VERSION, validate

OPENAI_FMT = spb.SNAPSHOT_FORMAT_OPENAI
ANTHROPIC_FMT = spb.SNAPSHOT_FORMAT_ANTHROPIC
BEARER = spb.SNAPSHOT_AUTH_STYLE_BEARER
X_API_KEY = spb.SNAPSHOT_AUTH_STYLE_X_API_KEY

GPT_4O_UPSTREAM = "gpt-4o-2024-08-06"
"""The one built-in model whose upstream id differs from its catalog id."""

Model = str | tuple[str, str]
"""A catalog id, or (catalog id, upstream id)."""


def provider(
    provider_id: str,
    *,
    formats: Sequence[spb.SnapshotFormat.ValueType] = (OPENAI_FMT,),
    auth: spb.SnapshotAuthStyle.ValueType = BEARER,
    models: Iterable[Model] = (),
    base_url: str | None = None,
) -> spb.SnapshotProvider:
    out = spb.SnapshotProvider(
        id=provider_id,
        base_url=base_url or f"https://{provider_id}.example.com/v1",
        formats=list(formats),
        auth_style=auth,
    )
    for model in models:
        model_id, upstream = (model, "") if isinstance(model, str) else model
        out.models.add(id=model_id, upstream_id=upstream)
    return out


def built_ins() -> list[spb.SnapshotProvider]:
    return [
        provider(
            "openai",
            base_url="https://api.openai.com/v1",
            models=[("gpt-4o", GPT_4O_UPSTREAM), "gpt-4o-mini", "text-embedding-3-small"],
        ),
        provider(
            "anthropic",
            base_url="https://api.anthropic.com/v1",
            formats=(ANTHROPIC_FMT,),
            auth=X_API_KEY,
            models=["claude-sonnet-4-5"],
        ),
    ]


def secret(key_id: str) -> str:
    """A recognisable fake key value, distinct per key id."""
    return f"sk-SECRET-{key_id}-0123456789abcdef"


def key(key_id: str, provider_id: str, value: str | None = None) -> spb.SnapshotProviderKey:
    return spb.SnapshotProviderKey(
        id=key_id, provider_id=provider_id, value=secret(key_id) if value is None else value
    )


def route(provider_id: str, model: str = "", *steps: Sequence[str]) -> spb.SnapshotRoute:
    """Each `steps` item is one ordered step's key ids; `model` as stored (lowercased)."""
    out = spb.SnapshotRoute(provider_id=provider_id, model=model)
    for key_ids in steps:
        out.steps.add(strategy="ordered", key_ids=list(key_ids))
    return out


def configuration(
    configuration_id: str,
    *,
    providers: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    routes: Iterable[spb.SnapshotRoute] = (),
    requests_per_minute: int = 0,
    concurrency: int = 0,
) -> spb.SnapshotConfiguration:
    """`None` leaves an allow-list absent (unrestricted); `[]` allows nothing."""
    out = spb.SnapshotConfiguration(id=configuration_id, routes=list(routes))
    if requests_per_minute or concurrency:
        out.limits.requests_per_minute = requests_per_minute
        out.limits.concurrency = concurrency
    if providers is not None:
        out.providers.allow.extend(providers)
        out.providers.SetInParent()
    if models is not None:
        out.models.allow.extend(models)
        out.models.SetInParent()
    return out


def access_key(access_key_id: str, token: str, configuration_id: str = "") -> spb.SnapshotAccessKey:
    return spb.SnapshotAccessKey(
        id=access_key_id, token_sha256=token_sha256(token), configuration_id=configuration_id
    )


def account(
    account_id: str,
    *,
    keys: Iterable[spb.SnapshotProviderKey] = (),
    configurations: Iterable[spb.SnapshotConfiguration] = (),
    access_keys: Iterable[spb.SnapshotAccessKey] = (),
    custom_providers: Iterable[spb.SnapshotProvider] = (),
) -> spb.SnapshotAccount:
    return spb.SnapshotAccount(
        id=account_id,
        custom_providers=list(custom_providers),
        provider_keys=list(keys),
        configurations=list(configurations),
        access_keys=list(access_keys),
    )


def snapshot(*accounts: spb.SnapshotAccount, version: int = 1) -> spb.Snapshot:
    return spb.Snapshot(
        schema_version=SCHEMA_VERSION,
        version=version,
        providers=built_ins(),
        accounts=list(accounts),
    )


def table(snap: spb.Snapshot) -> RoutingTable:
    violations = validate(snap)
    assert not violations, violations
    payload = snap.SerializeToString(deterministic=True)
    return build(snap, hashlib.sha256(payload).hexdigest())


def caller_of(routing: RoutingTable, token: str) -> Caller:
    return routing.callers[token_sha256(token)]


TOKEN = "kwak_test_token"


def single_caller(
    *,
    keys: Iterable[spb.SnapshotProviderKey] = (),
    config: spb.SnapshotConfiguration | None = None,
    custom_providers: Iterable[spb.SnapshotProvider] = (),
) -> Caller:
    """One account with one access key, linked to `config` when given."""
    snap = snapshot(
        account(
            "acct_1",
            keys=keys,
            configurations=[config] if config is not None else [],
            access_keys=[access_key("ak_1", TOKEN, config.id if config is not None else "")],
            custom_providers=custom_providers,
        )
    )
    return caller_of(table(snap), TOKEN)


def openai_and_anthropic_keys() -> list[spb.SnapshotProviderKey]:
    """pk_o1..pk_o3 for openai and pk_a1 for anthropic, in creation order."""
    return [
        key("pk_o1", "openai"),
        key("pk_o2", "openai"),
        key("pk_a1", "anthropic"),
        key("pk_o3", "openai"),
    ]
