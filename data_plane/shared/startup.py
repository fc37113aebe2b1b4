"""Starting a process: listening addresses, configuration files, and the errors they raise.

Every Keyway listener (the control plane's gRPC port, the proxy, the mock upstream) binds
exclusively. gRPC shares ports by default (SO_REUSEPORT): a second control plane started on a
port in use would print "listening" and take part of the admin calls, on another database. So
no listener shares its port, and a second process on a port in use fails at once with a
`ListenError` saying so and what to change. The CLI prints a `StartupError` as one line and
exits non-zero, never with a traceback.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class StartupError(Exception):
    """The process cannot start as configured; the message says what to change."""


class ListenError(StartupError):
    """A listening address cannot be bound."""

    def __init__(self, address: str, what: str, problem: str, fix: str) -> None:
        super().__init__(f"cannot listen on {address} for the {what}: {problem}; {fix}")
        self.address = address
        self.what = what


# errno -> what to do about it. The OS's own wording is kept in the message.
_FIXES = {
    errno.EADDRINUSE: "another process (another keyway?) listens there: stop it, or choose "
    "another port (port 0 picks a free one)",
    errno.EADDRNOTAVAIL: "no network interface of this machine has that address: use "
    "127.0.0.1, 0.0.0.0 or one of its own addresses",
    errno.EACCES: "ports below 1024 need privileges: choose a port above 1023",
}
_DEFAULT_FIX = "choose another address"


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 hosts in brackets) -> (host, port); raises ValueError saying why."""
    host, sep, port = text.rpartition(":")
    host = host.strip()
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected HOST:PORT with a port from 0 to 65535, got {text!r}")
    if host.startswith("[") != host.endswith("]") or (":" in host and not host.startswith("[")):
        raise ValueError(f"write an IPv6 host in brackets, e.g. [::1]:8080, got {text!r}")
    return host.strip("[]"), int(port)


def _candidates(address: str, what: str) -> Iterator[tuple[int, tuple[str, int]]]:
    host, port = parse_address(address)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        problem = f"unknown host {host!r} ({error.strerror})"
        raise ListenError(address, what, problem, _DEFAULT_FIX) from None
    seen: set[tuple[int, tuple[str, int]]] = set()
    for family, _, _, _, sockaddr in infos:
        candidate = (family, (str(sockaddr[0]), int(sockaddr[1])))
        if candidate not in seen:
            seen.add(candidate)
            yield candidate


def _reason(error: OSError) -> str:
    # The OS's wording alone: some callers append the address to strerror.
    if error.errno and error.errno > 0:
        return os.strerror(error.errno).lower()
    return (error.strerror or str(error)).lower()


def _refused(address: str, what: str, error: OSError) -> ListenError:
    return ListenError(address, what, _reason(error), _FIXES.get(error.errno or 0, _DEFAULT_FIX))


@contextmanager
def _listen_errors(address: str, what: str) -> Iterator[None]:
    try:
        yield
    except ValueError as error:
        raise ListenError(address, what, str(error), _DEFAULT_FIX) from None
    except OSError as error:
        raise _refused(address, what, error) from None


def bind(address: str, what: str, *, backlog: int = 2048) -> socket.socket:
    """A listening socket on `address` that no other socket may share."""
    with _listen_errors(address, what):
        family, sockaddr = next(_candidates(address, what))
        # create_server sets SO_REUSEADDR (restarts while old connections linger in
        # TIME_WAIT) but not SO_REUSEPORT, which would let a second listener share the port.
        return socket.create_server(sockaddr, family=family, backlog=backlog, reuse_port=False)


def check_free(address: str, what: str) -> None:
    """Raises `ListenError` if `address` cannot be listened on right now.

    For listeners that another library binds (gRPC), which reports only "failed to bind":
    probing first gives the OS's reason. A name with several addresses (`localhost`) is
    refused when one of them is in use, or when none can be bound at all (a machine
    without IPv6 still listens on `localhost`'s IPv4 address). Port 0 is always free.
    """
    with _listen_errors(address, what):
        failures: list[OSError] = []
        candidates = [c for c in _candidates(address, what) if c[1][1] != 0]
        for family, sockaddr in candidates:
            try:
                with socket.socket(family, socket.SOCK_STREAM) as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind(sockaddr)
            except OSError as error:
                if error.errno in (errno.EADDRINUSE, errno.EACCES):
                    raise
                failures.append(error)
        if candidates and len(failures) == len(candidates):
            raise failures[0]


def read_file(path: Path, flag: str) -> bytes:
    """The bytes of a file named on the command line; a StartupError naming the flag if not."""
    try:
        return path.read_bytes()
    except OSError as error:
        raise StartupError(f"cannot read {flag} {path}: {_reason(error)}") from None
