"""Whether one more request may start now: concurrency and rate caps per tenant. Pure.

Checked after authentication and before the body is read, so a tenant over its caps
costs the proxy almost nothing. Every count is of this proxy process only: a fleet of N
proxies admits up to N times each cap (there is no shared state to agree on).

- in flight per access key: at most `per_access_key`, or the configuration's
  `limits.concurrency` when lower;
- in flight per account (all its access keys): at most `per_account`;
- requests per minute per access key, when its configuration sets
  `limits.requests_per_minute`: a token bucket holding a minute's worth, refilled
  continuously, so a quiet key may burst up to its whole minute at once.

`now` is handed in (monotonic seconds), as everywhere in the routing core.
"""

from __future__ import annotations

from dataclasses import dataclass

# Full buckets (the same as none) are dropped once the table has grown past this, and
# past twice what the last sweep kept: keys that stopped calling do not stay in memory,
# and sweeping stays rare however many keys are busy.
_SWEEP_AT = 10_000


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    per_access_key: int = 256
    per_account: int = 1024

    def __post_init__(self) -> None:
        if self.per_access_key < 1 or self.per_account < 1:
            raise ValueError("concurrency caps must be at least 1")


@dataclass(frozen=True, slots=True)
class Ticket:
    """An admitted request; hand it back to `release` when the request ends."""

    access_key_id: str
    account_id: str


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str  # an error catalog code
    message: str
    retry_after: float
    """Seconds after which trying again may succeed."""


@dataclass(slots=True)
class _Bucket:
    per_minute: int
    tokens: float
    at: float


class Admission:
    def __init__(self, limits: AdmissionLimits = AdmissionLimits()) -> None:
        self.limits = limits
        self._keys: dict[str, int] = {}
        self._accounts: dict[str, int] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._sweep_at = _SWEEP_AT

    def in_flight(self, access_key_id: str) -> int:
        return self._keys.get(access_key_id, 0)

    def admit(
        self,
        access_key_id: str,
        account_id: str,
        now: float,
        *,
        concurrency: int = 0,
        requests_per_minute: int = 0,
    ) -> Ticket | Refusal:
        """`concurrency` and `requests_per_minute` come from the key's configuration (0: none)."""
        key_cap = self.limits.per_access_key
        if concurrency:
            key_cap = min(key_cap, concurrency)
        keys = self._keys.get(access_key_id, 0)
        if keys >= key_cap:
            return Refusal(
                "concurrency_limit",
                f"this access key already has {keys} requests in flight on this proxy "
                f"(limit {key_cap})",
                1.0,
            )
        accounts = self._accounts.get(account_id, 0)
        if accounts >= self.limits.per_account:
            return Refusal(
                "concurrency_limit",
                f"this account already has {accounts} requests in flight on this proxy "
                f"(limit {self.limits.per_account})",
                1.0,
            )
        if requests_per_minute:
            wait = self._take(access_key_id, requests_per_minute, now)
            if wait is not None:
                return Refusal(
                    "rate_limit_exceeded",
                    f"this access key is limited to {requests_per_minute} requests per minute",
                    wait,
                )
        self._keys[access_key_id] = keys + 1
        self._accounts[account_id] = accounts + 1
        return Ticket(access_key_id, account_id)

    def release(self, ticket: Ticket) -> None:
        for counts, name in (
            (self._keys, ticket.access_key_id),
            (self._accounts, ticket.account_id),
        ):
            left = counts.get(name, 0) - 1
            if left > 0:
                counts[name] = left
            else:
                counts.pop(name, None)

    def _take(self, access_key_id: str, per_minute: int, now: float) -> float | None:
        """Takes one request's token; or the seconds until one is there."""
        rate = per_minute / 60.0
        bucket = self._buckets.get(access_key_id)
        if bucket is None:
            bucket = _Bucket(per_minute, float(per_minute), now)
        else:
            if bucket.per_minute != per_minute:  # the configuration changed
                bucket.per_minute = per_minute
            elapsed = max(0.0, now - bucket.at)
            bucket.tokens = min(float(per_minute), bucket.tokens + elapsed * rate)
            bucket.at = now
        if bucket.tokens < 1.0:
            self._buckets[access_key_id] = bucket
            return (1.0 - bucket.tokens) / rate
        bucket.tokens -= 1.0
        if len(self._buckets) >= self._sweep_at:
            self._sweep(now)
        self._buckets[access_key_id] = bucket
        return None

    def _sweep(self, now: float) -> None:
        self._buckets = {
            key: b
            for key, b in self._buckets.items()
            if b.tokens + (now - b.at) * b.per_minute / 60.0 < b.per_minute
        }
        self._sweep_at = max(_SWEEP_AT, 2 * len(self._buckets))
