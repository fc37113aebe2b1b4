"""The control plane's repository: every read and write of resources.

Methods run synchronously on the caller's thread; each write is one
transaction that also bumps the store revision. Rows come back as plain
dicts and the API layer maps them to messages. Secrets enter as `Secret`
and are sealed before they touch the database.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from keyway.v1.access_key_configurations_pb2 import AccessKeyConfiguration
from sqlite_utils import Database

from control_plane.domain import catalog, configuration, ids, preconditions, quotas, tokens
from control_plane.domain.configuration import AccountView
from control_plane.domain.errors import NotFound
from control_plane.domain.quotas import DEFAULT_QUOTAS, Quotas
from control_plane.domain.redact import redact
from control_plane.secrets.errors import SealError
from control_plane.secrets.sealing import SealedSecret, Sealer
from control_plane.secrets.secret import Secret

from . import footprint
from .codec import config_from_columns, config_to_columns
from .database import current_revision, write
from .sealed_rows import AAD_VERSION, key_aad

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Row]
    next_after: int | None
    """Sequence number to continue after, or None on the last page."""


@dataclass(frozen=True, slots=True)
class Credential:
    id: str
    kind: str
    account_id: str | None


@dataclass(frozen=True, slots=True)
class _Kind:
    table: str
    label: str
    prefix: str
    credential: str | None = None
    """For rows of the shared credentials table: the `kind` column value."""
    quota: str | None = None
    """The per-account quota that counts these rows."""
    routing: bool = False
    """Whether rows are an account's routing data (compiled into the snapshot)."""


ACCOUNTS = _Kind("accounts", "account", ids.ACCOUNT)
ADMIN_KEYS = _Kind("credentials", "admin API key", ids.ADMIN_API_KEY, "admin", "admin_api_keys")
DATA_PLANE_CREDENTIALS = _Kind(
    "credentials", "data-plane credential", ids.DATA_PLANE_CREDENTIAL, "data_plane"
)
OPERATOR_CREDENTIALS = _Kind("credentials", "operator credential", ids.OPERATOR, "operator")
_CREDENTIAL_KINDS = {
    tokens.TokenKind.ADMIN: ADMIN_KEYS,
    tokens.TokenKind.DATA_PLANE: DATA_PLANE_CREDENTIALS,
    tokens.TokenKind.OPERATOR: OPERATOR_CREDENTIALS,
}
PROVIDER_KEYS = _Kind(
    "provider_keys", "provider key", ids.PROVIDER_KEY, quota="provider_keys", routing=True
)
ACCESS_KEYS = _Kind("access_keys", "access key", ids.ACCESS_KEY, quota="access_keys", routing=True)
CONFIGURATIONS = _Kind(
    "configurations", "configuration", ids.CONFIGURATION, quota="configurations", routing=True
)
CUSTOM_PROVIDERS = _Kind(
    "custom_providers",
    "custom provider",
    ids.CUSTOM_PROVIDER,
    quota="custom_providers",
    routing=True,
)

# Tables holding an account's resources, children before parents for deletes.
_ACCOUNT_TABLES = ("access_keys", "configurations", "provider_keys", "custom_providers")


def _now_us() -> int:
    return time.time_ns() // 1000


class Store:
    def __init__(
        self,
        db: Database,
        sealer: Sealer,
        *,
        clock: Callable[[], int] = _now_us,
        quotas: Quotas = DEFAULT_QUOTAS,
    ) -> None:
        self._db = db
        self._sealer = sealer
        self._clock = clock
        self._quotas = quotas
        self._listeners: list[Callable[[int], None]] = []

    @property
    def db(self) -> Database:
        return self._db

    def on_commit(self, listener: Callable[[int], None]) -> None:
        """Calls `listener(revision)` after every committed write (snapshot publishing)."""
        self._listeners.append(listener)

    @contextmanager
    def _write(self) -> Iterator[int]:
        with write(self._db) as revision:
            yield revision
        if not self._db.conn.in_transaction:
            # Only once the outermost transaction committed: a nested write
            # (bootstrap) must not announce state that could still roll back.
            for listener in self._listeners:
                listener(revision)

    def revision(self) -> int:
        return current_revision(self._db)

    def label_salt(self) -> bytes:
        """A random value per deployment (all replicas share it), for opaque labels."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'label_salt'").fetchone()
        return bytes.fromhex(row[0])

    # -- generic helpers ---------------------------------------------------------------

    def _select(self, table: str, where: Mapping[str, Any]) -> Row | None:
        clauses = " AND ".join(f"{column} = ?" for column in where)
        rows = self._db.query(
            f"SELECT * FROM {table} WHERE {clauses}",  # noqa: S608 - constant names
            list(where.values()),
        )
        return next(iter(rows), None)

    def _find(self, kind: _Kind, row_id: str, account_id: str | None) -> Row:
        where: dict[str, Any] = {"id": row_id}
        if account_id is not None:
            where["account_id"] = account_id
        if kind.credential is not None:
            where["kind"] = kind.credential
        row = self._select(kind.table, where)
        if row is None:
            # Another tenant's resource is reported exactly like a missing one.
            raise NotFound(f"{kind.label} '{row_id}' not found")
        return row

    def _page(
        self,
        kind: _Kind,
        *,
        after: int,
        limit: int,
        where: Mapping[str, Any],
    ) -> Page:
        if kind.credential is not None:
            where = {**where, "kind": kind.credential}
        clauses = ["seq > ?"] + [f"{column} = ?" for column in where]
        params = [after, *where.values(), limit + 1]
        sql = (
            f"SELECT * FROM {kind.table} WHERE {' AND '.join(clauses)} "  # noqa: S608
            "ORDER BY seq LIMIT ?"
        )
        rows = list(self._db.query(sql, params))
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, rows[-1]["seq"] if more else None)

    @staticmethod
    def _check_etag(kind: _Kind, row: Row, etag: str) -> None:
        preconditions.check_etag(kind.label, row["id"], row["etag"], etag)

    def _insert(self, kind: _Kind, fields: Row, revision: int) -> Row:
        if kind.quota is not None:
            account_id = fields["account_id"]
            quotas.check_count(
                self._quotas,
                kind.quota,
                account_id,
                footprint.count(self._db, kind.quota, account_id),
            )
        now = self._clock()
        row = {
            "id": ids.new_id(kind.prefix),
            "create_time": now,
            "update_time": now,
            "etag": str(revision),
            **fields,
        }
        self._db.table(kind.table).insert(row)
        inserted = self._select(kind.table, {"id": row["id"]})
        assert inserted is not None
        if kind.routing:
            self._routing_changed(inserted["account_id"], revision)
        return inserted

    def _update(
        self, kind: _Kind, row: Row, changes: Mapping[str, Any], etag: str, revision: int
    ) -> Row:
        self._check_etag(kind, row, etag)
        values = {**changes, "update_time": self._clock(), "etag": str(revision)}
        self._db.table(kind.table).update(row["seq"], values)
        if kind.routing:
            self._routing_changed(row["account_id"], revision)
        return self._find(kind, row["id"], None)

    def _routing_changed(self, account_id: str, revision: int) -> None:
        """After a write to an account's routing data, in its transaction: the size
        budget is checked, and the account is marked for recompiling."""
        before, after = footprint.account_bytes(self._db, account_id)
        if after > before:
            total = footprint.total_bytes(self._db) - before + after
            quotas.check_size(self._quotas, account_id, before, after, total)
        self._db.execute(
            "UPDATE accounts SET snapshot_bytes = ?, data_revision = ? WHERE id = ?",
            [after, revision, account_id],
        )

    def get(self, kind: _Kind, row_id: str, account_id: str | None) -> Row:
        return self._find(kind, row_id, account_id)

    def update(
        self,
        kind: _Kind,
        row_id: str,
        account_id: str | None,
        changes: Mapping[str, Any],
        etag: str = "",
    ) -> Row:
        with self._write() as revision:
            row = self._find(kind, row_id, account_id)
            return self._update(kind, row, changes, etag, revision)

    # -- accounts ----------------------------------------------------------------------

    def create_account(self, name: str, description: str, metadata: str) -> Row:
        with self._write() as revision:
            fields = {"name": name, "description": description, "metadata": metadata}
            account = self._insert(ACCOUNTS, fields, revision)
            self._routing_changed(account["id"], revision)
            return self._find(ACCOUNTS, account["id"], None)

    def list_accounts(self, *, after: int, limit: int) -> Page:
        return self._page(ACCOUNTS, after=after, limit=limit, where={})

    def delete_account(self, account_id: str, *, etag: str, force: bool) -> None:
        with self._write() as _:
            row = self._find(ACCOUNTS, account_id, None)
            self._check_etag(ACCOUNTS, row, etag)
            held = {
                table.replace("_", " "): self._db.execute(
                    f"SELECT count(*) FROM {table} WHERE account_id = ?",  # noqa: S608
                    [account_id],
                ).fetchone()[0]
                for table in _ACCOUNT_TABLES
            }
            preconditions.check_account_empty(account_id, held, force=force)
            for table in (*_ACCOUNT_TABLES, "credentials"):
                self._db.execute(
                    f"DELETE FROM {table} WHERE account_id = ?",  # noqa: S608
                    [account_id],
                )
            self._db.execute("DELETE FROM accounts WHERE id = ?", [account_id])

    # -- credentials (operator, admin API keys, data plane) ----------------------------

    def create_credential(
        self,
        kind: tokens.TokenKind,
        *,
        account_id: str | None,
        name: str,
        description: str = "",
        metadata: str = "",
    ) -> tuple[Row, str]:
        token = tokens.mint(kind)
        with self._write() as revision:
            if account_id is not None:
                self._find(ACCOUNTS, account_id, None)
            fields = {
                "kind": kind.name.lower(),
                "account_id": account_id,
                "name": name,
                "description": description,
                "metadata": metadata,
                "token_hash": tokens.token_hash(token),
                "redacted_token": redact(token),
            }
            return self._insert(_CREDENTIAL_KINDS[kind], fields, revision), token

    def authenticate(self, token: str) -> Credential | None:
        found = self._db.execute(
            "SELECT id, kind, account_id FROM credentials WHERE token_hash = ?",
            [tokens.token_hash(token)],
        ).fetchone()
        return None if found is None else Credential(found[0], found[1], found[2])

    def count_credentials(self, kind: str) -> int:
        return int(
            self._db.execute("SELECT count(*) FROM credentials WHERE kind = ?", [kind]).fetchone()[
                0
            ]
        )

    def list_admin_keys(self, account_id: str, *, after: int, limit: int) -> Page:
        self._find(ACCOUNTS, account_id, None)
        return self._page(ADMIN_KEYS, after=after, limit=limit, where={"account_id": account_id})

    def list_credentials(self, kind: tokens.TokenKind, *, after: int, limit: int) -> Page:
        """Data-plane or operator credentials (admin keys are listed per account)."""
        return self._page(_CREDENTIAL_KINDS[kind], after=after, limit=limit, where={})

    def rotate_credential(self, kind: tokens.TokenKind, credential_id: str) -> tuple[Row, str]:
        """A new token for the same credential; the old one stops working at commit."""
        token = tokens.mint(kind)
        with self._write() as revision:
            row = self._find(_CREDENTIAL_KINDS[kind], credential_id, None)
            changes = {"token_hash": tokens.token_hash(token), "redacted_token": redact(token)}
            return self._update(_CREDENTIAL_KINDS[kind], row, changes, "", revision), token

    def delete_operator_credential(self, credential_id: str) -> None:
        with self._write() as _:
            row = self._find(OPERATOR_CREDENTIALS, credential_id, None)
            preconditions.check_not_last_operator(credential_id, self.count_credentials("operator"))
            self._db.execute("DELETE FROM credentials WHERE seq = ?", [row["seq"]])

    def reset_operator_credentials(self, name: str) -> tuple[Row, str]:
        """Revokes every operator credential and creates one new one (local recovery)."""
        with self._write() as _:
            self._db.execute("DELETE FROM credentials WHERE kind = 'operator'")
            return self.create_credential(tokens.TokenKind.OPERATOR, account_id=None, name=name)

    # -- generic delete for leaf resources ---------------------------------------------

    def delete(self, kind: _Kind, row_id: str, account_id: str | None, etag: str = "") -> None:
        with self._write() as revision:
            row = self._find(kind, row_id, account_id)
            self._check_etag(kind, row, etag)
            if kind is PROVIDER_KEYS:
                self._refuse_if_referenced(row)
            elif kind is CONFIGURATIONS:
                self._refuse_if_linked(row)
            elif kind is CUSTOM_PROVIDERS:
                self._refuse_if_provider_used(row)
            self._db.execute(f"DELETE FROM {kind.table} WHERE seq = ?", [row["seq"]])  # noqa: S608
            if kind.routing:
                self._routing_changed(row["account_id"], revision)

    def _configurations_of(self, account_id: str) -> Iterator[tuple[str, AccessKeyConfiguration]]:
        cursor = self._db.execute(
            "SELECT id, access_json, router_json, limits_json FROM configurations "
            "WHERE account_id = ? ORDER BY seq",
            [account_id],
        )
        for config_id, access_json, router_json, limits_json in cursor.fetchall():
            yield config_id, config_from_columns(access_json, router_json, limits_json)

    def _refuse_if_referenced(self, key: Row) -> None:
        preconditions.check_key_unused(key["id"], self._configurations_of(key["account_id"]))

    def _refuse_if_linked(self, config: Row) -> None:
        linked = [
            r[0]
            for r in self._db.execute(
                "SELECT id FROM access_keys WHERE configuration_id = ? ORDER BY seq",
                [config["id"]],
            ).fetchall()
        ]
        preconditions.check_configuration_unlinked(config["id"], linked)

    def _refuse_if_provider_used(self, custom: Row) -> None:
        provider = custom["provider_id"]
        keys = [
            r[0]
            for r in self._db.execute(
                "SELECT id FROM provider_keys WHERE account_id = ? AND provider_id = ?",
                [custom["account_id"], provider],
            ).fetchall()
        ]
        configs = self._configurations_of(custom["account_id"])
        preconditions.check_provider_unused(provider, keys, configs)

    # -- provider keys -----------------------------------------------------------------

    def _known_providers(self, account_id: str) -> frozenset[str]:
        custom = self._db.execute(
            "SELECT provider_id FROM custom_providers WHERE account_id = ?", [account_id]
        ).fetchall()
        return catalog.BUILT_IN_IDS | {r[0] for r in custom}

    def account_view(self, account_id: str) -> AccountView:
        keys = self._db.execute(
            "SELECT id, provider_id FROM provider_keys WHERE account_id = ?", [account_id]
        ).fetchall()
        listed = {p.id: frozenset(m.id.lower() for m in p.models) for p in catalog.BUILT_IN}
        for provider_id, models_json in self._db.execute(
            "SELECT provider_id, models_json FROM custom_providers WHERE account_id = ?",
            [account_id],
        ).fetchall():
            listed[provider_id] = frozenset(
                model_id.lower() for model_id, _ in json.loads(models_json)
            )
        return AccountView(
            self._known_providers(account_id),
            {k: p for k, p in keys},
            {provider: models for provider, models in listed.items() if models},
        )

    def _sealed_fields(
        self, account_id: str, provider_id: str, row_id: str, version: int, value: Secret
    ) -> Row:
        aad = key_aad(account_id, provider_id, row_id, version, AAD_VERSION)
        sealed = self._sealer.seal(value, aad)
        return {
            "kek_id": sealed.kek_id,
            "wrapped_key": sealed.wrapped_key,
            "ciphertext": sealed.ciphertext,
            "secret_version": version,
            "aad_version": AAD_VERSION,
            "redacted_value": redact(value.reveal()),
            "rotate_time": self._clock(),
        }

    def create_provider_key(
        self,
        account_id: str,
        *,
        provider_id: str,
        name: str,
        description: str,
        metadata: str,
        value: Secret,
    ) -> Row:
        with self._write() as revision:
            known = self._known_providers(account_id)
            preconditions.check_provider_known(provider_id, known, hint=True)
            # The id is chosen first: the sealed value is bound to it.
            row_id = ids.new_id(PROVIDER_KEYS.prefix)
            fields = {
                "id": row_id,
                "account_id": account_id,
                "provider_id": provider_id,
                "name": name,
                "description": description,
                "metadata": metadata,
                **self._sealed_fields(account_id, provider_id, row_id, 1, value),
            }
            return self._insert(PROVIDER_KEYS, fields, revision)

    def rotate_provider_key(
        self, account_id: str, key_id: str, *, value: Secret, name: str, etag: str
    ) -> Row:
        with self._write() as revision:
            row = self._find(PROVIDER_KEYS, key_id, account_id)
            changes = self._sealed_fields(
                account_id, row["provider_id"], key_id, row["secret_version"] + 1, value
            )
            if name:
                changes["name"] = name
            return self._update(PROVIDER_KEYS, row, changes, etag, revision)

    def list_provider_keys(
        self, account_id: str, *, provider_id: str, after: int, limit: int
    ) -> Page:
        where: dict[str, Any] = {"account_id": account_id}
        if provider_id:
            # A typo must not read as "this provider has no keys".
            known = self._known_providers(account_id)
            preconditions.check_provider_known(provider_id, known, hint=False)
            where["provider_id"] = provider_id
        return self._page(PROVIDER_KEYS, after=after, limit=limit, where=where)

    def reveal(self, key: Row) -> Secret:
        """The plaintext of a provider key, for operator tooling and tests; never served
        by the admin API (snapshots decrypt in the snapshot reader)."""
        return self._sealer.open(_sealed(key), _aad(key))

    def sealed_kek_ids(self) -> list[str]:
        """Every master key id some stored secret is wrapped with."""
        return self.sealed_kek_ids_in(self._db)

    @staticmethod
    def sealed_kek_ids_in(db: Database) -> list[str]:
        """`sealed_kek_ids` before a store (and its keyring) exists."""
        rows = db.execute("SELECT DISTINCT kek_id FROM provider_keys ORDER BY kek_id")
        return [r[0] for r in rows.fetchall()]

    def kek_opens(self, kek_id: str, sample: int = 3) -> bool:
        """Whether the keyring's key of this id opens what was sealed with it.

        Tries a few rows, so one tampered row does not read as a wrong key.
        """
        rows = self._db.query(
            "SELECT * FROM provider_keys WHERE kek_id = ? ORDER BY seq LIMIT ?", [kek_id, sample]
        )
        for row in rows:
            try:
                self._sealer.open(_sealed(row), _aad(row))
            except SealError:
                continue
            return True
        return False

    def record_usage(
        self,
        provider_keys: Iterable[tuple[str, int | None, int, str, int | None, int | None]],
        access_keys: Iterable[tuple[str, int]],
    ) -> None:
        """Proxies' reports: (key id, last used, error status, reason, error time, last success).

        Bookkeeping, not configuration: the revision and etags do not move, so
        a busy gateway does not republish snapshots for every request. Older
        reports never overwrite newer ones (proxies report independently).
        """
        with self._db.atomic():
            for key_id, used, status, reason, error_time, succeeded in provider_keys:
                for column, when in (("last_used_time", used), ("last_success_time", succeeded)):
                    if when:
                        self._db.execute(
                            f"UPDATE provider_keys SET {column} = "  # noqa: S608 - constant
                            f"max(coalesce({column}, 0), ?) WHERE id = ?",
                            [when, key_id],
                        )
                if error_time:
                    self._db.execute(
                        "UPDATE provider_keys SET last_error_status = ?, last_error_reason = ?, "
                        "last_error_time = ? WHERE id = ? AND coalesce(last_error_time, 0) < ?",
                        [status, reason[:255], error_time, key_id, error_time],
                    )
            for key_id, used in access_keys:
                self._db.execute(
                    "UPDATE access_keys SET last_used_time = "
                    "max(coalesce(last_used_time, 0), ?) WHERE id = ?",
                    [used, key_id],
                )

    # -- access keys -------------------------------------------------------------------

    def _check_configuration(self, account_id: str, config_id: str | None) -> None:
        if config_id:
            found = self._db.execute(
                "SELECT 1 FROM configurations WHERE id = ? AND account_id = ?",
                [config_id, account_id],
            ).fetchone()
            preconditions.check_configuration_exists(config_id, found is not None)

    def create_access_key(
        self,
        account_id: str,
        *,
        name: str,
        description: str,
        metadata: str,
        configuration_id: str | None,
    ) -> tuple[Row, str]:
        token = tokens.mint(tokens.TokenKind.ACCESS)
        with self._write() as revision:
            self._check_configuration(account_id, configuration_id)
            fields = {
                "account_id": account_id,
                "name": name,
                "description": description,
                "metadata": metadata,
                "token_hash": tokens.token_hash(token),
                "redacted_token": redact(token),
                "configuration_id": configuration_id,
            }
            return self._insert(ACCESS_KEYS, fields, revision), token

    def update_access_key(
        self, account_id: str, key_id: str, changes: Mapping[str, Any], etag: str
    ) -> Row:
        with self._write() as revision:
            row = self._find(ACCESS_KEYS, key_id, account_id)
            if "configuration_id" in changes:
                self._check_configuration(account_id, changes["configuration_id"])
            return self._update(ACCESS_KEYS, row, changes, etag, revision)

    def list_access_keys(
        self, account_id: str, *, configuration_id: str, after: int, limit: int
    ) -> Page:
        where: dict[str, Any] = {"account_id": account_id}
        if configuration_id:
            self._check_configuration(account_id, configuration_id)
            where["configuration_id"] = configuration_id
        return self._page(ACCESS_KEYS, after=after, limit=limit, where=where)

    # -- configurations ----------------------------------------------------------------

    def linked_count(self, config_id: str) -> int:
        return int(
            self._db.execute(
                "SELECT count(*) FROM access_keys WHERE configuration_id = ?", [config_id]
            ).fetchone()[0]
        )

    def create_configuration(
        self,
        account_id: str,
        *,
        name: str,
        description: str,
        metadata: str,
        body: AccessKeyConfiguration,
    ) -> Row:
        """`body`'s access, router and limits are checked against the account as it is in
        the write transaction, and stored in canonical form."""
        with self._write() as revision:
            normal = configuration.validated(body, self.account_view(account_id))
            fields = {
                "account_id": account_id,
                "name": name,
                "description": description,
                "metadata": metadata,
                **config_to_columns(normal),
            }
            return self._insert(CONFIGURATIONS, fields, revision)

    def update_configuration(
        self,
        account_id: str,
        config_id: str,
        changes: Mapping[str, Any],
        etag: str,
        body: AccessKeyConfiguration | None,
    ) -> Row:
        """`body`, when given, replaces access, router and limits (checked as on create)."""
        with self._write() as revision:
            row = self._find(CONFIGURATIONS, config_id, account_id)
            merged = dict(changes)
            if body is not None:
                normal = configuration.validated(body, self.account_view(account_id))
                merged.update(config_to_columns(normal))
            return self._update(CONFIGURATIONS, row, merged, etag, revision)

    def list_configurations(self, account_id: str, *, after: int, limit: int) -> Page:
        return self._page(
            CONFIGURATIONS, after=after, limit=limit, where={"account_id": account_id}
        )

    # -- custom providers --------------------------------------------------------------

    def create_custom_provider(self, account_id: str, fields: Row) -> Row:
        with self._write() as revision:
            clash = self._db.execute(
                "SELECT id FROM custom_providers WHERE account_id = ? AND provider_id = ?",
                [account_id, fields["provider_id"]],
            ).fetchone()
            preconditions.check_provider_id_free(fields["provider_id"], clash and clash[0])
            return self._insert(CUSTOM_PROVIDERS, {"account_id": account_id, **fields}, revision)

    def list_custom_providers(self, account_id: str, *, after: int, limit: int) -> Page:
        return self._page(
            CUSTOM_PROVIDERS, after=after, limit=limit, where={"account_id": account_id}
        )


def _sealed(key: Row) -> SealedSecret:
    return SealedSecret(key["kek_id"], key["wrapped_key"], key["ciphertext"])


def _aad(key: Row) -> bytes:
    return key_aad(
        key["account_id"], key["provider_id"], key["id"], key["secret_version"], key["aad_version"]
    )
