"""Publisher retry and derived proxy state: small rules with big consequences."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from control_plane.snapshots.assembly import Assembly
from control_plane.snapshots.publisher import Publisher
from control_plane.snapshots.status import State, state
from control_plane.snapshots.stream import Rejection, Revision
from control_plane.store.records import NodeStatus, StoreDelta


def node(**changes: object) -> NodeStatus:
    base: dict[str, object] = {
        "node_id": "n",
        "pool": "default",
        "build_version": "dev",
        "connected": True,
        "connect_time_us": 1,
        "last_seen_us": 1,
    }
    return NodeStatus(**{**base, **changes})  # type: ignore[arg-type]


LATEST = Revision(7, "b" * 64)
OLDER = Revision(6, "a" * 64)


def test_a_node_that_rejected_the_latest_stays_rejected_after_reconnecting() -> None:
    # After a reconnect nothing is sent (sent_version 0): the rejection still explains it.
    rejected = node(applied=OLDER, rejection=Rejection(LATEST, "bad"), sent_version=0)
    assert state(rejected, LATEST) is State.REJECTED


def test_states() -> None:
    assert state(node(applied=LATEST), LATEST) is State.IN_SYNC
    assert state(node(applied=OLDER, sent_version=7), LATEST) is State.STALE
    assert state(node(applied=OLDER, rejection=Rejection(OLDER, "x")), LATEST) is State.STALE
    assert state(node(connected=False, applied=LATEST), LATEST) is State.DISCONNECTED


class FlakySource:
    """A store whose first `failures` reads fail."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0

    def read(self, known: Mapping[str, int]) -> StoreDelta:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise OSError("database is locked")
        return StoreDelta(revision=3, account_ids=(), changed=())

    def revision(self) -> int:
        return 3


def assembly() -> Assembly:
    return Assembly({}, allow_private_upstreams=False, account_budget=1 << 20)


async def test_a_failed_compile_is_retried_without_a_new_write() -> None:
    source = FlakySource(failures=1)
    publisher = Publisher(source, assembly(), retry_after=0.01)
    published = publisher.subscribe()
    runner = asyncio.create_task(publisher.run())
    try:
        async with asyncio.timeout(5):
            await published.wait()
    finally:
        runner.cancel()
    assert publisher.latest is not None
    assert publisher.latest.compiled.version == 3
    assert source.attempts == 2


async def test_many_failed_compiles_share_one_retry_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each failure used to schedule a retry of its own: 30 failing writes, 30 timers."""
    loop = asyncio.get_running_loop()
    timers: list[asyncio.TimerHandle] = []
    real_call_later = loop.call_later

    def counting_call_later(delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        handle = real_call_later(delay, callback, *args)
        timers.append(handle)
        return handle

    monkeypatch.setattr(loop, "call_later", counting_call_later)
    source = FlakySource(failures=1_000)
    publisher = Publisher(source, assembly(), retry_after=60.0)
    try:
        for _ in range(30):
            publisher.notify(source.revision())
            await publisher.publish_now()
        assert source.attempts == 30
        assert publisher.failed_count == 30
        assert len([t for t in timers if not t.cancelled()]) == 1
    finally:
        publisher.close()
    assert all(t.cancelled() for t in timers)


async def test_retries_back_off_while_the_store_stays_unreadable() -> None:
    source = FlakySource(failures=1_000)
    publisher = Publisher(source, assembly(), retry_after=1.0, retry_max=8.0)
    delays = []
    loop = asyncio.get_running_loop()
    try:
        for _ in range(6):
            await publisher.publish_now()
            handle = publisher._retry
            assert handle is not None
            delays.append(round(handle.when() - loop.time()))
            publisher.close()
    finally:
        publisher.close()
    assert delays == [1, 2, 4, 8, 8, 8]


async def test_a_notice_wakes_the_publisher_only_for_what_it_has_not_published() -> None:
    source = FlakySource(failures=0)
    publisher = Publisher(source, assembly())
    await publisher.publish_now()
    assert publisher.latest is not None
    assert publisher.latest.compiled.version == 3
    for already in (2, 3):
        publisher.notify(already)
        assert not publisher._changed.is_set()
    publisher.notify(4)
    assert publisher._changed.is_set()
