"""A real control plane on 127.0.0.1:0 with a temporary data directory, for tests.

The server runs on its own event loop in a background thread so that tests
can use the ordinary synchronous gRPC client (and the CLI) against it. The
`control_plane` fixture (conftest.py) is built from these helpers.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc

from control_plane.secrets.keyring import KeyProvider
from control_plane.server import ControlPlane, Settings

T = TypeVar("T")


@dataclass
class RunningControlPlane:
    address: str
    operator_token: str
    admin_token: str
    data_dir: Path
    server: ControlPlane
    channel: grpc.Channel

    @staticmethod
    def auth(token: str) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {token}"),)

    @property
    def admin(self) -> tuple[tuple[str, str]]:
        return self.auth(self.admin_token)

    @property
    def operator(self) -> tuple[tuple[str, str]]:
        return self.auth(self.operator_token)


class BackgroundLoop:
    """An event loop on its own thread, closed cleanly on `close()`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


def start_control_plane(
    settings: Settings, key_provider: KeyProvider | None = None
) -> tuple[ControlPlane, BackgroundLoop]:
    background = BackgroundLoop("control-plane")

    async def make() -> ControlPlane:
        server = ControlPlane(settings, key_provider)
        await server.start()
        return server

    return background.run(make()), background


def stop_control_plane(server: ControlPlane, background: BackgroundLoop) -> None:
    # Generous: on PostgreSQL a stop joins the revision watcher and waits for the pool's
    # connections, each bounded by seconds, and a loaded machine adds its share.
    background.run(server.stop(grace=0.5), timeout=30)
    background.close()


@contextmanager
def connected(server: ControlPlane, data_dir: Path) -> Iterator[RunningControlPlane]:
    """A started control plane with its tokens read and an admin channel open."""
    address = f"127.0.0.1:{server.port}"
    channel = grpc.insecure_channel(address)
    try:
        yield RunningControlPlane(
            address=address,
            operator_token=(data_dir / "operator.token").read_text().strip(),
            admin_token=(data_dir / "admin.token").read_text().strip(),
            data_dir=data_dir,
            server=server,
            channel=channel,
        )
    finally:
        channel.close()
