"""Compiles the latest revision and fans it out to every connected proxy.

Latest-wins: each subscriber only ever needs the newest snapshot, so a slow
proxy costs one pending flag, never a queue. Bursts of writes are coalesced:
the first change publishes at once, the rest of the burst waits for a short
quiet window (bounded by a cap) and goes out as one snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from data_plane.routing.validate import validate

from .compiler import Compiled, StoreState, compile_snapshot, serialise
from .stream import Revision

log = logging.getLogger("keyway.control_plane.snapshots")


@dataclass(frozen=True, slots=True)
class Published:
    compiled: Compiled
    generate_time_us: int

    @property
    def revision(self) -> Revision:
        return Revision(self.compiled.version, self.compiled.sha256)


class InvalidSnapshotError(Exception):
    """The compiler produced something the validator refuses: a bug, never user input."""


def build(state: StoreState) -> Compiled:
    snapshot = compile_snapshot(state)
    problems = validate(snapshot)
    if problems:
        first = problems[0]
        raise InvalidSnapshotError(
            f"snapshot {snapshot.version} failed validation: {first.field}: {first.description}"
        )
    return serialise(snapshot)


class Subscription:
    def __init__(self) -> None:
        self._pending = asyncio.Event()

    def wake(self) -> None:
        self._pending.set()

    async def wait(self) -> None:
        await self._pending.wait()
        self._pending.clear()


class Publisher:
    def __init__(
        self,
        read_state: Callable[[], StoreState],
        read_revision: Callable[[], int],
        *,
        quiet: float = 0.02,
        cap: float = 0.2,
        retry_after: float = 1.0,
    ) -> None:
        self._read_state = read_state
        self._read_revision = read_revision
        self._quiet = quiet
        self._cap = cap
        self._retry_after = retry_after
        self._changed = asyncio.Event()
        self._subscriptions: set[Subscription] = set()
        self.latest: Published | None = None
        self.published_count = 0

    def notify(self, revision: int = 0) -> None:
        self._changed.set()

    def subscribe(self) -> Subscription:
        subscription = Subscription()
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def _compile(self) -> Published | None:
        """Worker-thread side: nothing to do when the revision has not moved."""
        if self.latest is not None and self._read_revision() == self.latest.compiled.version:
            return None
        compiled = build(self._read_state())
        return Published(compiled, time.time_ns() // 1000)

    async def publish_now(self) -> None:
        try:
            published = await asyncio.to_thread(self._compile)
        except Exception:
            # Proxies keep the last good snapshot; try again shortly rather
            # than waiting for the next write, which may never come.
            log.exception("could not compile a snapshot; proxies keep the previous one")
            asyncio.get_running_loop().call_later(self._retry_after, self.notify)
            return
        if published is None:
            return
        self.latest = published
        self.published_count += 1
        log.info(
            "published snapshot %d (%d bytes)",
            published.compiled.version,
            len(published.compiled.payload),
        )
        for subscription in self._subscriptions:
            subscription.wake()

    async def run(self) -> None:
        await self.publish_now()
        loop = asyncio.get_running_loop()
        while True:
            await self._changed.wait()
            self._changed.clear()
            await self.publish_now()
            window_end = loop.time() + self._cap
            dirty = False
            while (remaining := min(self._quiet, window_end - loop.time())) > 0:
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    break
                self._changed.clear()
                dirty = True
            if dirty:
                await self.publish_now()
