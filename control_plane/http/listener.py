"""The control plane's HTTP listener: uvicorn inside the control plane's own event loop.

It follows the gRPC port's transport rules: TLS with the same certificate and key (and
client certificates when `--tls-client-ca` is set), plaintext only on loopback unless
`--allow-insecure-remote`, an exclusive port.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from data_plane.shared.startup import bind

WHAT = "HTTP API"


@dataclass(frozen=True, slots=True)
class Tls:
    cert: Path
    key: Path
    client_ca: Path | None = None


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The control plane owns the signals (uvicorn would re-raise them).
        yield


class HttpListener:
    """Binds at construction (so `port` is known and a taken port fails early)."""

    def __init__(self, app: ASGIApp, listen: str, tls: Tls | None) -> None:
        self._socket = bind(listen, WHAT)
        self.port: int = self._socket.getsockname()[1]
        self.scheme = "http" if tls is None else "https"
        config = uvicorn.Config(
            app,
            http="httptools",
            lifespan="off",
            access_log=False,
            log_config=None,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=2,
            ssl_certfile=None if tls is None else str(tls.cert),
            ssl_keyfile=None if tls is None else str(tls.key),
            ssl_ca_certs=None if tls is None or tls.client_ca is None else str(tls.client_ca),
            ssl_cert_reqs=ssl.CERT_REQUIRED
            if tls is not None and tls.client_ca is not None
            else ssl.CERT_NONE,
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(
            self._server.serve(sockets=[self._socket]), name="http-listener"
        )
        while not self._server.started:
            if self._task.done():
                self._task.result()  # surfaces the start-up error
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        """Stops accepting, lets in-flight requests end (within a couple of seconds)."""
        server = self._server
        server.should_exit = True
        for listener in getattr(server, "servers", []):
            listener.close()
        state = server.server_state
        for connection in list(state.connections):
            connection.shutdown()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                while state.tasks:  # noqa: ASYNC110 - uvicorn exposes no event for this
                    await asyncio.sleep(0.005)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._socket.close()
