"""What the shared SQL code needs of a database connection, and what differs per dialect.

Statements are written once, with `?` placeholders and SQL both databases accept; an
adapter's session translates the placeholders if its driver wants others. What cannot be
written once (the byte length of a text) is a `Dialect` attribute.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    byte_length: str
    """An expression of `{}` (a TEXT expression): its length in bytes."""


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Session(Protocol):
    """One connection (or, for a pool, the connection the calling thread holds)."""

    dialect: Dialect

    def held(self) -> AbstractContextManager[None]:
        """The scope of one store method: a lock on SQLite; on a pool, a connection kept
        by this thread until the outermost scope ends. Reentrant."""
        ...

    def atomic(self) -> AbstractContextManager[None]:
        """A transaction; nested, a savepoint. Needs `held()`."""
        ...

    def exclusive(self, job: str, *, wait: bool) -> AbstractContextManager[bool]:
        """See `Store.exclusive`."""
        ...

    def announce(self, revision: int) -> None:
        """In a write transaction that moved the revision: tell other processes, at
        commit, if the database can (nothing on SQLite)."""
        ...

    def reading(self) -> AbstractContextManager[None]:
        """A read-only transaction whose statements all see one committed state."""
        ...

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """Rows as tuples."""
        ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """One statement for each row; the rows it changed, summed over all of them.
        Needs `atomic()` (the SQLite adapter runs it on the bare connection)."""
        ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> Iterable[dict[str, Any]]:
        """Rows as dicts by column name."""
        ...

    def close(self) -> None: ...


def insert_sql(table: str, columns: Sequence[str]) -> str:
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608


def update_sql(table: str, columns: Sequence[str], key: str) -> str:
    assigned = ", ".join(f"{c} = ?" for c in columns)
    return f"UPDATE {table} SET {assigned} WHERE {key} = ?"  # noqa: S608


def upsert_sql(table: str, columns: Sequence[str], key: str) -> str:
    updated = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
    return f"{insert_sql(table, columns)} ON CONFLICT ({key}) DO UPDATE SET {updated}"
