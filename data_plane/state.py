"""What one proxy process serves right now, and how it got there.

Requests read `table` once and use that object to the end, so a swap is a
single reference assignment: no locks on the request path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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


@dataclass(slots=True)
class ProxyState:
    table: RoutingTable | None = None
    metrics: SnapshotMetrics = field(default_factory=SnapshotMetrics)
    listeners: list[SwapListener] = field(default_factory=list)

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
