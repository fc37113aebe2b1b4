"""N proxies' snapshot clients on one background event loop, with apply times recorded.

Each proxy is a real `SnapshotClient` (its own channel and discovery stream) feeding a
`SnapshotState` that notes when each version was swapped in. They share one process and one
GIL, so N proxies cost N applies of CPU here where a real fleet spreads them over machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Sequence

from data_plane.routing.table import RoutingTable
from data_plane.snapshot.client import Backoff, Identity, SnapshotClient
from data_plane.snapshot.state import SnapshotState
from tests.integration.control_planes import BackgroundLoop


class TimedState(SnapshotState):
    """A SnapshotState that records the wall-clock time each version was first served."""

    def __init__(self) -> None:
        super().__init__()
        self.applied_at: dict[int, float] = {}
        self.generated_at: dict[int, float] = {}
        self.lock = threading.Lock()

    def swap(self, table: RoutingTable, *, generated_at: float, now: float) -> None:
        super().swap(table, generated_at=generated_at, now=now)
        stamp = time.time()
        with self.lock:
            self.applied_at.setdefault(table.version, stamp)
            self.generated_at.setdefault(table.version, generated_at)

    def first_serving(self, version: int) -> float | None:
        """When this proxy first served `version` or anything newer."""
        with self.lock:
            times = [t for v, t in self.applied_at.items() if v >= version]
        return min(times) if times else None


class Fleet:
    """`size` proxies; with several addresses, proxy i follows addresses[i % len]."""

    def __init__(self, address: str | Sequence[str], token: str, size: int) -> None:
        addresses = [address] if isinstance(address, str) else list(address)
        self.states = [TimedState() for _ in range(size)]
        self._clients = [
            SnapshotClient(
                addresses[i % len(addresses)],
                token,
                Identity(node_id=f"bench-proxy-{i:02d}", pool="bench"),
                state,
                backoff=Backoff(initial=0.05, maximum=0.5),
            )
            for i, state in enumerate(self.states)
        ]
        self._background = BackgroundLoop("bench-proxies")
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        async def start() -> list[asyncio.Task[None]]:
            return [asyncio.create_task(c.run(), name="snapshot-client") for c in self._clients]

        self._tasks = self._background.run(start())

    def versions(self) -> list[int]:
        return [s.table.version if s.table else 0 for s in self.states]

    def wait_for(self, version: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if min(self.versions()) >= version:
                return True
            time.sleep(0.01)
        return min(self.versions()) >= version

    def all_serving(self, version: int) -> float | None:
        """When the last proxy started serving `version` (or newer); None if one never did."""
        times = [s.first_serving(version) for s in self.states]
        return None if any(t is None for t in times) else max(t for t in times if t is not None)

    def first_serving(self, version: int) -> float | None:
        times = [t for s in self.states if (t := s.first_serving(version)) is not None]
        return min(times) if times else None

    def close(self) -> None:
        async def stop() -> None:
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await asyncio.get_running_loop().shutdown_default_executor()

        self._background.run(stop(), timeout=30)
        self._background.close()
