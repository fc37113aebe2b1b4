"""Per-proxy sync status, kept in memory and mirrored to the store.

The mirror lets `data-planes list` show the proxies seen recently (as
DISCONNECTED) after a control-plane restart; a proxy disconnected for longer
than `forget_after` is forgotten, so retired nodes do not pile up. Rows are
bookkeeping, so their writes do not move the store revision.

Replicas of a shared database (`shared`): each writes the rows of the streams it holds
(stamped with its replica id, refreshed every `HEARTBEAT` seconds) and reads everyone's
every flush, so any replica lists every proxy and which replica it is on. A row another
replica stopped refreshing for `STALE_AFTER` seconds (it died) reads as DISCONNECTED.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from enum import Enum

from control_plane.domain.errors import Unavailable
from control_plane.store.port import Store, call
from control_plane.store.records import NodeStatus

from .stream import Rejection, Revision


class State(Enum):
    IN_SYNC = "IN_SYNC"
    STALE = "STALE"
    REJECTED = "REJECTED"
    DISCONNECTED = "DISCONNECTED"


def state(node: NodeStatus, latest: Revision | None) -> State:
    """Where a proxy stands against the latest published snapshot."""
    if not node.connected:
        return State.DISCONNECTED
    if latest is not None and node.applied == latest:
        return State.IN_SYNC
    if node.rejection is not None and (
        node.rejection.revision == latest or node.rejection.revision.version == node.sent_version
    ):
        return State.REJECTED
    return State.STALE


def _now_us() -> int:
    return time.time_ns() // 1000


HEARTBEAT = 5.0
"""Seconds between refreshes of the rows of the streams a replica holds (shared only)."""
STALE_AFTER = 3 * HEARTBEAT
"""A row another replica has not refreshed for this long is of a replica that is gone."""

REJECTION_MESSAGE_MAX = 1024
"""What is kept of a proxy's NACK text (the proxy bounds it too; older ones may not)."""


class UnknownNodeError(KeyError):
    pass


class ConnectedNodeError(Exception):
    pass


class StatusBook:
    """Lives on the event loop; the mirror is written in batches on the store's executor."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], int] = _now_us,
        forget_after: float = 7 * 24 * 3600.0,
        *,
        shared: bool = False,
        replica: str = "",
    ) -> None:
        self._store = store
        self._clock = clock
        self._forget_after_us = int(forget_after * 1e6)
        self._shared = shared
        self.replica = replica
        """This control plane's replica id, stamped on the rows it writes."""
        self._nodes: dict[str, NodeStatus] = {}
        self._remote: dict[str, NodeStatus] = {}
        """Shared: every row as last read (the other replicas' proxies among them)."""
        if shared:
            self._remote = {node.node_id: node for node in store.data_planes()}
        else:
            self._nodes = {
                node.node_id: replace(node, connected=False) for node in store.data_planes()
            }
        self._streams: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._forgotten: set[str] = set()
        self._beat_us = 0

    def _save(self, node: NodeStatus) -> None:
        # Memory is authoritative; the mirror is written in batches by flush(),
        # because a database write per ACK would cost every proxy on every snapshot.
        node = replace(node, control_plane=self.replica)
        self._nodes[node.node_id] = node
        self._dirty.add(node.node_id)
        self._forgotten.discard(node.node_id)

    def _changes(self) -> tuple[list[NodeStatus], list[str]]:
        saved = [self._nodes[node_id] for node_id in sorted(self._dirty)]
        forgotten = sorted(self._forgotten)
        self._dirty.clear()
        self._forgotten.clear()
        return saved, forgotten

    def flush(self) -> None:
        """Writes every change to the mirror now, in one transaction (at shutdown)."""
        saved, forgotten = self._changes()
        if saved or forgotten:
            self._store.save_data_planes(saved, forgotten)

    async def flush_forever(self, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            self.forget_disconnected()
            self._heartbeat()
            saved, forgotten = self._changes()
            try:
                if saved or forgotten:
                    await call(self._store, self._store.save_data_planes, saved, forgotten)
                if self._shared:
                    rows = await call(self._store, self._store.data_planes)
                    self._remote = {node.node_id: node for node in rows}
            except Unavailable:
                # The database is down: keep the changes for the next flush.
                self._dirty.update(n.node_id for n in saved if n.node_id in self._nodes)
                self._forgotten.update(forgotten)

    def _heartbeat(self) -> None:
        now = self._clock()
        if not self._shared or now - self._beat_us < HEARTBEAT * 1e6:
            return
        self._beat_us = now
        for node in list(self._nodes.values()):
            if node.connected:
                self._save(replace(node, last_seen_us=now))

    def _view(self) -> dict[str, NodeStatus]:
        """Every proxy: this replica's own, and (shared) the rows of the others."""
        if not self._shared:
            return self._nodes
        stale = self._clock() - int(STALE_AFTER * 1e6)
        merged: dict[str, NodeStatus] = {}
        for node_id, row in self._remote.items():
            if row.control_plane == self.replica or (row.connected and row.last_seen_us < stale):
                # Ours from before a restart, or of a replica that stopped refreshing.
                row = replace(row, connected=False)
            merged[node_id] = row
        for node_id, node in self._nodes.items():
            other = merged.get(node_id)
            # A stream held here wins; else the latest news (the replica it moved to).
            if (
                node.connected
                or other is None
                or (not other.connected and other.last_seen_us < node.last_seen_us)
            ):
                merged[node_id] = node
        for node_id in self._forgotten:
            merged.pop(node_id, None)
        return merged

    def forget_disconnected(self) -> list[str]:
        """Drops proxies disconnected for longer than `forget_after`; returns their ids."""
        cutoff = self._clock() - self._forget_after_us
        gone = [
            node.node_id
            for node in self._view().values()
            if not node.connected and node.last_seen_us < cutoff
        ]
        for node_id in gone:
            self._forget(node_id)
        return gone

    def delete(self, node_id: str) -> None:
        """Forgets one proxy (a retired node) at the operator's request."""
        node = self._view().get(node_id)
        if node is None:
            raise UnknownNodeError(node_id)
        if node.connected:
            raise ConnectedNodeError(node_id)
        self._forget(node_id)

    def _forget(self, node_id: str) -> None:
        self._nodes.pop(node_id, None)
        self._remote.pop(node_id, None)
        self._dirty.discard(node_id)
        self._forgotten.add(node_id)

    def connected(
        self, node_id: str, pool: str, build_version: str, applied: Revision | None
    ) -> int:
        """Returns a stream generation; only the newest stream of a node may disconnect it."""
        now = self._clock()
        generation = self._streams.get(node_id, 0) + 1
        self._streams[node_id] = generation
        previous = self._nodes.get(node_id)
        self._save(
            NodeStatus(
                node_id=node_id,
                pool=pool,
                build_version=build_version,
                connected=True,
                connect_time_us=now,
                last_seen_us=now,
                applied=applied,
                rejection=previous.rejection if previous else None,
                rejected_time_us=previous.rejected_time_us if previous else None,
            )
        )
        return generation

    def sent(self, node_id: str, version: int) -> None:
        self._save(replace(self._nodes[node_id], sent_version=version, last_seen_us=self._clock()))

    def acked(self, node_id: str, applied: Revision) -> None:
        self._save(replace(self._nodes[node_id], applied=applied, last_seen_us=self._clock()))

    def rejected(self, node_id: str, rejection: Rejection) -> None:
        if len(rejection.message) > REJECTION_MESSAGE_MAX:
            cut = rejection.message[: REJECTION_MESSAGE_MAX - 1] + "…"
            rejection = Rejection(rejection.revision, cut)
        now = self._clock()
        node = replace(self._nodes[node_id], rejection=rejection, rejected_time_us=now)
        self._save(replace(node, last_seen_us=now))

    def disconnected(self, node_id: str, generation: int) -> None:
        if self._streams.get(node_id) != generation:
            return
        self._save(replace(self._nodes[node_id], connected=False, last_seen_us=self._clock()))

    def rejection(self, node_id: str) -> Rejection | None:
        node = self._nodes.get(node_id)
        return node.rejection if node is not None else None

    def nodes(self) -> list[NodeStatus]:
        view = self._view()
        return [view[k] for k in sorted(view)]
