"""A throwaway PostgreSQL server for tests: Debian's binaries, a temp dir, a free port.

PostgreSQL refuses to run as root, so when the tests run as root the cluster belongs
to the `postgres` user and every command runs through `runuser -u postgres --`. One
server per test session; each test gets a database of its own (`fresh_database`), so
tests never see each other's rows. `stop()`/`start()` restart the server on the same
port and directory, for the database-down scenarios.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def binaries() -> Path | None:
    """The newest installed server's bin directory (None when PostgreSQL is missing)."""
    found = sorted(glob.glob(_BIN_GLOB), key=lambda p: int(Path(p).parent.name))
    return Path(found[-1]) if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    def __init__(self, bin_dir: Path) -> None:
        self._bin = bin_dir
        self._as_root = os.geteuid() == 0
        self._dir = Path(tempfile.mkdtemp(prefix="keyway-pg-"))
        self.data = self._dir / "data"
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)
        if self._as_root:
            entry = pwd.getpwnam("postgres")
            os.chown(self._dir, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            *("-D", str(self.data), "-U", "postgres", "--auth=trust"),
            *("--locale=C", "--encoding=UTF8", "--no-sync"),
        )

    def _command(self, tool: str, *args: str) -> list[str]:
        command = [str(self._bin / tool), *args]
        return ["runuser", "-u", "postgres", "--", *command] if self._as_root else command

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(self._command(tool, *args), check=True, capture_output=True)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_of(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 30.0) -> None:
        # fsync off and no unix socket: a test cluster, on loopback only.
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": "",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "300",
        }
        flags = [part for name, value in settings.items() for part in ("-c", f"{name}={value}")]
        self._process = subprocess.Popen(
            self._command("postgres", "-D", str(self.data), "-p", str(self.port), *flags),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        """A fast shutdown: connections are cut, like a database restarting."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def fresh_database(self) -> str:
        """The URL of a new, empty database."""
        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_of(name)

    def close(self) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(self._dir)


_shared: PostgresServer | None = None


def shared_server() -> PostgresServer:
    """The session's server, started on first use and stopped when the tests end."""
    global _shared
    if _shared is None:
        found = binaries()
        if found is None:
            import pytest

            pytest.skip("PostgreSQL is not installed (make test installs it with apt)")
        server = PostgresServer(found)
        server.start()
        atexit.register(server.close)
        _shared = server
    return _shared


def fresh_url() -> str:
    """A URL whose tables live in a new, empty schema of the shared server's database
    (much quicker than a database per test)."""
    server = shared_server()
    name = f"t{os.getpid()}_{next(server._names)}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    return f"{server.url}?options=-csearch_path%3D{name}"


@contextlib.contextmanager
def own_server() -> Iterator[PostgresServer]:
    """A server for one test only (one that stops and starts it, for instance)."""
    found = binaries()
    if found is None:
        import pytest

        pytest.skip("PostgreSQL is not installed (make test installs it with apt)")
    server = PostgresServer(found)
    server.start()
    try:
        yield server
    finally:
        server.close()
