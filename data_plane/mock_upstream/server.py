"""Serving the mock upstream: in an existing event loop (tests) or as a process (CLI, benches)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from types import TracebackType

import uvloop

from data_plane.shared.serving import EmbeddedServer
from data_plane.shared.startup import bind

from .app import MockUpstream

log = logging.getLogger("keyway.mock_upstream")


class MockServer:
    """The mock upstream on a real socket, started inside the running event loop.

    ``listen`` may use port 0; ``port``, ``url`` and ``base_url`` tell where it
    ended up once constructed. ``app`` is the in-process view (``app.requests``).
    """

    def __init__(
        self,
        listen: str = "127.0.0.1:0",
        *,
        latency_ms: float = 0.0,
        chunk_delay_ms: float = 1.0,
    ) -> None:
        self.app = MockUpstream(latency_ms=latency_ms, chunk_delay_ms=chunk_delay_ms)
        self._socket = bind(listen, "mock upstream")
        host, self.port = self._socket.getsockname()[:2]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{self.port}"
        self.base_url = f"{self.url}/v1"
        self._server = EmbeddedServer(
            self.app, self._socket, http="httptools", timeout_graceful_shutdown=2
        )

    async def start(self) -> None:
        await self._server.start()

    async def stop(self) -> None:
        """Stop accepting, let in-flight responses end, then close (within a few ms)."""
        # Held and stalled requests would otherwise wait for clients that may never leave.
        self.app.release()
        await self._server.stop()

    async def __aenter__(self) -> MockServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def main_async(
    listen: str,
    latency_ms: float = 0.0,
    chunk_delay_ms: float = 1.0,
    on_ready: Callable[[MockServer], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (or until cancelled), then stop cleanly.

    ``on_ready`` runs once the socket accepts connections, e.g. to print the
    address actually bound when ``listen`` asks for port 0; without it, that is logged.
    """
    server = MockServer(listen, latency_ms=latency_ms, chunk_delay_ms=chunk_delay_ms)
    await server.start()
    if on_ready is not None:
        on_ready(server)
    else:
        log.info(
            "mock upstream listening on %s (provider base URL %s, latency %g ms)",
            server.url,
            server.base_url,
            latency_ms,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        await stop.wait()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await server.stop()


def run(
    host: str = "127.0.0.1", port: int = 9000, latency_ms: float = 0.0, chunk_delay_ms: float = 1.0
) -> None:
    """Blocking entry point on uvloop, which the benchmark figures assume."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main_async(f"{host}:{port}", latency_ms, chunk_delay_ms))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m data_plane.mock_upstream.server")
    parser.add_argument("--listen", default="127.0.0.1:9000")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--chunk-delay-ms", type=float, default=1.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    host, _, port = args.listen.rpartition(":")
    run(host or "127.0.0.1", int(port), args.latency_ms, args.chunk_delay_ms)


if __name__ == "__main__":
    main()
