"""The proxy's routing table: a validated Snapshot compiled for lookups.

Built once per snapshot, off the request path, then published by swapping one
reference. Requests only do dict lookups against it and never mutate it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from keyway.v1 import snapshot_pb2 as spb

from data_plane.formats import ApiFormat, AuthStyle

# The contract's enums in the data plane's vocabulary: translated here, and only here.
_FORMATS = {
    spb.SNAPSHOT_FORMAT_OPENAI: ApiFormat.OPENAI,
    spb.SNAPSHOT_FORMAT_ANTHROPIC: ApiFormat.ANTHROPIC,
}
_AUTH = {
    spb.SNAPSHOT_AUTH_STYLE_BEARER: AuthStyle.BEARER,
    spb.SNAPSHOT_AUTH_STYLE_X_API_KEY: AuthStyle.X_API_KEY,
}


@dataclass(frozen=True, slots=True)
class Provider:
    id: str
    base_url: str
    formats: frozenset[ApiFormat]
    auth_style: AuthStyle
    models: Mapping[str, str]
    """Lowercased catalog model id -> upstream model id."""
    listed: tuple[str, ...] = ()
    """Catalog model ids as written, for `GET /v1/models`."""
    public_only: bool = False
    """Connect only to public addresses (a tenant's custom provider, by default)."""


@dataclass(frozen=True, slots=True)
class ProviderKey:
    id: str
    provider_id: str
    value: str = field(repr=False)
    """Unwrapped only where the upstream auth header is built."""


@dataclass(frozen=True, slots=True)
class Policy:
    """Scope and routes shared by every access key of one configuration."""

    allowed_providers: frozenset[str] | None
    allowed_models: frozenset[str] | None
    """Canonical `provider/model` entries, or None for unrestricted."""
    routes: Mapping[tuple[str, str], tuple[str, ...]]
    """(provider, lowercased model or "") -> key ids in order."""
    requests_per_minute: int = 0
    """Per access key; 0 means no limit."""
    concurrency: int = 0
    """Requests in flight per access key; 0 means no limit beyond the proxy's."""
    configuration_id: str = ""
    """Empty for the account's default routing."""


ALLOW_ALL = Policy(None, None, MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    providers: Mapping[str, Provider]
    """Built-ins plus the account's custom providers."""
    keys: Mapping[str, ProviderKey]
    default_keys: Mapping[str, tuple[str, ...]]
    """Provider id -> all of the account's key ids for it, in creation order."""
    bare_models: Mapping[str, tuple[str, ...]]
    """Lowercased model id -> provider ids listing it, catalog order first."""


@dataclass(frozen=True, slots=True)
class Caller:
    """What an access key resolves to."""

    access_key_id: str
    account: Account
    policy: Policy
    disabled: bool = False
    """Refused with `access_key_disabled`, but known: not the same as a revoked key."""

    def key_ids(self, provider: str, model: str) -> tuple[str, ...]:
        """Model rule, then provider rule, then every key of the provider."""
        routes = self.policy.routes
        found = routes.get((provider, model.lower())) or routes.get((provider, ""))
        if found is not None:
            return found
        return self.account.default_keys.get(provider, ())


@dataclass(frozen=True, slots=True)
class AccountPart:
    """One account as built from its bytes in the snapshot, reusable while they match."""

    account: Account
    callers: Mapping[str, Caller]
    """Token SHA-256 -> caller, for each of the account's access keys."""

    @property
    def hashes(self) -> list[str]:
        return list(self.callers)

    @property
    def key_ids(self) -> list[str]:
        return [caller.access_key_id for caller in self.callers.values()]


@dataclass(frozen=True, slots=True)
class Parts:
    """What a table was built from, so the next snapshot rebuilds only what changed."""

    built_in: bytes = b""
    """The serialised built-in providers every account was built against."""
    accounts: Mapping[bytes, AccountPart] = field(default_factory=dict)
    """A digest of an account's exact bytes in the snapshot -> what was built from them."""


@dataclass(frozen=True, slots=True)
class RoutingTable:
    version: int
    sha256: str
    callers: Mapping[str, Caller]
    """Token SHA-256 (hex) -> caller."""
    accounts: Mapping[str, Account] = field(default_factory=dict)
    parts: Parts = field(default_factory=Parts, repr=False, compare=False)

    def __repr__(self) -> str:
        return f"RoutingTable(version={self.version}, callers={len(self.callers)})"


def _provider(p: spb.SnapshotProvider) -> Provider:
    return Provider(
        id=p.id,
        base_url=p.base_url.rstrip("/"),
        formats=frozenset(_FORMATS[f] for f in p.formats),
        auth_style=_AUTH[p.auth_style],
        models=MappingProxyType({m.id.lower(): m.upstream_id or m.id for m in p.models}),
        listed=tuple(m.id for m in p.models),
        public_only=not p.private_addresses_allowed,
    )


def _policy(c: spb.SnapshotConfiguration, disabled: frozenset[str]) -> Policy:
    # A disabled key is dropped from the routes here, once per snapshot, not per request.
    routes = {
        (r.provider_id, r.model): tuple(
            k for step in r.steps for k in step.key_ids if k not in disabled
        )
        for r in c.routes
    }
    return Policy(
        allowed_providers=frozenset(c.providers.allow) if c.HasField("providers") else None,
        allowed_models=frozenset(c.models.allow) if c.HasField("models") else None,
        routes=MappingProxyType(routes),
        requests_per_minute=c.limits.requests_per_minute,
        concurrency=c.limits.concurrency,
        configuration_id=c.id,
    )


def _bare_models(providers: Mapping[str, Provider]) -> Mapping[str, tuple[str, ...]]:
    index: dict[str, list[str]] = {}
    for provider in providers.values():
        for model in provider.models:
            index.setdefault(model, []).append(provider.id)
    return MappingProxyType({m: tuple(ids) for m, ids in index.items()})


class BuiltIn:
    """The built-in providers of one snapshot, shared by every account built against it."""

    def __init__(self, providers: Iterable[spb.SnapshotProvider]) -> None:
        self.providers = {p.id: _provider(p) for p in providers}
        self.models = _bare_models(self.providers)


def build_account(a: spb.SnapshotAccount, built_in: BuiltIn) -> AccountPart:
    """One validated account: its providers, keys and callers."""
    providers = dict(built_in.providers)
    providers.update((p.id, _provider(p)) for p in a.custom_providers)
    defaults: dict[str, list[str]] = {}
    enabled = [k for k in a.provider_keys if not k.disabled]
    for k in enabled:
        defaults.setdefault(k.provider_id, []).append(k.id)
    disabled = frozenset(k.id for k in a.provider_keys if k.disabled)
    account = Account(
        id=a.id,
        providers=MappingProxyType(providers),
        keys=MappingProxyType({k.id: ProviderKey(k.id, k.provider_id, k.value) for k in enabled}),
        default_keys=MappingProxyType({p: tuple(ids) for p, ids in defaults.items()}),
        bare_models=_bare_models(providers) if a.custom_providers else built_in.models,
    )
    policies = {c.id: _policy(c, disabled) for c in a.configurations}
    callers = {
        ak.token_sha256: Caller(
            ak.id,
            account,
            policies[ak.configuration_id] if ak.configuration_id else ALLOW_ALL,
            ak.disabled,
        )
        for ak in a.access_keys
    }
    return AccountPart(account, callers)


def assemble(
    version: int, sha256: str, parts: Sequence[AccountPart], source: Parts
) -> RoutingTable:
    """The table serving `parts` (validated, account ids and token hashes unique)."""
    callers: dict[str, Caller] = {}
    for part in parts:
        callers.update(part.callers)
    accounts = {part.account.id: part.account for part in parts}
    return RoutingTable(
        version, sha256, MappingProxyType(callers), MappingProxyType(accounts), source
    )


def build(snapshot: spb.Snapshot, sha256: str) -> RoutingTable:
    """Compiles a snapshot that has passed `validate.validate`."""
    built_in = BuiltIn(snapshot.providers)
    parts = [build_account(a, built_in) for a in snapshot.accounts]
    return assemble(snapshot.version, sha256, parts, Parts())


def rotated_keys(old: RoutingTable | None, new: RoutingTable) -> list[str]:
    """Ids of provider keys whose value changed: a rotation clears their cooldowns."""
    if old is None:
        return []
    changed = []
    for account in new.accounts.values():
        before = old.accounts.get(account.id)
        if before is None:
            continue
        for key in account.keys.values():
            previous = before.keys.get(key.id)
            if previous is not None and previous.value != key.value:
                changed.append(key.id)
    return changed
