"""One proxy's discovery stream as the control plane sees it. Sans-I/O.

The servicer feeds it the proxy's messages and the latest published
snapshot; it says what to send. It knows nothing of sockets or time, so the
protocol's rules are tested by driving it directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True, slots=True)
class Revision:
    version: int
    sha256: str


class Reply(Enum):
    CURRENT = "current"
    UPDATE = "update"


@dataclass(frozen=True, slots=True)
class Send:
    nonce: str
    reply: Reply
    revision: Revision


@dataclass(frozen=True, slots=True)
class Rejection:
    revision: Revision
    message: str


class StreamState:
    def __init__(self, applied: Revision | None) -> None:
        self.applied = applied
        self.in_flight: Send | None = None
        """The last message sent; only replies to its nonce count."""
        self.rejected: set[Revision] = set()
        self.last_rejection: Rejection | None = None
        self._counter = 0
        self._answered_hello = False

    @property
    def sent(self) -> Revision | None:
        return self.in_flight.revision if self.in_flight else None

    def next_send(self, latest: Revision | None) -> Send | None:
        """What to send now that `latest` is the newest published snapshot."""
        if latest is None:
            return None
        if not self._answered_hello:
            self._answered_hello = True
            if latest == self.applied:
                return self._send(Reply.CURRENT, latest)
            if latest in self.rejected:
                # This proxy refused it before; it keeps serving what it has.
                return None
            return self._send(Reply.UPDATE, latest)
        if latest == self.sent or latest in self.rejected:
            # Never resend what the proxy has, or what it refused.
            return None
        return self._send(Reply.UPDATE, latest)

    def _send(self, reply: Reply, revision: Revision) -> Send:
        self._counter += 1
        self.in_flight = Send(str(self._counter), reply, revision)
        return self.in_flight

    def _is_current(self, nonce: str) -> bool:
        return self.in_flight is not None and nonce == self.in_flight.nonce

    def on_ack(self, nonce: str, applied: Revision) -> bool:
        """Records an ACK; False when it answers a superseded nonce."""
        if not self._is_current(nonce):
            return False
        self.applied = applied
        return True

    def on_nack(self, nonce: str, message: str) -> bool:
        if not self._is_current(nonce) or self.in_flight is None:
            return False
        revision = self.in_flight.revision
        self.rejected.add(revision)
        self.last_rejection = Rejection(revision, message)
        return True
