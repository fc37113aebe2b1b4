"""Console sessions: a signed-in browser holds an opaque session id, never the token.

The token a user signs in with stays in this process's memory, keyed by a random session
id that the browser gets as an HttpOnly cookie; each session also has its own CSRF value,
which the console's scripts send as a header on every write. A session ends at sign-out,
at its expiry (`TTL_SECONDS` after sign-in, however active) or when the control plane
restarts; a token revoked meanwhile stops working at once, since every call re-checks it.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

TTL_SECONDS = 8 * 3600
"""A working day: long enough not to interrupt an operator, short enough to end by itself."""
MAX_SESSIONS = 10_000
"""Sign-ins kept at once; the oldest is dropped past it, so sign-in spam cannot fill memory."""


@dataclass(frozen=True, slots=True)
class Acting:
    """The account an operator session works in, through an admin API key made for it."""

    account_id: str
    key_id: str
    token: str


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    token: str
    csrf: str
    kind: str
    """`admin` or `operator`."""
    account_id: str | None
    expires_at: float
    acting: Acting | None = None

    def __repr__(self) -> str:
        acting = None if self.acting is None else self.acting.account_id
        return f"Session(kind={self.kind!r}, account_id={self.account_id!r}, acting={acting!r})"

    def token_for(self, as_operator: bool) -> str:
        """The account's key while acting in one, unless the call asks for the operator."""
        return self.acting.token if self.acting is not None and not as_operator else self.token

    def csrf_matches(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())


class Sessions:
    """The signed-in sessions of one control plane process."""

    def __init__(self, clock: Callable[[], float], ttl: float = TTL_SECONDS) -> None:
        self._clock = clock
        self._ttl = ttl
        self._live: dict[str, Session] = {}

    def open(self, token: str, kind: str, account_id: str | None) -> Session:
        self._expire()
        while len(self._live) >= MAX_SESSIONS:
            del self._live[next(iter(self._live))]
        session = Session(
            id=secrets.token_urlsafe(32),
            token=token,
            csrf=secrets.token_urlsafe(32),
            kind=kind,
            account_id=account_id,
            expires_at=self._clock() + self._ttl,
        )
        self._live[session.id] = session
        return session

    def find(self, session_id: str | None) -> Session | None:
        """The live session of a cookie value, or None (unknown, signed out or expired)."""
        if not session_id:
            return None
        session = self._live.get(session_id)
        if session is not None and session.expires_at <= self._clock():
            del self._live[session_id]
            return None
        return session

    def act(self, session_id: str, acting: Acting | None) -> Session | None:
        """The session now acting in `acting`'s account (None: the operator's own view)."""
        found = self.find(session_id)
        if found is None:
            return None
        f = found
        changed = Session(f.id, f.token, f.csrf, f.kind, f.account_id, f.expires_at, acting)
        self._live[session_id] = changed
        return changed

    def now(self) -> float:
        return self._clock()

    def close(self, session_id: str) -> None:
        self._live.pop(session_id, None)

    def _expire(self) -> None:
        now = self._clock()
        for gone in [s.id for s in self._live.values() if s.expires_at <= now]:
            del self._live[gone]
