"""Per-proxy sync status, kept in memory and mirrored to SQLite.

The mirror lets `data-planes list` show the proxies seen recently (as
DISCONNECTED) after a control-plane restart; a proxy disconnected for longer
than `forget_after` is forgotten, so retired nodes do not pile up. Rows are
bookkeeping, so their writes do not move the store revision.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

from sqlite_utils import Database

from .stream import Rejection, Revision


class State(Enum):
    IN_SYNC = "IN_SYNC"
    STALE = "STALE"
    REJECTED = "REJECTED"
    DISCONNECTED = "DISCONNECTED"


@dataclass(frozen=True, slots=True)
class NodeStatus:
    node_id: str
    pool: str
    build_version: str
    connected: bool
    connect_time_us: int
    last_seen_us: int
    sent_version: int = 0
    applied: Revision | None = None
    rejection: Rejection | None = None
    rejected_time_us: int | None = None

    def state(self, latest: Revision | None) -> State:
        if not self.connected:
            return State.DISCONNECTED
        if latest is not None and self.applied == latest:
            return State.IN_SYNC
        if self.rejection is not None and (
            self.rejection.revision == latest
            or self.rejection.revision.version == self.sent_version
        ):
            return State.REJECTED
        return State.STALE


def _now_us() -> int:
    return time.time_ns() // 1000


REJECTION_MESSAGE_MAX = 1024
"""What is kept of a proxy's NACK text (the proxy bounds it too; older ones may not)."""


class UnknownNodeError(KeyError):
    pass


class ConnectedNodeError(Exception):
    pass


class StatusBook:
    def __init__(
        self,
        db: Database,
        clock: Callable[[], int] = _now_us,
        forget_after: float = 7 * 24 * 3600.0,
    ) -> None:
        self._db = db
        self._clock = clock
        self._forget_after_us = int(forget_after * 1e6)
        self._nodes: dict[str, NodeStatus] = {}
        self._streams: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._load()

    def _load(self) -> None:
        for row in self._db.query("SELECT * FROM data_planes"):
            rejection = None
            if row["rejected_version"] is not None:
                rejection = Rejection(
                    Revision(row["rejected_version"], row["rejected_hash"]), row["rejected_message"]
                )
            applied = Revision(row["applied_version"], row["applied_hash"])
            self._nodes[row["node_id"]] = NodeStatus(
                node_id=row["node_id"],
                pool=row["pool"],
                build_version=row["build_version"],
                connected=False,
                connect_time_us=row["connect_time"],
                last_seen_us=row["last_seen_time"],
                sent_version=row["sent_version"],
                applied=applied if row["applied_version"] else None,
                rejection=rejection,
                rejected_time_us=row["rejected_time"],
            )

    def _save(self, node: NodeStatus) -> None:
        # Memory is authoritative; the mirror is written in batches by flush(),
        # because a disk sync per ACK would stall the event loop for every
        # proxy on every snapshot.
        self._nodes[node.node_id] = node
        self._dirty.add(node.node_id)

    def flush(self) -> None:
        """Writes every changed node to the mirror in one transaction."""
        if not self._dirty:
            return
        rows = [self._row(self._nodes[node_id]) for node_id in sorted(self._dirty)]
        self._dirty.clear()
        with self._db.atomic():
            self._db.table("data_planes").upsert_all(rows, pk="node_id")

    async def flush_forever(self, interval: float = 1.0) -> None:
        try:
            while True:
                await asyncio.sleep(interval)
                self.forget_disconnected()
                self.flush()
        finally:
            self.flush()

    def forget_disconnected(self) -> list[str]:
        """Drops proxies disconnected for longer than `forget_after`; returns their ids."""
        cutoff = self._clock() - self._forget_after_us
        gone = [
            node.node_id
            for node in self._nodes.values()
            if not node.connected and node.last_seen_us < cutoff
        ]
        for node_id in gone:
            self._forget(node_id)
        return gone

    def delete(self, node_id: str) -> None:
        """Forgets one proxy (a retired node) at the operator's request."""
        node = self._nodes.get(node_id)
        if node is None:
            raise UnknownNodeError(node_id)
        if node.connected:
            raise ConnectedNodeError(node_id)
        self._forget(node_id)

    def _forget(self, node_id: str) -> None:
        del self._nodes[node_id]
        self._dirty.discard(node_id)
        with self._db.atomic():
            self._db.execute("DELETE FROM data_planes WHERE node_id = ?", [node_id])

    @staticmethod
    def _row(node: NodeStatus) -> dict[str, object]:
        return {
            "node_id": node.node_id,
            "pool": node.pool,
            "build_version": node.build_version,
            "connected": int(node.connected),
            "connect_time": node.connect_time_us,
            "last_seen_time": node.last_seen_us,
            "sent_version": node.sent_version,
            "applied_version": node.applied.version if node.applied else 0,
            "applied_hash": node.applied.sha256 if node.applied else "",
            "rejected_version": node.rejection.revision.version if node.rejection else None,
            "rejected_hash": node.rejection.revision.sha256 if node.rejection else "",
            "rejected_message": node.rejection.message if node.rejection else None,
            "rejected_time": node.rejected_time_us,
        }

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
        return [self._nodes[k] for k in sorted(self._nodes)]
