"""The store on PostgreSQL (psycopg 3, a connection pool): for several control-plane
replicas on one database.

`open_store(url, …)` migrates the schema under an advisory lock (replicas starting
together do not race) and returns the shared SQL store (`relational`) on a pool session,
with the snapshot reader and sealed-row passes on connections of their own and a
`RevisionWatcher` that tells the store's commit listeners about writes made through any
other replica (LISTEN/NOTIFY as the wake-up, a periodic revision check as the guarantee).

The URL is libpq's (`postgresql://user:password@host:5432/db?sslmode=require`); a
`options=-csearch_path=…` parameter puts Keyway's tables in a schema of their own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import psycopg

from control_plane.domain.errors import Unavailable
from control_plane.domain.quotas import DEFAULT_QUOTAS, Quotas
from control_plane.secrets.sealing import Sealer
from control_plane.store.relational.sealed_rows import SealedRows
from control_plane.store.relational.session import Session
from control_plane.store.relational.snapshot_reader import SnapshotReader
from control_plane.store.relational.store import RelationalStore, sealed_kek_ids

from .database import PoolSession, RevisionWatcher, open_pool
from .schema import migrate

__all__ = ["open_store"]

WORKERS = 8
"""Store executor threads, each with one pooled connection while it runs a method."""


def open_store(
    url: str,
    sealer: Sealer | Callable[[list[str]], Sealer],
    *,
    quotas: Quotas = DEFAULT_QUOTAS,
    timeout: float = 5.0,
    poll: float = 0.5,
) -> RelationalStore:
    """Connects (failing after `timeout` seconds), migrates and opens the store.

    `sealer` may be chosen from the master key ids the stored secrets are sealed with
    (`sealer(ids)`), before anything is opened with it.
    """
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(timeout))) as conn:
            migrate(conn)
    except psycopg.OperationalError:
        raise Unavailable("the database cannot be reached") from None
    pool = open_pool(url, size=WORKERS + 2, name="keyway-store")
    session = PoolSession(pool, timeout=timeout)
    try:
        with session.held():
            chosen = sealer if isinstance(sealer, Sealer) else sealer(sealed_kek_ids(session))

        @contextlib.contextmanager
        def for_a_pass() -> Iterator[Session]:
            with session.held():
                yield session

        return RelationalStore(
            session,
            chosen,
            snapshots=SnapshotReader(session, chosen),
            sealed=SealedRows(for_a_pass, chosen),
            workers=WORKERS,
            watcher=RevisionWatcher(url, poll=poll),
            quotas=quotas,
        )
    except BaseException:
        session.close()
        raise
