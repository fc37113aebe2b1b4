"""Which provider key one request tries next, and what it answers when none worked.

A sans-I/O state machine in the manner of h11: the proxy asks `next_attempt(now)`, makes the
upstream call itself, and reports what happened with `record(...)`. The engine reads no clock
(every `now` is handed in, from a monotonic clock) and never sees a key's value, only its id.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from data_plane.routing.cooldowns import Cooldowns
from data_plane.routing.outcome import Outcome, OutcomeKind, deadline_reached
from data_plane.routing.policy import FailoverPolicy


@dataclass(frozen=True, slots=True)
class Candidate:
    provider: str
    model: str
    upstream_model: str
    keys: tuple[str, ...]  # provider key ids, in the order the router gives them


@dataclass(frozen=True, slots=True)
class Attempt:
    candidate_index: int
    candidate: Candidate
    key_id: str
    timeout: float  # seconds; never beyond the request's total deadline
    deadline_bound: bool = False
    """The total deadline, not the attempt timeout, set `timeout`."""


def attributed(attempt: Attempt, outcome: Outcome) -> Outcome:
    """A timeout of an attempt the total deadline cut short says nothing about its key."""
    if outcome.kind is OutcomeKind.TIMEOUT and attempt.deadline_bound:
        return deadline_reached()
    return outcome


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: float


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    provider: str
    model: str
    key_id: str
    status: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class Exhausted:
    status: int
    code: str
    message: str
    attempts: tuple[AttemptRecord, ...]
    retry_after: float | None = None  # for 429: seconds until the first rate-limited key frees up


class Decision(enum.Enum):
    SERVE = "serve"  # relay this response
    FAIL_FAST = "fail_fast"  # relay the upstream status and body unchanged
    CONTINUE = "continue"  # ask next_attempt


_Option = tuple[int, str]  # (candidate index, key id)


class Failover:
    def __init__(
        self,
        candidates: Sequence[Candidate],
        policy: FailoverPolicy,
        cooldowns: Cooldowns,
        start: float,
    ) -> None:
        if not candidates:
            raise ValueError("at least one candidate is required")
        self._candidates = tuple(candidates)
        self._policy = policy
        self._cooldowns = cooldowns
        self._deadline = start + policy.total_deadline
        self._budget = max(min(policy.min_attempt_time, policy.attempt_timeout), 1e-9)
        self._has_keys = any(candidate.keys for candidate in self._candidates)
        self._records: list[AttemptRecord] = []
        # Keyed by what the provider actually receives, so two candidates aliasing one upstream
        # model never send the same request twice.
        self._tried: set[tuple[str, str, str]] = set()
        self._rate_limited: dict[_Option, tuple[float, float | None]] = {}  # → (when, retry_after)
        self._all_rate_limited = True
        self._pending: Attempt | None = None
        self._waited = False
        self._retry: _Option | None = None
        self._answered = False

    @property
    def attempts(self) -> tuple[AttemptRecord, ...]:
        return tuple(self._records)

    def next_attempt(self, now: float) -> Attempt | Wait | Exhausted:
        if self._answered:
            raise RuntimeError("the request was already answered")
        if self._pending is not None:
            raise RuntimeError("record the outstanding attempt first")
        if not self._has_keys:
            providers = ", ".join(dict.fromkeys(c.provider for c in self._candidates))
            return Exhausted(502, "no_provider_key", f"no provider key for {providers}", ())
        # An attempt that cannot reach the provider and answer in the time left is not
        # started (the proxy's timer may also fire a hair before this clock says so).
        if self._deadline - now < self._budget:
            return self._exhausted(now, deadline=True)
        if len(self._records) >= self._policy.max_attempts:
            return self._exhausted(now, deadline=False)
        option = self._untried(now)
        if option is None and self._retry is not None:
            option, self._retry = self._retry, None
        if option is None:
            seconds = self._plan_wait(now)
            return self._exhausted(now, deadline=False) if seconds is None else Wait(seconds)
        return self._attempt(option, now)

    def record(self, attempt: Attempt, outcome: Outcome, now: float) -> Decision:
        if self._pending is None or attempt != self._pending:
            raise RuntimeError("not the outstanding attempt")
        self._pending = None
        key_id = attempt.key_id
        self._records.append(
            AttemptRecord(
                attempt.candidate.provider,
                attempt.candidate.model,
                key_id,
                outcome.status,
                outcome.reason,
            )
        )
        if outcome.kind is OutcomeKind.AUTH:
            self._cooldowns.hold(key_id, now + self._policy.auth_cooldown)
        elif outcome.kind is OutcomeKind.RATE_LIMITED:
            after = outcome.retry_after
            hold = self._policy.rate_limit_default if after is None else after
            self._cooldowns.hold(key_id, now + hold)
            self._rate_limited[(attempt.candidate_index, key_id)] = (now, after)
        elif outcome.kind is OutcomeKind.SUCCESS:
            # Working now (say, after a rotation): no reason to keep it last for other requests.
            self._cooldowns.release(key_id)
        if outcome.kind is not OutcomeKind.RATE_LIMITED:
            self._all_rate_limited = False
        # Compared by identity: an Enum's hash is computed in Python, on every request.
        if outcome.kind is OutcomeKind.SUCCESS:
            decision = Decision.SERVE
        elif outcome.kind is OutcomeKind.FAIL_FAST:
            decision = Decision.FAIL_FAST
        else:
            return Decision.CONTINUE
        self._answered = True
        return decision

    def _untried(self, now: float) -> _Option | None:
        # Keys held back by earlier failures (in any request) are not skipped, only moved behind
        # every other key of every candidate: a possibly-working key beats none.
        held: _Option | None = None
        for index, candidate in enumerate(self._candidates):
            for key_id in candidate.keys:
                if (candidate.provider, candidate.upstream_model, key_id) in self._tried:
                    continue
                if not self._cooldowns.is_held(key_id, now):
                    return index, key_id
                if held is None:
                    held = index, key_id
        return held

    def _plan_wait(self, now: float) -> float | None:
        # Everything has been tried. Holding the client is worth it only once, for a short wait
        # the provider announced itself; an unannounced (default) or long reset means answer now.
        if self._waited:
            return None
        limit = self._policy.max_retry_wait
        # Clamped to `after` too: `when + after - now` may round a hair above it.
        waits = [
            (max(0.0, min(after, when + after - now)), option)
            for option, (when, after) in self._rate_limited.items()
            if after is not None and after <= limit
        ]
        if not waits:
            return None
        seconds, option = min(waits)
        if now + seconds + self._budget > self._deadline:
            return None
        self._waited = True
        self._retry = option
        return seconds

    def _attempt(self, option: _Option, now: float) -> Attempt:
        index, key_id = option
        candidate = self._candidates[index]
        self._tried.add((candidate.provider, candidate.upstream_model, key_id))
        left = self._deadline - now
        timeout = min(self._policy.attempt_timeout, left)
        self._pending = Attempt(
            index, candidate, key_id, timeout, left < self._policy.attempt_timeout
        )
        return self._pending

    def _exhausted(self, now: float, *, deadline: bool) -> Exhausted:
        attempts = self.attempts
        # SDKs print only the message: it names every attempt's outcome, not just a count.
        count = f"{len(attempts)} attempt{'' if len(attempts) == 1 else 's'}"
        listed = ": " + "; ".join(_summary(a) for a in attempts) if attempts else ""
        # Every failure a rate limit means "slow down", which 429 tells the client best, even
        # if the deadline ran out meanwhile.
        if attempts and self._all_rate_limited:
            default = self._policy.rate_limit_default
            free_at = min(
                when + (default if after is None else after)
                for when, after in self._rate_limited.values()
            )
            message = f"{count}, all rate limited{listed}"
            return Exhausted(429, "all_rate_limited", message, attempts, max(0.0, free_at - now))
        if deadline:
            total = self._policy.total_deadline
            message = f"total deadline of {total:g}s exceeded after {count}{listed}"
            return Exhausted(504, "deadline_exceeded", message, attempts)
        return Exhausted(502, "all_attempts_failed", f"{count}, all failed{listed}", attempts)


def _summary(record: AttemptRecord) -> str:
    status = f"{record.status} " if record.status else ""
    return f"{record.provider}/{record.model} with {record.key_id}: {status}{record.reason}"
