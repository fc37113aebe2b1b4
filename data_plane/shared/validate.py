"""Internal consistency of a Snapshot, checked by both sides.

The control plane runs it before publishing; proxies run it before applying
and NACK with the same field paths. Descriptions name ids and paths only:
a snapshot carries provider key values and a NACK must never echo them.

A snapshot is checked in three parts, so that both sides can check one account at
a time (the control plane compiles per account; a proxy re-checks only accounts
whose bytes changed): the header (schema, version, built-in providers), each
account on its own, and what spans accounts (unique account ids and token hashes).
`validate` runs all three.

An account's custom provider may carry the id of a built-in one: inside that
account it takes precedence. New custom providers cannot take built-in ids (the
control plane refuses them), but a catalog release may later add an id that an
older custom provider already uses; that must not make the account invalid.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from keyway.v1 import snapshot_pb2 as spb

from data_plane.shared.limits import MAX_CONCURRENCY, MAX_REQUESTS_PER_MINUTE

SCHEMA_VERSION = 1
STRATEGIES = frozenset({"ordered"})
_SHA256 = re.compile(r"[0-9a-f]{64}")
_KNOWN_FORMATS = frozenset({spb.SNAPSHOT_FORMAT_OPENAI, spb.SNAPSHOT_FORMAT_ANTHROPIC})
_KNOWN_AUTH = frozenset({spb.SNAPSHOT_AUTH_STYLE_BEARER, spb.SNAPSHOT_AUTH_STYLE_X_API_KEY})


@dataclass(frozen=True, slots=True)
class Violation:
    field: str
    description: str


class _Report:
    def __init__(self) -> None:
        self.items: list[Violation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(Violation(field, description))


def _check_provider(r: _Report, path: str, provider: spb.SnapshotProvider) -> None:
    if not provider.id:
        r.add(f"{path}.id", "is empty")
    try:
        parts = urlsplit(provider.base_url)
        absolute = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. "http://[": an unbalanced IPv6 bracket
        absolute = False
    if not absolute:
        r.add(f"{path}.base_url", "is not an absolute http(s) URL")
    if not provider.formats:
        r.add(f"{path}.formats", "is empty")
    for i, fmt in enumerate(provider.formats):
        if fmt not in _KNOWN_FORMATS:
            r.add(f"{path}.formats[{i}]", f"unknown format {fmt}")
    if provider.auth_style not in _KNOWN_AUTH:
        r.add(f"{path}.auth_style", f"unknown auth style {provider.auth_style}")


def _check_configuration(
    r: _Report,
    path: str,
    config: spb.SnapshotConfiguration,
    key_providers: dict[str, str],
    providers: set[str],
) -> None:
    for name, maximum in (
        ("requests_per_minute", MAX_REQUESTS_PER_MINUTE),
        ("concurrency", MAX_CONCURRENCY),
    ):
        if getattr(config.limits, name) > maximum:
            r.add(f"{path}.limits.{name}", f"is over {maximum}")
    targets: set[tuple[str, str]] = set()
    for i, route in enumerate(config.routes):
        rpath = f"{path}.routes[{i}]"
        if route.provider_id not in providers:
            r.add(f"{rpath}.provider_id", f"unknown provider '{route.provider_id}'")
        target = (route.provider_id, route.model)
        if target in targets:
            r.add(rpath, "duplicate route target")
        targets.add(target)
        if not route.steps:
            r.add(f"{rpath}.steps", "is empty")
        for s, step in enumerate(route.steps):
            spath = f"{rpath}.steps[{s}]"
            if step.strategy not in STRATEGIES:
                r.add(f"{spath}.strategy", f"unknown strategy '{step.strategy}'")
            if not step.key_ids:
                r.add(f"{spath}.key_ids", "is empty")
            for k, key_id in enumerate(step.key_ids):
                owner = key_providers.get(key_id)
                if owner is None:
                    r.add(f"{spath}.key_ids[{k}]", f"unknown provider key '{key_id}'")
                elif owner != route.provider_id:
                    r.add(f"{spath}.key_ids[{k}]", f"key '{key_id}' belongs to '{owner}'")


def _check_account(r: _Report, path: str, account: spb.SnapshotAccount, built_in: set[str]) -> None:
    providers = set(built_in)
    custom_ids: set[str] = set()
    for i, custom in enumerate(account.custom_providers):
        _check_provider(r, f"{path}.custom_providers[{i}]", custom)
        if custom.id in custom_ids:
            r.add(f"{path}.custom_providers[{i}].id", f"duplicate provider '{custom.id}'")
        custom_ids.add(custom.id)
        providers.add(custom.id)
    key_providers: dict[str, str] = {}
    for i, key in enumerate(account.provider_keys):
        kpath = f"{path}.provider_keys[{i}]"
        if not key.id or key.id in key_providers:
            r.add(f"{kpath}.id", f"empty or duplicate id '{key.id}'")
        if key.provider_id not in providers:
            r.add(f"{kpath}.provider_id", f"unknown provider '{key.provider_id}'")
        if not key.value and not key.disabled:
            r.add(f"{kpath}.value", "is empty")
        key_providers[key.id] = key.provider_id
    config_ids: set[str] = set()
    for i, config in enumerate(account.configurations):
        cpath = f"{path}.configurations[{i}]"
        if not config.id or config.id in config_ids:
            r.add(f"{cpath}.id", f"empty or duplicate id '{config.id}'")
        config_ids.add(config.id)
        _check_configuration(r, cpath, config, key_providers, providers)
    hashes: set[str] = set()
    for i, access_key in enumerate(account.access_keys):
        apath = f"{path}.access_keys[{i}]"
        if not _SHA256.fullmatch(access_key.token_sha256):
            r.add(f"{apath}.token_sha256", "is not a lowercase hex SHA-256")
        elif access_key.token_sha256 in hashes:
            r.add(f"{apath}.token_sha256", f"duplicate token hash (access key '{access_key.id}')")
        hashes.add(access_key.token_sha256)
        if access_key.configuration_id and access_key.configuration_id not in config_ids:
            r.add(
                f"{apath}.configuration_id",
                f"unknown configuration '{access_key.configuration_id}'",
            )


def validate_header(snapshot: spb.Snapshot) -> tuple[list[Violation], set[str]]:
    """Schema, version and built-in providers (accounts are not looked at).

    Returns the problems and the built-in provider ids the accounts are checked against.
    """
    r = _Report()
    built_in: set[str] = set()
    if snapshot.schema_version != SCHEMA_VERSION:
        r.add("schema_version", f"is {snapshot.schema_version}, this proxy knows {SCHEMA_VERSION}")
        return r.items, built_in
    if snapshot.version <= 0:
        r.add("version", "must be positive")
    for i, provider in enumerate(snapshot.providers):
        _check_provider(r, f"providers[{i}]", provider)
        if provider.id in built_in:
            r.add(f"providers[{i}].id", f"duplicate provider '{provider.id}'")
        built_in.add(provider.id)
    return r.items, built_in


def validate_account(
    account: spb.SnapshotAccount, built_in: set[str], path: str = "account"
) -> list[Violation]:
    """One account on its own; `path` prefixes the field paths (`accounts[3]`)."""
    r = _Report()
    _check_account(r, path, account, built_in)
    return r.items


class CrossAccountCheck:
    """What spans accounts: unique account ids, and a token hash in one account only."""

    def __init__(self) -> None:
        self._accounts: set[str] = set()
        self._hashes: set[str] = set()

    def add(
        self, index: int, account_id: str, hashes: Sequence[str], key_ids: Sequence[str]
    ) -> list[Violation]:
        """`hashes` and `key_ids`: the account's access keys' token SHA-256 and ids, in
        its order."""
        r = _Report()
        if not account_id or account_id in self._accounts:
            r.add(f"accounts[{index}].id", f"empty or duplicate id '{account_id}'")
        self._accounts.add(account_id)
        if not self._hashes.isdisjoint(hashes):
            for i, token_sha256 in enumerate(hashes):
                if token_sha256 in self._hashes:
                    r.add(
                        f"accounts[{index}].access_keys[{i}].token_sha256",
                        f"duplicate token hash (access key '{key_ids[i]}')",
                    )
        self._hashes.update(hashes)
        return r.items


def validate(snapshot: spb.Snapshot) -> list[Violation]:
    """Every problem found; empty when the snapshot is safe to serve."""
    problems, built_in = validate_header(snapshot)
    if snapshot.schema_version != SCHEMA_VERSION:
        return problems
    across = CrossAccountCheck()
    for i, account in enumerate(snapshot.accounts):
        hashes = [a.token_sha256 for a in account.access_keys]
        problems.extend(across.add(i, account.id, hashes, [a.id for a in account.access_keys]))
        problems.extend(validate_account(account, built_in, f"accounts[{i}]"))
    return problems
