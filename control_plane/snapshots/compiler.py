"""Store state at one revision -> one Snapshot. Pure: the caller gathers the state.

Everything is ordered by id or creation order and serialised
deterministically, so equal state gives equal bytes and the same hash in any
control-plane process.

A snapshot can also be put together from accounts compiled one at a time:
protobuf writes each `accounts` entry as its own length-delimited field after
the header fields, so `assemble(header, [frame_account(a) …])` gives exactly the
bytes of serialising the whole message. That lets the publisher recompile only
the accounts that changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from keyway.v1 import access_key_configurations_pb2 as cpb
from keyway.v1 import snapshot_pb2 as spb

from control_plane.domain import catalog, formats
from control_plane.store.records import AccessKeyRecord as AccessKeyRecord
from control_plane.store.records import AccountRecord as AccountRecord
from control_plane.store.records import KeyRecord as KeyRecord
from data_plane.shared.validate import SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class StoreState:
    revision: int
    accounts: tuple[AccountRecord, ...]
    base_url_overrides: Mapping[str, str]
    allow_private_upstreams: bool = False
    """The operator's choice for custom providers; built-ins are always trusted."""


@dataclass(frozen=True, slots=True)
class Compiled:
    version: int
    sha256: str
    payload: bytes
    """The serialised Snapshot: the exact bytes sent to every proxy."""

    def __repr__(self) -> str:  # the payload holds provider key values
        return f"Compiled(version={self.version}, sha256={self.sha256[:12]}…)"


def _provider(spec: catalog.ProviderSpec, private_allowed: bool = True) -> spb.SnapshotProvider:
    return spb.SnapshotProvider(
        private_addresses_allowed=private_allowed,
        id=spec.id,
        base_url=spec.base_url,
        formats=[formats.to_snapshot_format(f) for f in spec.formats],
        auth_style=formats.to_snapshot_auth_style(spec.auth_style),
        models=[spb.SnapshotModel(id=m.id, upstream_id=m.upstream_id) for m in spec.models],
    )


def _configuration(config_id: str, config: cpb.AccessKeyConfiguration) -> spb.SnapshotConfiguration:
    out = spb.SnapshotConfiguration(id=config_id)
    if config.access.HasField("providers"):
        out.providers.allow.extend(config.access.providers.allow)
        out.providers.SetInParent()
    if config.access.HasField("models"):
        out.models.allow.extend(config.access.models.allow)
        out.models.SetInParent()
    if config.HasField("limits"):
        out.limits.requests_per_minute = config.limits.requests_per_minute
        out.limits.concurrency = config.limits.concurrency
    rules = sorted(config.router.rules, key=lambda r: (r.provider, r.model))
    for rule in rules:
        route = out.routes.add(provider_id=rule.provider, model=rule.model.lower())
        for step in rule.steps:
            route.steps.add(
                strategy=step.key_selection_strategy or "ordered",
                key_ids=[k.id for k in step.keys],
            )
    return out


def compile_account(account: AccountRecord, private_allowed: bool) -> spb.SnapshotAccount:
    out = spb.SnapshotAccount(id=account.id)
    out.custom_providers.extend(
        _provider(p, private_allowed) for p in sorted(account.custom_providers, key=lambda p: p.id)
    )
    for key in account.keys:
        # A disabled key's secret stays home: nothing may use it.
        value = "" if key.disabled else key.value.reveal()
        out.provider_keys.add(
            id=key.id, provider_id=key.provider_id, value=value, disabled=key.disabled
        )
    for config_id, config in sorted(account.configurations, key=lambda c: c[0]):
        out.configurations.append(_configuration(config_id, config))
    for ak in sorted(account.access_keys, key=lambda a: a.id):
        out.access_keys.add(
            id=ak.id,
            token_sha256=ak.token_sha256,
            configuration_id=ak.configuration_id or "",
            disabled=ak.disabled,
        )
    return out


def header(revision: int, base_url_overrides: Mapping[str, str]) -> spb.Snapshot:
    """The snapshot without its accounts: schema, version and the built-in catalog."""
    snapshot = spb.Snapshot(schema_version=SCHEMA_VERSION, version=revision)
    snapshot.providers.extend(_provider(p) for p in catalog.with_overrides(base_url_overrides))
    return snapshot


def compile_snapshot(state: StoreState) -> spb.Snapshot:
    snapshot = header(state.revision, state.base_url_overrides)
    snapshot.accounts.extend(
        compile_account(a, state.allow_private_upstreams)
        for a in sorted(state.accounts, key=lambda a: a.id)
    )
    return snapshot


def serialise(snapshot: spb.Snapshot) -> Compiled:
    payload = snapshot.SerializeToString(deterministic=True)
    return Compiled(snapshot.version, hashlib.sha256(payload).hexdigest(), payload)


_ACCOUNTS_TAG = bytes([spb.Snapshot.DESCRIPTOR.fields_by_name["accounts"].number << 3 | 2])


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def frame_account(account: bytes) -> bytes:
    """One serialised SnapshotAccount as the `accounts` entry of a Snapshot."""
    return _ACCOUNTS_TAG + _varint(len(account)) + account


def assemble(head: spb.Snapshot, framed_accounts: Iterable[bytes]) -> Compiled:
    """The snapshot `head` with these accounts (framed, in id order) appended."""
    payload = b"".join([head.SerializeToString(deterministic=True), *framed_accounts])
    return Compiled(head.version, hashlib.sha256(payload).hexdigest(), payload)
