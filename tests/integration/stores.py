"""Stores for tests: an adapter opened directly, and read-only looks into the SQLite file.

`ADAPTERS` names every store adapter the contract tests run against (a function that
opens an empty store: SQLite in a temporary directory, PostgreSQL in a new schema of the
test session's server, `tests.postgres`); `BACKENDS` and `settings_for` run a whole
control plane on either.
"""

from __future__ import annotations

import base64
import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import psycopg

from control_plane.domain.quotas import DEFAULT_QUOTAS, Quotas
from control_plane.secrets.keyring import EnvKeyProvider
from control_plane.secrets.sealing import Sealer
from control_plane.server import Settings
from control_plane.store import postgres
from control_plane.store.port import Store
from control_plane.store.sqlite import SqliteStore, open_store
from tests.postgres import fresh_url

TEST_KEYS = "test-kek:" + base64.b64encode(bytes(range(32))).decode()
"""A fixed master key for stores made here (never a deployment's)."""


def test_sealer() -> Sealer:
    return Sealer(EnvKeyProvider(TEST_KEYS))


def open_sqlite(directory: Path, quotas: Quotas = DEFAULT_QUOTAS) -> SqliteStore:
    directory.mkdir(parents=True, exist_ok=True)
    return open_store(directory / "keyway.db", test_sealer(), quotas=quotas)


def open_postgres(directory: Path, quotas: Quotas = DEFAULT_QUOTAS) -> Store:
    """A store in a new schema of the test session's PostgreSQL server."""
    return postgres.open_store(fresh_url(), test_sealer(), quotas=quotas)


ADAPTERS: dict[str, Callable[[Path, Quotas], Store]] = {
    "sqlite": open_sqlite,
    "postgresql": open_postgres,
}


BACKENDS = ("sqlite", "postgresql")
"""The databases a control plane runs on, for suites that run against each."""


def settings_for(backend: str, tmp_path: Path) -> Settings:
    """A control plane's settings on 127.0.0.1:0 over `backend` (a fresh database)."""
    settings = Settings(listen="127.0.0.1:0", data_dir=tmp_path / "data")
    if backend == "sqlite":
        return settings
    return replace(
        settings, database_url=fresh_url(), master_key_file=tmp_path / "keys" / "master.keys"
    )


@contextlib.contextmanager
def opened(adapter: str, directory: Path, quotas: Quotas = DEFAULT_QUOTAS) -> Iterator[Store]:
    store = ADAPTERS[adapter](directory, quotas)
    try:
        yield store
    finally:
        store.close()


def _read(data_dir: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Rows of a committed state, on a read-only connection of our own."""
    uri = f"file:{data_dir / 'keyway.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        return conn.execute(sql, params).fetchall()


def provider_key_ids(data_dir: Path) -> list[str]:
    """Every provider key in the SQLite file of a data directory, in creation order."""
    return [str(r[0]) for r in _read(data_dir, "SELECT id FROM provider_keys ORDER BY seq")]


def rows_of(settings: Settings, table: str, account_id: str) -> int:
    """How many rows of `table` belong to the account, in whichever database it is."""
    sql = f"SELECT count(*) FROM {table} WHERE account_id = ?"
    if not settings.database_url:
        return int(str(_read(settings.data_dir, sql, (account_id,))[0][0]))
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(sql.replace("?", "%s"), [account_id]).fetchone()
        assert row is not None
        return int(row[0])
