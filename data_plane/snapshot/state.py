"""The snapshot one proxy process serves right now, and how fresh it is. Pure.

The snapshot client writes it (`swap`, `confirmed`, `unconfirmed`); requests read
`serving(now)` once and use that table to the end, so a swap is a single reference
assignment: no locks on the request path. Times are handed in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from data_plane.routing.errors import KeywayError
from data_plane.routing.table import RoutingTable

SwapListener = Callable[[RoutingTable | None, RoutingTable], None]


@dataclass(slots=True)
class SnapshotMetrics:
    connected: bool = False
    applied_version: int = 0
    applied_at: float = 0.0
    """Wall-clock seconds when the served snapshot was applied."""
    generated_at: float = 0.0
    """Wall-clock seconds when the control plane compiled it."""
    applies: int = 0
    rejections: int = 0
    propagation_seconds: float = 0.0
    """Applied time minus generated time, for the last snapshot applied."""
    loaded_from_cache: bool = False
    update_failures: int = 0
    """Streams that failed and updates that could not be applied."""
    updates_failing: bool = False
    """True from a failure that stops updates until the next applied or current snapshot."""
    last_update_error: str = ""
    """Why updates are failing (no secret: status codes, sizes, field paths)."""
    stale_since: float | None = None
    """Monotonic time since which the served snapshot is not known to be current (the
    stream broke, or an update could not be applied); None while it is."""


@dataclass(slots=True)
class SnapshotState:
    table: RoutingTable | None = None
    metrics: SnapshotMetrics = field(default_factory=SnapshotMetrics)
    listeners: list[SwapListener] = field(default_factory=list)
    """Called with (previous, new) table on every swap, before requests see the new one."""
    max_age: float | None = None
    """Stop serving once the snapshot has not been known current for this many seconds."""

    def stale_seconds(self, now: float) -> float:
        """How long (monotonic `now`) the served snapshot has not been known current."""
        since = self.metrics.stale_since
        return max(0.0, now - since) if since is not None else 0.0

    def expired(self, now: float) -> bool:
        return self.max_age is not None and self.stale_seconds(now) > self.max_age

    def serving(self, now: float) -> RoutingTable | None:
        """The table requests may use (monotonic `now`): none once `--max-snapshot-age`
        has passed unconfirmed, since revocations made since then may be missing from it."""
        if self.max_age is not None and self.expired(now):
            raise KeywayError(
                "snapshot_expired",
                f"the routing snapshot has not been confirmed for {self.stale_seconds(now):.0f} s "
                f"(more than --max-snapshot-age {self.max_age:g} s)",
            )
        return self.table

    def confirmed(self) -> None:
        """The control plane says the served snapshot is its latest (or sent a newer one,
        applied now): revocations up to now are in effect."""
        m = self.metrics
        m.stale_since = None
        m.updates_failing = False
        m.last_update_error = ""

    def unconfirmed(self, now: float, error: str = "", *, failing: bool = False) -> None:
        """From `now` on the served snapshot may be behind; `failing` when the control
        plane has something this proxy cannot take (a rejected or oversized update)."""
        m = self.metrics
        if m.stale_since is None:
            m.stale_since = now
        if error:
            m.update_failures += 1
            m.last_update_error = error
        if failing:
            m.updates_failing = True

    def swap(self, table: RoutingTable, *, generated_at: float, now: float) -> None:
        previous, self.table = self.table, table
        for listener in self.listeners:
            listener(previous, table)
        m = self.metrics
        m.applied_version = table.version
        m.applied_at = now
        m.generated_at = generated_at
        m.applies += 1
        m.propagation_seconds = max(0.0, now - generated_at) if generated_at else 0.0

    @property
    def ready(self) -> bool:
        return self.table is not None
