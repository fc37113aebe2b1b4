"""Publisher retry and derived proxy state: small rules with big consequences."""

from __future__ import annotations

import asyncio

from control_plane.snapshots.compiler import StoreState
from control_plane.snapshots.publisher import Publisher
from control_plane.snapshots.status import NodeStatus, State
from control_plane.snapshots.stream import Rejection, Revision


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
    assert rejected.state(LATEST) is State.REJECTED


def test_states() -> None:
    assert node(applied=LATEST).state(LATEST) is State.IN_SYNC
    assert node(applied=OLDER, sent_version=7).state(LATEST) is State.STALE
    assert node(applied=OLDER, rejection=Rejection(OLDER, "x")).state(LATEST) is State.STALE
    assert node(connected=False, applied=LATEST).state(LATEST) is State.DISCONNECTED


async def test_a_failed_compile_is_retried_without_a_new_write() -> None:
    attempts = 0

    def read_state() -> StoreState:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise OSError("database is locked")
        return StoreState(revision=3, accounts=(), base_url_overrides={})

    publisher = Publisher(read_state, lambda: 3, retry_after=0.01)
    published = publisher.subscribe()
    runner = asyncio.create_task(publisher.run())
    try:
        async with asyncio.timeout(5):
            await published.wait()
    finally:
        runner.cancel()
    assert publisher.latest is not None
    assert publisher.latest.compiled.version == 3
    assert attempts == 2
