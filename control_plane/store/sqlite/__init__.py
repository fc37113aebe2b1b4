"""The store on SQLite (sqlite-utils, WAL): the embedded default, one file in the data dir.

`open_store` migrates the file and returns the shared SQL store (`relational`) on a
`SqliteSession`, with its snapshot reader and sealed-row passes, each on a connection of
its own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from control_plane.domain.quotas import DEFAULT_QUOTAS, Quotas
from control_plane.secrets.sealing import Sealer
from control_plane.store.relational.sealed_rows import SealedRows
from control_plane.store.relational.snapshot_reader import SnapshotReader
from control_plane.store.relational.store import RelationalStore, sealed_kek_ids

from .database import SqliteSession, open_database, pass_session, reader_session

__all__ = ["SqliteStore", "open_store"]

SqliteStore = RelationalStore


def open_store(
    path: Path,
    sealer: Sealer | Callable[[list[str]], Sealer],
    *,
    quotas: Quotas = DEFAULT_QUOTAS,
) -> RelationalStore:
    """Opens (creating and migrating) the database at `path`.

    `sealer` may be chosen from the master key ids the stored secrets are sealed with
    (`sealer(ids)`), before anything is opened with it.
    """
    session = SqliteSession(open_database(path))
    try:
        with session.held():
            chosen = sealer if isinstance(sealer, Sealer) else sealer(sealed_kek_ids(session))
        return RelationalStore(
            session,
            chosen,
            snapshots=SnapshotReader(reader_session(path), chosen),
            sealed=SealedRows(functools.partial(pass_session, path), chosen),
            quotas=quotas,
        )
    except BaseException:
        session.close()
        raise
