"""Compiles the latest revision and fans it out to every connected proxy.

Latest-wins: each subscriber only ever needs the newest snapshot, so a slow
proxy costs one pending flag, never a queue. Bursts of writes are coalesced:
the first change publishes at once, the rest of the burst waits for a short
quiet window (bounded by a cap) and goes out as one snapshot.

Compiling reads and recompiles only the accounts that changed (`Assembly`); an
account that cannot compile is quarantined there and never stops the others. A
compile that fails as a whole (the database unreadable) is retried by one timer,
with backoff, however many writes arrive meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from control_plane.store.port import SnapshotSource
from data_plane.shared.validate import validate

from .assembly import AccountStatus, Assembly
from .compiler import Compiled, StoreState, compile_snapshot, serialise
from .stream import Revision

log = logging.getLogger("keyway.control_plane.snapshots")


@dataclass(frozen=True, slots=True)
class Published:
    compiled: Compiled
    generate_time_us: int
    accounts: Mapping[str, AccountStatus] = field(default_factory=dict)
    """What this compile made of each account (quarantines included)."""

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
        source: SnapshotSource,
        assembly: Assembly,
        *,
        quiet: float = 0.02,
        cap: float = 0.2,
        retry_after: float = 1.0,
        retry_max: float = 60.0,
    ) -> None:
        self._source = source
        self._assembly = assembly
        self._quiet = quiet
        self._cap = cap
        self._retry_after = retry_after
        self._retry_max = retry_max
        self._retry: asyncio.TimerHandle | None = None
        self._retrying = False
        self._failures = 0
        self._changed = asyncio.Event()
        self._subscriptions: set[Subscription] = set()
        self.latest: Published | None = None
        self.published_count = 0
        self.last_compile_seconds = 0.0
        """Read, compile and serialise time of the latest published snapshot."""
        self.failed_count = 0

    @property
    def assembly(self) -> Assembly:
        return self._assembly

    def notify(self, revision: int) -> None:
        """A write committed at `revision`. A notice of what a published snapshot already
        holds (late, or repeated) wakes nothing."""
        if self.latest is not None and revision <= self.latest.compiled.version:
            return
        self._changed.set()

    def subscribe(self) -> Subscription:
        subscription = Subscription()
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def _compile(self, retry: bool) -> Published | None:
        """Worker-thread side: nothing to do when the revision has not moved."""
        if (
            not retry
            and self.latest is not None
            and self._source.revision() == self.latest.compiled.version
        ):
            return None
        delta = self._source.read(self._assembly.known(retry=retry))
        compiled = self._assembly.update(delta, time.time_ns() // 1000)
        if self.latest is not None and compiled.sha256 == self.latest.compiled.sha256:
            return None
        return Published(compiled, time.time_ns() // 1000, self._assembly.statuses())

    async def publish_now(self) -> None:
        retry, self._retrying = self._retrying, False
        started = time.monotonic()
        try:
            published = await asyncio.to_thread(self._compile, retry)
        except Exception:
            # Proxies keep the last good snapshot; try again shortly rather
            # than waiting for the next write, which may never come.
            self.failed_count += 1
            log.exception("could not compile a snapshot; proxies keep the previous one")
            self._schedule_retry()
            return
        if any(q.transient for q in self._assembly.quarantined.values()):
            self._schedule_retry()
        else:
            self._failures = 0
        if published is None:
            return
        self.latest = published
        self.published_count += 1
        self.last_compile_seconds = time.monotonic() - started
        log.info(
            "published snapshot %d (%d bytes)",
            published.compiled.version,
            len(published.compiled.payload),
        )
        for subscription in self._subscriptions:
            subscription.wake()

    def _schedule_retry(self) -> None:
        if self._retry is not None:
            return  # one timer, whatever the number of failures since it was set
        delay = min(self._retry_max, self._retry_after * 2.0 ** min(self._failures, 16))
        self._failures += 1
        self._retry = asyncio.get_running_loop().call_later(delay, self._retry_due)

    def _retry_due(self) -> None:
        self._retry = None
        self._retrying = True
        self._changed.set()

    def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

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
