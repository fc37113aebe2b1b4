"""Provider keys held back after failing, shared by every request in one proxy process.

A hold only reorders keys (held ones are tried last), so losing one is harmless; that is why the
table may forget entries to stay bounded. A key whose value was rotated is released when the
snapshot carrying the new value is swapped in (`release_rotated`, a swap listener): its old
failures say nothing about the new credential.
"""

from __future__ import annotations

import heapq
from operator import itemgetter

from .table import RoutingTable, rotated_keys


class Cooldowns:
    def __init__(self, max_entries: int = 50_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._until: dict[str, float] = {}

    def hold(self, key_id: str, until: float) -> None:
        # Concurrent requests may report the same key; a shorter hold never cuts a longer one
        # (a rate limit seen after an auth error does not make the key look healthy sooner).
        current = self._until.get(key_id)
        if current is None or until > current:
            self._until[key_id] = until
        if len(self._until) > self._max_entries:
            self._shrink()

    def release(self, key_id: str) -> None:
        """Forget a hold, e.g. once the key has answered successfully or its value was rotated."""
        self._until.pop(key_id, None)

    def release_rotated(self, old: RoutingTable | None, new: RoutingTable) -> None:
        """Releases every key whose value differs between the `old` and `new` tables."""
        for key_id in rotated_keys(old, new):
            self.release(key_id)

    def is_held(self, key_id: str, now: float) -> bool:
        until = self._until.get(key_id)
        if until is None:
            return False
        if until <= now:
            del self._until[key_id]
            return False
        return True

    def count_held(self, now: float) -> int:
        """Keys held back at `now` (for metrics: a scan, never on the request path)."""
        return sum(1 for until in self._until.values() if until > now)

    def held_until(self, key_id: str) -> float | None:
        """The recorded end of the hold; it may already be past (expiry is only applied lazily)."""
        return self._until.get(key_id)

    def _shrink(self) -> None:
        # Keep the holds that end last: expired entries (never looked up again, e.g. for deleted
        # keys) go first. Shrinking to three quarters makes the sort rare rather than per hold.
        keep = heapq.nlargest(
            max(1, self._max_entries * 3 // 4), self._until.items(), key=itemgetter(1)
        )
        self._until = dict(keep)
