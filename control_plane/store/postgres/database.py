"""Sessions on a psycopg 3 connection pool, and the watcher that sees other replicas' writes.

A store method runs on one of the store's executor threads and borrows one pooled
connection for its whole duration (`PoolSession.held`), in autocommit mode with explicit
transactions, so no transaction outlives its method. A connection that was cut (the
server restarted) is noticed when it is borrowed (`check`) and replaced; while the
server is down, borrowing or using a connection fails with `Unavailable`, which the
admin API answers as UNAVAILABLE; nothing half-written stays, since a transaction that
cannot commit is rolled back by the server.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from control_plane.domain.errors import Unavailable
from control_plane.store.relational.session import Cursor

from .schema import POSTGRES

log = logging.getLogger("keyway.control_plane.store")

CHANNEL = "keyway_revision"
"""NOTIFY channel of revision moves; the payload is `schema:revision`."""

_SLICE = 0.1
"""Seconds the watcher waits for a notice at a time (and so, at most, to close)."""

_UNAVAILABLE = "the database is unavailable: nothing was written; try again"


def _sql(statement: str) -> str:
    # The shared SQL uses `?`; psycopg wants `%s` (and a literal % doubled).
    return statement.replace("%", "%%").replace("?", "%s")


class _Held(threading.local):
    conn: psycopg.Connection[Any] | None = None
    depth = 0


class PoolSession:
    """`Session` over a pool: each thread uses the connection its `held()` borrowed."""

    dialect = POSTGRES

    def __init__(self, pool: ConnectionPool[psycopg.Connection[Any]], *, timeout: float) -> None:
        self._pool = pool
        self._timeout = timeout
        self._held = _Held()

    @contextmanager
    def held(self) -> Iterator[None]:
        held = self._held
        if held.conn is not None:
            held.depth += 1
            try:
                yield
            finally:
                held.depth -= 1
            return
        try:
            with self._pool.connection(timeout=self._timeout) as conn:
                held.conn = conn
                try:
                    yield
                finally:
                    held.conn = None
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as error:
            log.warning("database call failed: %s", type(error).__name__)
            raise Unavailable(_UNAVAILABLE) from None

    @contextmanager
    def exclusive(self, job: str, *, wait: bool) -> Iterator[bool]:
        # A session-level advisory lock on a connection of its own, released at the end
        # (or by the server, if this replica dies holding it).
        key = "hashtext('keyway.job.' || current_schema() || '.' || %s)"
        try:
            with self._pool.connection(timeout=self._timeout) as conn:
                if wait:
                    conn.execute(f"SELECT pg_advisory_lock({key})", [job])
                    mine = True
                else:
                    row = conn.execute(f"SELECT pg_try_advisory_lock({key})", [job]).fetchone()
                    mine = bool(row and row[0])
                try:
                    yield mine
                finally:
                    if mine and not conn.closed:
                        conn.execute(f"SELECT pg_advisory_unlock({key})", [job])
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as error:
            log.warning("database call failed: %s", type(error).__name__)
            raise Unavailable(_UNAVAILABLE) from None

    def _conn(self) -> psycopg.Connection[Any]:
        conn = self._held.conn
        if conn is None:
            raise RuntimeError("a store statement outside held()")
        return conn

    @contextmanager
    def atomic(self) -> Iterator[None]:
        with self._conn().transaction():
            yield

    @contextmanager
    def reading(self) -> Iterator[None]:
        conn = self._conn()
        # One snapshot for every statement, as WAL gives SQLite's reader.
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            yield
        finally:
            conn.execute("COMMIT")

    def announce(self, revision: int) -> None:
        # Delivered at commit, only if it commits: the wake-up of the other replicas.
        self._conn().execute(
            "SELECT pg_notify(%s, current_schema() || ':' || %s)", [CHANNEL, str(revision)]
        )

    @property
    def in_transaction(self) -> bool:
        conn = self._held.conn
        return (
            conn is not None and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
        )

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        cursor: Cursor = self._conn().execute(_sql(sql), list(params))
        return cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        cursor = self._conn().cursor()
        cursor.executemany(_sql(sql), rows)
        return cursor.rowcount

    def query(self, sql: str, params: Sequence[Any] = ()) -> Iterable[dict[str, Any]]:
        cursor = self._conn().cursor(row_factory=dict_row)
        rows: list[dict[str, Any]] = cursor.execute(_sql(sql), list(params)).fetchall()
        return rows

    def close(self) -> None:
        self._pool.close()


def open_pool(url: str, *, size: int, name: str) -> ConnectionPool[psycopg.Connection[Any]]:
    """A pool of autocommit connections, checked when borrowed (so a restart is survived)."""
    return ConnectionPool(
        url,
        min_size=1,
        max_size=size,
        kwargs={"autocommit": True},
        check=ConnectionPool.check_connection,
        name=name,
        open=True,
        reconnect_timeout=float("inf"),
    )


class RevisionWatcher:
    """`Watcher` on PostgreSQL: LISTEN for other replicas' commits, and a revision check
    every `poll` seconds, since notifications sent while it was disconnected are lost."""

    def __init__(self, url: str, *, poll: float = 0.5) -> None:
        self._url = url
        self._poll = poll
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, tell: Callable[[int], None]) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(tell,), name="keyway-revision-watcher", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=self._poll + 5)

    def _run(self, tell: Callable[[int], None]) -> None:
        failures = 0
        while not self._closed.is_set():
            try:
                self._watch(tell)
            except (psycopg.OperationalError, psycopg.InterfaceError):
                failures += 1
                # Jittered, capped: a database back from a restart is not stormed.
                self._closed.wait(min(5.0, 0.1 * 2 ** min(failures, 6)) * random.uniform(0.5, 1))
            else:
                failures = 0

    def _watch(self, tell: Callable[[int], None]) -> None:
        with psycopg.connect(self._url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            checked = 0.0
            while not self._closed.is_set():
                # Short waits, so that closing never waits long; whatever woke us (a
                # notice, maybe for another schema of this database, or the poll), the
                # revision row says what is committed.
                woken = any(True for _ in conn.notifies(timeout=_SLICE, stop_after=1))
                if not woken and time.monotonic() - checked < self._poll:
                    continue
                checked = time.monotonic()
                row = conn.execute("SELECT value FROM revision WHERE id = 1").fetchone()
                if row is not None:
                    tell(int(row[0]))
