"""Opening the SQLite database and the one way to write to it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlite_utils import Database

from .schema import MIGRATIONS


def open_database(path: Path | str) -> Database:
    """Opens (creating if needed) and migrates the database.

    WAL lets readers (snapshot compilation) run beside the single writer;
    foreign keys are off by default in SQLite, so they are switched on here.
    """
    if str(path) == ":memory:":
        db = Database(memory=True)
    else:
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
