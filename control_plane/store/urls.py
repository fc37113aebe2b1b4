"""`--database-url`: which adapter, and where.

- empty (the default): SQLite at `<data dir>/keyway.db`;
- `sqlite:///relative/path.db`, `sqlite:////absolute/path.db`: SQLite there;
- `postgresql://…` (or `postgres://…`): PostgreSQL, the URL handed to libpq as it is.

Messages about a URL never quote it: it may carry a password.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from control_plane.domain.quotas import DEFAULT_QUOTAS, Quotas
from control_plane.secrets.sealing import Sealer

from .port import Store

_POSTGRES = ("postgresql://", "postgres://")
_SQLITE = "sqlite:///"


class DatabaseUrlError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Database:
    url: str = field(repr=False)  # it may hold a password
    sqlite_path: Path | None
    """Set for SQLite; None for PostgreSQL (shared by replicas)."""

    @property
    def shared(self) -> bool:
        return self.sqlite_path is None

    def describe(self) -> str:
        """For logs and messages (no credentials)."""
        return f"SQLite at {self.sqlite_path}" if self.sqlite_path else "PostgreSQL"


def parse(url: str, data_dir: Path) -> Database:
    if not url:
        return Database("", data_dir / "keyway.db")
    if url.startswith(_SQLITE):
        rest = url[len(_SQLITE) :]
        if not rest:
            raise DatabaseUrlError("--database-url: sqlite:/// needs a file path after it")
        return Database(url, Path(rest))
    if url.startswith(_POSTGRES):
        return Database(url, None)
    scheme = url.split(":", 1)[0] if ":" in url else "(none)"
    raise DatabaseUrlError(
        f"--database-url: unsupported scheme '{scheme[:20]}': use sqlite:///PATH or "
        "postgresql://USER@HOST:PORT/DB"
    )


def open_database_store(
    database: Database,
    sealer: Sealer | Callable[[list[str]], Sealer],
    quotas: Quotas = DEFAULT_QUOTAS,
) -> Store:
    if database.sqlite_path is not None:
        from .sqlite import open_store as open_sqlite

        return open_sqlite(database.sqlite_path, sealer, quotas=quotas)
    from .postgres import open_store as open_postgres

    return open_postgres(database.url, sealer, quotas=quotas)
