"""uvicorn inside an event loop that something else owns (the CLI, a test, the control plane).

The embedder owns the signals (uvicorn would install its own and re-raise them), binds the
socket itself (see `startup.bind`), and stops the server in a few milliseconds: uvicorn's own
shutdown polls every 100 ms, which a suite that starts a server per test pays many times over.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class EmbeddedServer:
    """`app` served on the bound `sock`; `config` is passed to `uvicorn.Config`."""

    def __init__(self, app: Any, sock: socket.socket, **config: Any) -> None:
        self._socket = sock
        self._server = _Server(
            uvicorn.Config(
                app,
                lifespan="off",
                access_log=False,
                log_config=None,
                proxy_headers=False,
                server_header=False,
                **config,
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # surfaces the start-up error
            await asyncio.sleep(0.005)

    async def stop(self, grace: float = 2.0) -> None:
        """Stop accepting, let in-flight responses end (at most `grace` s), then close."""
        server = self._server
        server.should_exit = True
        for listener in getattr(server, "servers", []):
            listener.close()
        state = server.server_state
        for connection in list(state.connections):
            connection.shutdown()  # closes idle keep-alive connections at once
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                while state.tasks:  # noqa: ASYNC110 - uvicorn exposes no event for this
                    await asyncio.sleep(0.002)
        for task in list(state.tasks):
            task.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._socket.close()
