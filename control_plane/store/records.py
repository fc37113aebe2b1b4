"""What the snapshot reader returns: one account's routing data, typed and frozen.

Plain values with no behaviour, shared by the store (which reads them) and the
snapshot compiler (which turns them into a Snapshot).
"""

from __future__ import annotations

from dataclasses import dataclass

from keyway.v1 import access_key_configurations_pb2 as cpb

from control_plane.domain import catalog
from control_plane.secrets.secret import Secret


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    provider_id: str
    value: Secret
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class AccessKeyRecord:
    id: str
    token_sha256: str
    configuration_id: str | None
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class AccountRecord:
    id: str
    custom_providers: tuple[catalog.ProviderSpec, ...]
    keys: tuple[KeyRecord, ...]
    """In creation order."""
    configurations: tuple[tuple[str, cpb.AccessKeyConfiguration], ...]
    access_keys: tuple[AccessKeyRecord, ...]


@dataclass(frozen=True, slots=True)
class AccountData:
    """One account as read at a revision, or why it could not be read."""

    id: str
    data_revision: int
    """The store revision of the last write to this account's routing data."""
    record: AccountRecord | None
    problem: str | None
    """Why `record` is None: a row that does not open or parse (ids only, no secret)."""
    access_key_hashes: frozenset[str]
    """Token hashes of the account's enabled access keys, readable even when the rest is
    not: what a quarantined account may still be served with."""


@dataclass(frozen=True, slots=True)
class StoreDelta:
    revision: int
    account_ids: tuple[str, ...]
    """Every account at this revision, ordered by id."""
    changed: tuple[AccountData, ...]
    """Accounts whose data revision differs from what the caller said it knows."""
