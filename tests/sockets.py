"""A port held the way gRPC holds one by default (SO_REUSEPORT), for listener tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def shareable_port() -> Iterator[str]:
    """`127.0.0.1:PORT` of a listener that would share its port if a newcomer asked to."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield f"127.0.0.1:{holder.getsockname()[1]}"
