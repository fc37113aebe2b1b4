"""Reads accounts' routing data at one revision, for the snapshot compiler.

Runs on a worker thread with a session of its own: one read transaction sees a
consistent state while the admin API keeps writing (WAL on SQLite, a repeatable-read
snapshot on PostgreSQL).
Only accounts whose data revision moved since the caller last compiled them are
read, so a write to one account costs one account's rows, not the whole store.

A row that cannot be opened or parsed spoils only its account: that account comes
back with the problem (ids only, never a secret) and every other account as usual.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from keyway.v1.access_key_configurations_pb2 import AccessKeyConfiguration

from control_plane.domain import catalog
from control_plane.secrets.errors import SealError
from control_plane.secrets.sealing import SealedSecret, Sealer
from control_plane.secrets.secret import Secret
from control_plane.store import codec
from control_plane.store.records import (
    AccessKeyRecord,
    AccountData,
    AccountRecord,
    KeyRecord,
    StoreDelta,
)

from .session import Session

# Accounts read with `IN (…)` per statement; above half of all accounts, whole tables.
_CHUNK = 500


class _Spoiled(Exception):
    """One row of an account cannot be used; the message names it (no secret)."""


def _custom_provider(row: tuple[Any, ...]) -> catalog.ProviderSpec:
    _, row_id, provider_id, name, base_url, formats_json, auth, models_json = row
    try:
        return catalog.custom(
            provider_id,
            name,
            base_url,
            codec.formats_from_json(formats_json),
            codec.auth_style_from_int(auth),
            codec.models_from_json(models_json),
        )
    except (ValueError, TypeError, KeyError):
        raise _Spoiled(f"custom provider {row_id} is not readable") from None


@dataclass(slots=True)
class _Account:
    customs: list[catalog.ProviderSpec]
    keys: list[KeyRecord]
    configurations: list[tuple[str, AccessKeyConfiguration]]
    access_keys: list[AccessKeyRecord]
    problem: str | None = None


class SnapshotReader:
    """`SnapshotSource` over a session of its own (closed with it)."""

    def __init__(self, session: Session, sealer: Sealer) -> None:
        self._conn = session
        self._sealer = sealer
        # Unchanged rows are not decrypted or parsed again: a plaintext is reused only
        # while its row holds the very ciphertext, owner and version it was opened
        # from (so a row moved to another account is opened again, and refused); a
        # configuration while its etag is the same.
        # Per account, replaced whenever the account is read again, so the plaintext
        # of a deleted key does not outlive the next read of its account.
        self._secrets: dict[str, dict[str, tuple[bytes, bytes, Secret]]] = {}
        self._configs: dict[str, dict[str, tuple[str, AccessKeyConfiguration]]] = {}
        # Reads run on worker threads and may still be running when the control plane
        # stops: closing the connection under a running query crashes the process.
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def revision(self) -> int:
        with self._lock, self._conn.held():
            return self._revision()

    def _revision(self) -> int:
        return int(self._conn.execute("SELECT value FROM revision WHERE id = 1").fetchone()[0])

    def read(self, known: Mapping[str, int]) -> StoreDelta:
        """Accounts whose data revision is not the one in `known` (account id -> revision)."""
        with self._lock, self._conn.held():
            with self._conn.reading():
                revision = self._revision()
                accounts = self._conn.execute(
                    "SELECT id, data_revision FROM accounts ORDER BY id"
                ).fetchall()
                changed = {a: r for a, r in accounts if known.get(a) != r}
                data = self._read_accounts(sorted(changed), whole=len(changed) * 2 > len(accounts))
            present = {a for a, _ in accounts}
            for cache in (self._secrets, self._configs):
                for gone in cache.keys() - present:
                    del cache[gone]
        return StoreDelta(
            revision=revision,
            account_ids=tuple(a for a, _ in accounts),
            changed=tuple(
                _account_data(account_id, changed[account_id], data[account_id])
                for account_id in sorted(changed)
            ),
        )

    def _rows(self, sql: str, ids: Sequence[str], whole: bool) -> Iterable[tuple[Any, ...]]:
        """`sql` ends in `WHERE {accounts}`; rows of `ids` only, or of everyone."""
        if whole:
            yield from self._conn.execute(sql.format(accounts="1 = 1"))
            return
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            yield from self._conn.execute(sql.format(accounts=f"account_id IN ({marks})"), chunk)

    def _read_accounts(self, ids: Sequence[str], *, whole: bool) -> dict[str, _Account]:
        wanted = set(ids)
        out: dict[str, _Account] = defaultdict(lambda: _Account([], [], [], []))

        def each(sql: str, use: Callable[[_Account, tuple[Any, ...]], None]) -> None:
            for row in self._rows(sql, ids, whole):
                if row[0] not in wanted:
                    continue
                account = out[row[0]]
                if account.problem is not None:
                    continue
                try:
                    use(account, row)
                except _Spoiled as spoiled:
                    account.problem = str(spoiled)

        def custom(account: _Account, row: tuple[Any, ...]) -> None:
            account.customs.append(_custom_provider(row))

        each(
            "SELECT account_id, id, provider_id, name, base_url, formats_json, auth_style, "
            "models_json FROM custom_providers WHERE {accounts} ORDER BY seq",
            custom,
        )
        secrets: dict[str, dict[str, tuple[bytes, bytes, Secret]]] = defaultdict(dict)

        def key(account: _Account, row: tuple[Any, ...]) -> None:
            account_id, key_id, provider_id, kek, wrapped, ciphertext, version, aad_v, off = row
            aad = codec.key_aad(account_id, provider_id, key_id, version, aad_v)
            cached = self._secrets.get(account_id, {}).get(key_id)
            if cached is not None and cached[0] == ciphertext and cached[1] == aad:
                value = cached[2]
            else:
                try:
                    value = self._sealer.open(SealedSecret(kek, wrapped, ciphertext), aad)
                except SealError:
                    raise _Spoiled(
                        f"provider key {key_id} cannot be opened: it was sealed for another "
                        "account, provider or version, tampered with, or under a master key "
                        "this control plane does not have"
                    ) from None
            secrets[account_id][key_id] = (ciphertext, aad, value)
            account.keys.append(KeyRecord(key_id, provider_id, value, bool(off)))

        each(
            "SELECT account_id, id, provider_id, kek_id, wrapped_key, ciphertext, "
            "secret_version, aad_version, disabled FROM provider_keys WHERE {accounts} "
            "ORDER BY seq",
            key,
        )
        parsed: dict[str, dict[str, tuple[str, AccessKeyConfiguration]]] = defaultdict(dict)

        def configuration(account: _Account, row: tuple[Any, ...]) -> None:
            account_id, config_id, etag, access_json, router_json, limits_json = row
            hit = self._configs.get(account_id, {}).get(config_id)
            if hit is not None and hit[0] == etag:
                config = hit[1]
            else:
                try:
                    config = codec.config_from_columns(access_json, router_json, limits_json)
                except (json_format.ParseError, ValueError, TypeError):
                    raise _Spoiled(f"configuration {config_id} is not readable") from None
            parsed[account_id][config_id] = (etag, config)
            account.configurations.append((config_id, config))

        each(
            "SELECT account_id, id, etag, access_json, router_json, limits_json "
            "FROM configurations WHERE {accounts} ORDER BY seq",
            configuration,
        )
        # Access keys last and always: a spoiled account is still told which of its
        # access keys exist, so that revoked ones stop working whatever else is wrong.
        for account_id, key_id, token_hash, config_id, off in self._rows(
            "SELECT account_id, id, token_hash, configuration_id, disabled FROM access_keys "
            "WHERE {accounts} ORDER BY seq",
            ids,
            whole,
        ):
            if account_id in wanted:
                record = AccessKeyRecord(key_id, token_hash, config_id, bool(off))
                out[account_id].access_keys.append(record)
        for account_id in ids:
            self._secrets[account_id] = secrets.get(account_id, {})
            self._configs[account_id] = parsed.get(account_id, {})
        return out


def _account_data(account_id: str, data_revision: int, account: _Account) -> AccountData:
    hashes = frozenset(a.token_sha256 for a in account.access_keys if not a.disabled)
    if account.problem is not None:
        return AccountData(account_id, data_revision, None, account.problem, hashes)
    record = AccountRecord(
        id=account_id,
        custom_providers=tuple(account.customs),
        keys=tuple(account.keys),
        configurations=tuple(account.configurations),
        access_keys=tuple(account.access_keys),
    )
    return AccountData(account_id, data_revision, record, None, hashes)
