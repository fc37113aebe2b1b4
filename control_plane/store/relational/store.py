"""The store port in SQL: every resource read and write, for both adapters.

Each method runs inside its session's `held()` scope: on SQLite one connection behind one
lock, so whichever thread calls (the store's executor, a start-up path, a test) a write
transaction is never interleaved with another call; on PostgreSQL a pooled connection
the calling thread keeps for the whole method. Every write first bumps the revision row
(`write`), which on PostgreSQL also locks it: writes from every replica are serialised
there, so revisions follow commit order and an etag check inside a write sees every
write committed before it. Rows stay inside this module: callers get records. Secrets
enter as `Secret` and are sealed before they touch the database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, cast

from keyway.v1.access_key_configurations_pb2 import AccessKeyConfiguration

from control_plane.domain import catalog, configuration, ids, preconditions, quotas, tokens
from control_plane.domain.configuration import AccountView
from control_plane.domain.errors import NotFound
from control_plane.domain.quotas import DEFAULT_QUOTAS, Quotas
from control_plane.domain.redact import redact
from control_plane.domain.tokens import TokenKind
from control_plane.secrets.errors import SealError
from control_plane.secrets.sealing import SealedSecret, Sealer
from control_plane.secrets.secret import Secret
from control_plane.snapshots.stream import Rejection, Revision
from control_plane.store import codec
from control_plane.store.port import (
    ACCESS_KEYS,
    ACCOUNTS,
    CONFIGURATIONS,
    CREDENTIALS,
    CUSTOM_PROVIDERS,
    OPERATOR_CREDENTIALS,
    PROVIDER_KEYS,
    Kind,
    SealedPasses,
    SnapshotSource,
)
from control_plane.store.records import (
    AccessKey,
    AccessKeyFields,
    AccessKeyUsage,
    Account,
    Configuration,
    ConfigurationFields,
    Credential,
    CustomProvider,
    CustomProviderFields,
    KeyUsage,
    Labels,
    NodeStatus,
    Page,
    ProviderKey,
    ProviderKeyError,
    ProviderKeyFields,
)

from . import footprint
from .sealed_rows import SealedRows
from .session import Session, insert_sql, update_sql, upsert_sql
from .snapshot_reader import SnapshotReader
from .usage import RelationalUsage, record_key_usage

Row = dict[str, Any]
Columns = dict[str, object]
P = ParamSpec("P")
T = TypeVar("T")
U = TypeVar("U")

# Tables holding an account's resources, children before parents for deletes.
_ACCOUNT_TABLES = ("access_keys", "configurations", "provider_keys", "custom_providers")


def _now_us() -> int:
    return time.time_ns() // 1000


# -- rows <-> records ------------------------------------------------------------------------


def _stored(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "create_time_us": row["create_time"],
        "update_time_us": row["update_time"],
        "etag": row["etag"],
    }


def _labels(row: Row) -> dict[str, Any]:
    return {"name": row["name"], "description": row["description"], "metadata": row["metadata"]}


def _account(row: Row) -> Account:
    return Account(
        **_stored(row),
        fields=Labels(**_labels(row)),
        data_revision=row["data_revision"],
        snapshot_bytes=row["snapshot_bytes"],
    )


def _credential(row: Row) -> Credential:
    return Credential(
        **_stored(row),
        fields=Labels(**_labels(row)),
        kind=TokenKind[row["kind"].upper()],
        account_id=row["account_id"],
        redacted_token=row["redacted_token"],
    )


def _provider_key(row: Row) -> ProviderKey:
    error = None
    if row["last_error_time"] is not None:
        error = ProviderKeyError(
            row["last_error_status"] or 0, row["last_error_reason"] or "", row["last_error_time"]
        )
    return ProviderKey(
        **_stored(row),
        fields=ProviderKeyFields(**_labels(row), disabled=bool(row["disabled"])),
        account_id=row["account_id"],
        provider_id=row["provider_id"],
        redacted_value=row["redacted_value"],
        kek_id=row["kek_id"],
        rotate_time_us=row["rotate_time"],
        last_used_time_us=row["last_used_time"],
        last_success_time_us=row["last_success_time"],
        last_error=error,
    )


def _access_key(row: Row) -> AccessKey:
    return AccessKey(
        **_stored(row),
        fields=AccessKeyFields(
            **_labels(row),
            configuration_id=row["configuration_id"],
            disabled=bool(row["disabled"]),
        ),
        account_id=row["account_id"],
        redacted_token=row["redacted_token"],
        last_used_time_us=row["last_used_time"],
    )


def _configuration(row: Row) -> Configuration:
    body = codec.config_from_columns(row["access_json"], row["router_json"], row["limits_json"])
    return Configuration(
        **_stored(row),
        fields=ConfigurationFields(**_labels(row), body=body),
        account_id=row["account_id"],
        access_key_count=row["access_key_count"],
    )


def _custom_provider(row: Row) -> CustomProvider:
    return CustomProvider(
        **_stored(row),
        fields=CustomProviderFields(
            **_labels(row),
            base_url=row["base_url"],
            formats=codec.formats_from_json(row["formats_json"]),
            auth_style=codec.auth_style_from_int(row["auth_style"]),
            models=codec.models_from_json(row["models_json"]),
        ),
        account_id=row["account_id"],
        provider_id=row["provider_id"],
    )


def _label_columns(fields: Labels) -> dict[str, Columns]:
    """Each attribute of a fields record -> the columns that hold it."""
    return {
        "name": {"name": fields.name},
        "description": {"description": fields.description},
        "metadata": {"metadata": fields.metadata},
    }


def _columns(fields: Labels) -> dict[str, Columns]:
    out = _label_columns(fields)
    if isinstance(fields, ProviderKeyFields):
        out["disabled"] = {"disabled": int(fields.disabled)}
    elif isinstance(fields, AccessKeyFields):
        out["configuration_id"] = {"configuration_id": fields.configuration_id}
        out["disabled"] = {"disabled": int(fields.disabled)}
    elif isinstance(fields, ConfigurationFields):
        out["body"] = dict(codec.config_to_columns(fields.body))
    elif isinstance(fields, CustomProviderFields):
        out["base_url"] = {"base_url": fields.base_url}
        out["formats"] = {"formats_json": codec.formats_to_json(fields.formats)}
        out["auth_style"] = {"auth_style": codec.auth_style_to_int(fields.auth_style)}
        out["models"] = {"models_json": codec.models_to_json(fields.models)}
    return out


def _written(fields: Labels, attributes: Collection[str] | None = None) -> Columns:
    """The columns for `attributes` of `fields` (all of them when None)."""
    by_attribute = _columns(fields)
    chosen = by_attribute if attributes is None else {a: by_attribute[a] for a in attributes}
    return {column: value for columns in chosen.values() for column, value in columns.items()}


@dataclass(frozen=True, slots=True)
class _Table:
    name: str
    decode: Callable[[Row], Any]
    select: str = "*"


_LINKED = (
    "*, (SELECT count(*) FROM access_keys a WHERE a.configuration_id = configurations.id) "
    "AS access_key_count"
)
_CREDENTIALS = _Table("credentials", _credential)
_TABLES: dict[Kind[Any, Any], _Table] = {
    ACCOUNTS: _Table("accounts", _account),
    **dict.fromkeys(CREDENTIALS.values(), _CREDENTIALS),
    PROVIDER_KEYS: _Table("provider_keys", _provider_key),
    ACCESS_KEYS: _Table("access_keys", _access_key),
    CONFIGURATIONS: _Table("configurations", _configuration, _LINKED),
    CUSTOM_PROVIDERS: _Table("custom_providers", _custom_provider),
}


def current_revision(db: Session) -> int:
    return int(db.execute("SELECT value FROM revision WHERE id = 1").fetchone()[0])


@contextmanager
def write(db: Session) -> Iterator[int]:
    """One write transaction; yields the new store revision.

    Every mutation goes through here, so the revision (the snapshot version)
    moves exactly when data changes, and a failed request rolls back both.
    """
    with db.atomic():
        db.execute("UPDATE revision SET value = value + 1 WHERE id = 1")
        revision = current_revision(db)
        db.announce(revision)
        yield revision


def _serialised(
    method: Callable[Concatenate[RelationalStore, P], T],
) -> Callable[Concatenate[RelationalStore, P], T]:
    def held(self: RelationalStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with self._db.held():
            return method(self, *args, **kwargs)

    return held


class Watcher(Protocol):
    """Sees commits made through other processes on a shared database."""

    def start(self, tell: Callable[[int], None]) -> None:
        """From now on, `tell(revision)` (from a thread of its own) when it moved."""
        ...

    def close(self) -> None: ...


class _Pending(threading.local):
    announce: int | None = None
    """The revision of a write committed inside an open transaction, not yet told."""


class RelationalStore:
    """`Store` over a `Session`; `workers` threads run its methods (`executor`)."""

    def __init__(
        self,
        db: Session,
        sealer: Sealer,
        *,
        snapshots: SnapshotReader,
        sealed: SealedRows,
        workers: int = 1,
        watcher: Watcher | None = None,
        clock: Callable[[], int] = _now_us,
        quotas: Quotas = DEFAULT_QUOTAS,
    ) -> None:
        self._db = db
        self._sealer = sealer
        self._snapshots = snapshots
        self._sealed = sealed
        self._clock = clock
        self._quotas = quotas
        self._listeners: list[Callable[[int], None]] = []
        # SQLite: one thread (one writer anyway, and the connection stays on it); a
        # pool: as many as it has connections.
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="keyway-store")
        self._pending = _Pending()
        self._watcher = watcher
        self._tell_lock = threading.Lock()
        self._told_up_to = 0
        self._usage = RelationalUsage(self._db, clock)

    @property
    def executor(self) -> Executor:
        return self._executor

    @property
    def snapshots(self) -> SnapshotSource:
        return self._snapshots

    @property
    def sealed(self) -> SealedPasses:
        return self._sealed

    @property
    def usage(self) -> RelationalUsage:
        return self._usage

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
        self._executor.shutdown(wait=True)
        self._sealed.close()
        self._snapshots.close()
        self._db.close()

    def exclusive(self, job: str, *, wait: bool = False) -> AbstractContextManager[bool]:
        return self._db.exclusive(job, wait=wait)

    def on_commit(self, listener: Callable[[int], None]) -> None:
        self._listeners.append(listener)
        if self._watcher is not None and len(self._listeners) == 1:
            self._watcher.start(self._tell)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._db.held():
            try:
                with self._db.atomic():
                    yield
            except BaseException:
                if not self._db.in_transaction:
                    self._pending.announce = None
                raise
            self._told()

    @contextmanager
    def _write(self) -> Iterator[int]:
        with self._db.held():
            with write(self._db) as revision:
                yield revision
            # A write nested in another (in one transaction) commits the higher revision.
            self._pending.announce = max(revision, self._pending.announce or 0)
            self._told()

    def _told(self) -> None:
        # Only once the outermost transaction committed: a write inside `transaction()`
        # must not announce state that could still roll back.
        if self._db.in_transaction or self._pending.announce is None:
            return
        revision, self._pending.announce = self._pending.announce, None
        self._tell(revision)

    def _tell(self, revision: int) -> None:
        # Once per revision, whether this process wrote it or the watcher saw another
        # replica's commit first (or saw this one's before the writer got here).
        with self._tell_lock:
            if revision <= self._told_up_to:
                return
            self._told_up_to = revision
            for listener in self._listeners:
                listener(revision)

    @_serialised
    def revision(self) -> int:
        return current_revision(self._db)

    @_serialised
    def label_salt(self) -> bytes:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'label_salt'").fetchone()
        return bytes.fromhex(row[0])

    @_serialised
    def deployment_values(self, prefix: str) -> dict[str, str]:
        rows = self._db.execute(
            "SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?", [len(prefix), prefix]
        ).fetchall()
        return {str(k): str(v) for k, v in rows}

    @_serialised
    def keep_deployment_value(self, name: str, value: str) -> None:
        with self._db.atomic():
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                [name, value],
            )

    # -- generic helpers -------------------------------------------------------------------

    def _select(self, table: _Table, where: Mapping[str, Any]) -> Row | None:
        clauses = " AND ".join(f"{column} = ?" for column in where)
        rows = self._db.query(
            f"SELECT {table.select} FROM {table.name} WHERE {clauses}",  # noqa: S608 - constants
            list(where.values()),
        )
        return next(iter(rows), None)

    def _find(self, kind: Kind[Any, Any], row_id: str, account_id: str | None) -> Row:
        where: dict[str, Any] = {"id": row_id}
        if account_id is not None:
            where["account_id"] = account_id
        if kind.credential is not None:
            where["kind"] = kind.credential.name.lower()
        row = self._select(_TABLES[kind], where)
        if row is None:
            # Another tenant's resource is reported exactly like a missing one.
            raise NotFound(f"{kind.label} '{row_id}' not found")
        return row

    def _page(
        self, kind: Kind[T, Any], *, after: int, limit: int, where: Mapping[str, Any]
    ) -> Page[T]:
        table = _TABLES[kind]
        if kind.credential is not None:
            where = {**where, "kind": kind.credential.name.lower()}
        clauses = ["seq > ?"] + [f"{column} = ?" for column in where]
        params = [after, *where.values(), limit + 1]
        sql = (
            f"SELECT {table.select} FROM {table.name} "  # noqa: S608 - constants
            f"WHERE {' AND '.join(clauses)} ORDER BY seq LIMIT ?"
        )
        rows = list(self._db.query(sql, params))
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(tuple(table.decode(r) for r in rows), rows[-1]["seq"] if more else None)

    def _insert(self, kind: Kind[T, Any], values: Columns, revision: int) -> T:
        if kind.quota is not None:
            account_id = cast(str, values["account_id"])
            count = footprint.count(self._db, kind.quota, account_id)
            quotas.check_count(self._quotas, kind.quota, account_id, count)
        now = self._clock()
        row = {
            "id": ids.new_id(kind.prefix),
            "create_time": now,
            "update_time": now,
            "etag": str(revision),
            **values,
        }
        table = _TABLES[kind]
        self._db.execute(insert_sql(table.name, list(row)), list(row.values()))
        if kind.routing:
            self._routing_changed(cast(str, row["account_id"]), revision)
        return cast(T, table.decode(self._find(kind, cast(str, row["id"]), None)))

    def _update(self, kind: Kind[T, Any], row: Row, values: Columns, etag: str, revision: int) -> T:
        preconditions.check_etag(kind.label, row["id"], row["etag"], etag)
        written = {**values, "update_time": self._clock(), "etag": str(revision)}
        self._db.execute(
            update_sql(_TABLES[kind].name, list(written), "seq"), [*written.values(), row["seq"]]
        )
        if kind.routing:
            self._routing_changed(row["account_id"], revision)
        return cast(T, _TABLES[kind].decode(self._find(kind, row["id"], None)))

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

    @_serialised
    def get(self, kind: Kind[T, Any], resource_id: str, account_id: str | None) -> T:
        return cast(T, _TABLES[kind].decode(self._find(kind, resource_id, account_id)))

    @_serialised
    def update(
        self,
        kind: Kind[T, U],
        resource_id: str,
        account_id: str | None,
        fields: U,
        changed: Collection[str],
        etag: str = "",
    ) -> T:
        written = cast(Labels, fields)  # every kind's fields are labels and more
        with self._write() as revision:
            row = self._find(kind, resource_id, account_id)
            if isinstance(written, AccessKeyFields) and "configuration_id" in changed:
                self._check_configuration(row["account_id"], written.configuration_id)
            if isinstance(written, ConfigurationFields) and "body" in changed:
                view = self._account_view(row["account_id"])
                written = replace(written, body=configuration.validated(written.body, view))
            values = _written(written, changed)
            return self._update(kind, row, values, etag, revision)

    @_serialised
    def delete(
        self, kind: Kind[Any, Any], resource_id: str, account_id: str | None, etag: str = ""
    ) -> None:
        with self._write() as revision:
            row = self._find(kind, resource_id, account_id)
            preconditions.check_etag(kind.label, row["id"], row["etag"], etag)
            if kind is PROVIDER_KEYS:
                configurations = self._configurations_of(row["account_id"])
                preconditions.check_key_unused(row["id"], configurations)
            elif kind is CONFIGURATIONS:
                preconditions.check_configuration_unlinked(row["id"], self._linked(row["id"]))
            elif kind is CUSTOM_PROVIDERS:
                self._check_provider_unused(row["account_id"], row["provider_id"])
            elif kind is OPERATOR_CREDENTIALS:
                operators = self._count_credentials(TokenKind.OPERATOR)
                preconditions.check_not_last_operator(row["id"], operators)
            table = _TABLES[kind].name
            self._db.execute(f"DELETE FROM {table} WHERE seq = ?", [row["seq"]])  # noqa: S608
            if kind.routing:
                self._routing_changed(row["account_id"], revision)

    def _configurations_of(self, account_id: str) -> Iterator[tuple[str, AccessKeyConfiguration]]:
        cursor = self._db.execute(
            "SELECT id, access_json, router_json, limits_json FROM configurations "
            "WHERE account_id = ? ORDER BY seq",
            [account_id],
        )
        for config_id, access_json, router_json, limits_json in cursor.fetchall():
            yield config_id, codec.config_from_columns(access_json, router_json, limits_json)

    def _linked(self, config_id: str) -> list[str]:
        rows = self._db.execute(
            "SELECT id FROM access_keys WHERE configuration_id = ? ORDER BY seq", [config_id]
        ).fetchall()
        return [r[0] for r in rows]

    def _check_provider_unused(self, account_id: str, provider_id: str) -> None:
        keys = [
            r[0]
            for r in self._db.execute(
                "SELECT id FROM provider_keys WHERE account_id = ? AND provider_id = ?",
                [account_id, provider_id],
            ).fetchall()
        ]
        configurations = self._configurations_of(account_id)
        preconditions.check_provider_unused(provider_id, keys, configurations)

    # -- accounts --------------------------------------------------------------------------

    @_serialised
    def create_account(self, fields: Labels) -> Account:
        with self._write() as revision:
            account = self._insert(ACCOUNTS, {**_written(fields)}, revision)
            self._routing_changed(account.id, revision)
            return self.get(ACCOUNTS, account.id, None)

    @_serialised
    def list_accounts(self, *, after: int, limit: int) -> Page[Account]:
        return self._page(ACCOUNTS, after=after, limit=limit, where={})

    @_serialised
    def delete_account(self, account_id: str, *, etag: str, force: bool) -> None:
        with self._write() as _:
            row = self._find(ACCOUNTS, account_id, None)
            preconditions.check_etag(ACCOUNTS.label, account_id, row["etag"], etag)
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

    # -- credentials (operator, admin API keys, data plane) --------------------------------

    @_serialised
    def create_credential(
        self, kind: TokenKind, *, account_id: str | None, fields: Labels, token: str
    ) -> Credential:
        with self._write() as revision:
            if account_id is not None:
                self._find(ACCOUNTS, account_id, None)
            values: Columns = {
                "kind": kind.name.lower(),
                "account_id": account_id,
                **_written(fields),
                **_token_columns(token),
            }
            return self._insert(CREDENTIALS[kind], values, revision)

    @_serialised
    def authenticate(self, token: str) -> Credential | None:
        found = self._select(_CREDENTIALS, {"token_hash": tokens.token_hash(token)})
        return None if found is None else _credential(found)

    def _count_credentials(self, kind: TokenKind) -> int:
        row = self._db.execute(
            "SELECT count(*) FROM credentials WHERE kind = ?", [kind.name.lower()]
        ).fetchone()
        return int(row[0])

    @_serialised
    def count_credentials(self, kind: TokenKind) -> int:
        return self._count_credentials(kind)

    @_serialised
    def list_credentials(
        self, kind: TokenKind, *, account_id: str | None, after: int, limit: int
    ) -> Page[Credential]:
        where = {}
        if account_id is not None:
            self._find(ACCOUNTS, account_id, None)
            where["account_id"] = account_id
        return self._page(CREDENTIALS[kind], after=after, limit=limit, where=where)

    @_serialised
    def rotate_credential(self, kind: TokenKind, credential_id: str, token: str) -> Credential:
        with self._write() as revision:
            row = self._find(CREDENTIALS[kind], credential_id, None)
            return self._update(CREDENTIALS[kind], row, _token_columns(token), "", revision)

    @_serialised
    def reset_operator_credentials(self, fields: Labels, token: str) -> Credential:
        with self._write() as _:
            self._db.execute("DELETE FROM credentials WHERE kind = 'operator'")
            return self.create_credential(
                TokenKind.OPERATOR, account_id=None, fields=fields, token=token
            )

    # -- provider keys ---------------------------------------------------------------------

    def _known_providers(self, account_id: str) -> frozenset[str]:
        custom = self._db.execute(
            "SELECT provider_id FROM custom_providers WHERE account_id = ?", [account_id]
        ).fetchall()
        return catalog.BUILT_IN_IDS | {r[0] for r in custom}

    def _account_view(self, account_id: str) -> AccountView:
        keys = self._db.execute(
            "SELECT id, provider_id FROM provider_keys WHERE account_id = ?", [account_id]
        ).fetchall()
        listed = {p.id: frozenset(m.id.lower() for m in p.models) for p in catalog.BUILT_IN}
        for provider_id, models_json in self._db.execute(
            "SELECT provider_id, models_json FROM custom_providers WHERE account_id = ?",
            [account_id],
        ).fetchall():
            listed[provider_id] = frozenset(
                m.id.lower() for m in codec.models_from_json(models_json)
            )
        return AccountView(
            self._known_providers(account_id),
            {k: p for k, p in keys},
            {provider: models for provider, models in listed.items() if models},
        )

    @_serialised
    def account_view(self, account_id: str) -> AccountView:
        return self._account_view(account_id)

    def _sealed_columns(
        self, account_id: str, provider_id: str, row_id: str, version: int, value: Secret
    ) -> Columns:
        aad = codec.key_aad(account_id, provider_id, row_id, version, codec.AAD_VERSION)
        sealed = self._sealer.seal(value, aad)
        return {
            "kek_id": sealed.kek_id,
            "wrapped_key": sealed.wrapped_key,
            "ciphertext": sealed.ciphertext,
            "secret_version": version,
            "aad_version": codec.AAD_VERSION,
            "redacted_value": redact(value.reveal()),
            "rotate_time": self._clock(),
        }

    @_serialised
    def create_provider_key(
        self, account_id: str, *, provider_id: str, fields: ProviderKeyFields, value: Secret
    ) -> ProviderKey:
        with self._write() as revision:
            known = self._known_providers(account_id)
            preconditions.check_provider_known(provider_id, known, hint=True)
            # The id is chosen first: the sealed value is bound to it.
            row_id = ids.new_id(PROVIDER_KEYS.prefix)
            values: Columns = {
                "id": row_id,
                "account_id": account_id,
                "provider_id": provider_id,
                **_written(fields),
                **self._sealed_columns(account_id, provider_id, row_id, 1, value),
            }
            return self._insert(PROVIDER_KEYS, values, revision)

    @_serialised
    def rotate_provider_key(
        self, account_id: str, key_id: str, *, value: Secret, name: str, etag: str
    ) -> ProviderKey:
        with self._write() as revision:
            row = self._find(PROVIDER_KEYS, key_id, account_id)
            values = self._sealed_columns(
                account_id, row["provider_id"], key_id, row["secret_version"] + 1, value
            )
            if name:
                values["name"] = name
            return self._update(PROVIDER_KEYS, row, values, etag, revision)

    @_serialised
    def list_provider_keys(
        self, account_id: str, *, provider_id: str, after: int, limit: int
    ) -> Page[ProviderKey]:
        where: dict[str, Any] = {"account_id": account_id}
        if provider_id:
            # A typo must not read as "this provider has no keys".
            known = self._known_providers(account_id)
            preconditions.check_provider_known(provider_id, known, hint=False)
            where["provider_id"] = provider_id
        return self._page(PROVIDER_KEYS, after=after, limit=limit, where=where)

    @_serialised
    def reveal(self, key_id: str) -> Secret:
        row = self._find(PROVIDER_KEYS, key_id, None)
        return self._sealer.open(_sealed(row), _aad(row))

    @_serialised
    def sealed_kek_ids(self) -> list[str]:
        return sealed_kek_ids(self._db)

    @_serialised
    def kek_opens(self, kek_id: str) -> bool:
        # A few rows, so that one tampered row does not read as a wrong key.
        rows = self._db.query(
            "SELECT * FROM provider_keys WHERE kek_id = ? ORDER BY seq LIMIT 3", [kek_id]
        )
        for row in rows:
            try:
                self._sealer.open(_sealed(row), _aad(row))
            except SealError:
                continue
            return True
        return False

    @_serialised
    def record_usage(
        self, provider_keys: Sequence[KeyUsage], access_keys: Sequence[AccessKeyUsage]
    ) -> None:
        with self._db.atomic():
            record_key_usage(self._db, provider_keys, access_keys)

    # -- access keys -----------------------------------------------------------------------

    def _check_configuration(self, account_id: str, config_id: str | None) -> None:
        if config_id:
            found = self._db.execute(
                "SELECT 1 FROM configurations WHERE id = ? AND account_id = ?",
                [config_id, account_id],
            ).fetchone()
            preconditions.check_configuration_exists(config_id, found is not None)

    @_serialised
    def create_access_key(
        self, account_id: str, *, fields: AccessKeyFields, token: str
    ) -> AccessKey:
        with self._write() as revision:
            self._check_configuration(account_id, fields.configuration_id)
            values: Columns = {
                "account_id": account_id,
                **_written(fields),
                **_token_columns(token),
            }
            return self._insert(ACCESS_KEYS, values, revision)

    @_serialised
    def list_access_keys(
        self, account_id: str, *, configuration_id: str, after: int, limit: int
    ) -> Page[AccessKey]:
        where: dict[str, Any] = {"account_id": account_id}
        if configuration_id:
            self._check_configuration(account_id, configuration_id)
            where["configuration_id"] = configuration_id
        return self._page(ACCESS_KEYS, after=after, limit=limit, where=where)

    # -- configurations --------------------------------------------------------------------

    @_serialised
    def create_configuration(
        self, account_id: str, *, fields: ConfigurationFields
    ) -> Configuration:
        with self._write() as revision:
            normal = configuration.validated(fields.body, self._account_view(account_id))
            values: Columns = {"account_id": account_id, **_written(replace(fields, body=normal))}
            return self._insert(CONFIGURATIONS, values, revision)

    @_serialised
    def list_configurations(
        self, account_id: str, *, after: int, limit: int
    ) -> Page[Configuration]:
        return self._page(
            CONFIGURATIONS, after=after, limit=limit, where={"account_id": account_id}
        )

    # -- custom providers ------------------------------------------------------------------

    @_serialised
    def create_custom_provider(
        self, account_id: str, *, provider_id: str, fields: CustomProviderFields
    ) -> CustomProvider:
        with self._write() as revision:
            clash = self._db.execute(
                "SELECT id FROM custom_providers WHERE account_id = ? AND provider_id = ?",
                [account_id, provider_id],
            ).fetchone()
            preconditions.check_provider_id_free(provider_id, clash and clash[0])
            values: Columns = {
                "account_id": account_id,
                "provider_id": provider_id,
                **_written(fields),
            }
            return self._insert(CUSTOM_PROVIDERS, values, revision)

    @_serialised
    def list_custom_providers(
        self, account_id: str, *, after: int, limit: int
    ) -> Page[CustomProvider]:
        return self._page(
            CUSTOM_PROVIDERS, after=after, limit=limit, where={"account_id": account_id}
        )

    # -- per-proxy status ------------------------------------------------------------------

    @_serialised
    def data_planes(self) -> list[NodeStatus]:
        return [_node(row) for row in self._db.query("SELECT * FROM data_planes")]

    @_serialised
    def save_data_planes(self, saved: Sequence[NodeStatus], forgotten: Sequence[str]) -> None:
        # Bookkeeping: the revision does not move.
        with self._db.atomic():
            for node in sorted(saved, key=lambda n: n.node_id):
                row = _node_row(node)
                # A replica that saw a stream end never overwrites the row of the
                # replica the proxy moved to.
                sql = upsert_sql("data_planes", list(row), "node_id") + (
                    " WHERE data_planes.control_plane = excluded.control_plane"
                    " OR excluded.connected = 1 OR data_planes.connected = 0"
                )
                self._db.execute(sql, list(row.values()))
            for node_id in forgotten:
                self._db.execute("DELETE FROM data_planes WHERE node_id = ?", [node_id])


def _token_columns(token: str) -> Columns:
    """Only a hash of a token is kept, and a redacted form to show."""
    return {"token_hash": tokens.token_hash(token), "redacted_token": redact(token)}


def _node(row: Row) -> NodeStatus:
    rejection = None
    if row["rejected_version"] is not None:
        rejection = Rejection(
            Revision(row["rejected_version"], row["rejected_hash"]), row["rejected_message"]
        )
    applied = Revision(row["applied_version"], row["applied_hash"])
    return NodeStatus(
        node_id=row["node_id"],
        pool=row["pool"],
        build_version=row["build_version"],
        connected=bool(row["connected"]),
        connect_time_us=row["connect_time"],
        last_seen_us=row["last_seen_time"],
        sent_version=row["sent_version"],
        applied=applied if row["applied_version"] else None,
        rejection=rejection,
        rejected_time_us=row["rejected_time"],
        control_plane=row["control_plane"],
    )


def _node_row(node: NodeStatus) -> Row:
    return {
        "node_id": node.node_id,
        "pool": node.pool,
        "build_version": node.build_version,
        "connected": int(node.connected),
        "connect_time": node.connect_time_us,
        "last_seen_time": node.last_seen_us,
        "sent_version": node.sent_version,
        "applied_version": node.applied.version if node.applied else 0,
        "applied_hash": node.applied.sha256 if node.applied else "",
        "rejected_version": node.rejection.revision.version if node.rejection else None,
        "rejected_hash": node.rejection.revision.sha256 if node.rejection else "",
        "rejected_message": node.rejection.message if node.rejection else None,
        "rejected_time": node.rejected_time_us,
        "control_plane": node.control_plane,
    }


def sealed_kek_ids(db: Session) -> list[str]:
    """Every master key id some stored secret is wrapped with (before a store exists)."""
    rows = db.execute("SELECT DISTINCT kek_id FROM provider_keys ORDER BY kek_id")
    return [r[0] for r in rows.fetchall()]


def _sealed(key: Row) -> SealedSecret:
    return SealedSecret(key["kek_id"], key["wrapped_key"], key["ciphertext"])


def _aad(key: Row) -> bytes:
    return codec.key_aad(
        key["account_id"], key["provider_id"], key["id"], key["secret_version"], key["aad_version"]
    )
