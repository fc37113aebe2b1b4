"""Opening the SQLite database and the one way to write to it."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlite_utils import Database

from data_plane.shared.private_files import open_private

from .schema import MIGRATIONS


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


def current_revision(db: Database) -> int:
    row = db.execute("SELECT value FROM revision WHERE id = 1").fetchone()
    return int(row[0])


@contextmanager
def write(db: Database) -> Iterator[int]:
    """One write transaction; yields the new store revision.

    Every mutation goes through here, so the revision (the snapshot version)
    moves exactly when data changes, and a failed request rolls back both.
    """
    with db.atomic():
        db.execute("UPDATE revision SET value = value + 1 WHERE id = 1")
        yield current_revision(db)
