"""The store on SQLite (sqlite-utils, WAL): the embedded default, one file in the data dir.

`open_store` migrates the file and returns a `SqliteStore` with its snapshot reader and
sealed-row passes, each on a connection of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from control_plane.domain.quotas import DEFAULT_QUOTAS, Quotas
from control_plane.secrets.sealing import Sealer

from .database import open_database
from .sealed_rows import SealedRows
from .snapshot_reader import SnapshotReader
from .store import SqliteStore, sealed_kek_ids

__all__ = ["SqliteStore", "open_store"]


def open_store(
    path: Path,
    sealer: Sealer | Callable[[list[str]], Sealer],
    *,
    quotas: Quotas = DEFAULT_QUOTAS,
) -> SqliteStore:
    """Opens (creating and migrating) the database at `path`.

    `sealer` may be chosen from the master key ids the stored secrets are sealed with
    (`sealer(ids)`), before anything is opened with it.
    """
    db = open_database(path)
    try:
        chosen = sealer if isinstance(sealer, Sealer) else sealer(sealed_kek_ids(db))
        return SqliteStore(
            db,
            chosen,
            snapshots=SnapshotReader(path, chosen),
            sealed=SealedRows(path, chosen),
            quotas=quotas,
        )
    except BaseException:
        db.close()
        raise
