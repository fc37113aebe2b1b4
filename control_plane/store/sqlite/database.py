"""Opening the SQLite database, and the session the shared SQL code runs on."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from control_plane.store.relational.session import Cursor
from data_plane.shared.private_files import open_private

from .schema import MIGRATIONS, SQLITE


class SqliteSession:
    """`Session` on one sqlite-utils connection, behind a reentrant lock."""

    dialect = SQLITE

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.RLock()
        self._jobs: dict[str, threading.Lock] = {}

    @contextmanager
    def exclusive(self, job: str, *, wait: bool) -> Iterator[bool]:
        # One process owns the file (the data directory's lock keeps others out).
        with self._lock:
            lock = self._jobs.setdefault(job, threading.Lock())
        mine = lock.acquire(blocking=wait)
        try:
            yield mine
        finally:
            if mine:
                lock.release()

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            yield

    @contextmanager
    def atomic(self) -> Iterator[None]:
        with self._db.atomic():
            yield

    def announce(self, revision: int) -> None:
        return None  # one process writes the file: its own listeners are told

    reading = atomic  # WAL: a deferred transaction reads one state

    @property
    def in_transaction(self) -> bool:
        return bool(self._db.conn.in_transaction)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        cursor: Cursor = self._db.execute(sql, list(params))
        return cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        changed: int = self._db.conn.executemany(sql, rows).rowcount
        return changed

    def query(self, sql: str, params: Sequence[Any] = ()) -> Iterable[dict[str, Any]]:
        rows: Iterable[dict[str, Any]] = self._db.query(sql, list(params))
        return rows

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _make_private(path: Path) -> None:
    # SQLite creates the -wal and -shm files with the database file's mode, so a 0600
    # database keeps all three private; files left 0644 by older versions are tightened.
    for name in (path.name, f"{path.name}-wal", f"{path.name}-shm"):
        candidate = path.with_name(name)
        if name == path.name or candidate.exists():
            os.close(open_private(candidate))


def open_database(path: Path | str) -> Database:
    """Opens (creating if needed, mode 0600) and migrates the database.

    WAL lets readers (snapshot compilation) run beside the single writer;
    foreign keys are off by default in SQLite, so they are switched on here.
    Migrations run under the data directory's start-up lock (`server.open_data_dir`).
    """
    if str(path) == ":memory:":
        db = Database(memory=True)
    else:
        _make_private(Path(path))
        db = Database(sqlite3.connect(str(path), check_same_thread=False))
        db.enable_wal()
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA busy_timeout = 5000")
    MIGRATIONS.apply(db)
    return db


def reader_session(path: Path) -> SqliteSession:
    """A read-only connection of its own (for the snapshot reader)."""
    conn = sqlite3.connect(
        f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
    )
    return SqliteSession(Database(conn))


@contextmanager
def pass_session(path: Path) -> Iterator[SqliteSession]:
    """A connection for one sealed-row pass, closed after it."""
    with closing(sqlite3.connect(path, timeout=5.0)) as conn:
        yield SqliteSession(Database(conn))
