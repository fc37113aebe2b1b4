"""Failover bounds and cooldowns.

The defaults are the documented ones (README, "Using the proxy"): at most 10 attempts, 60 s per
attempt, 120 s per request, a key answering 401/403 held back 60 s, a 429 without a reset hint
held back 10 s, and one wait of at most 5 s when everything left is rate-limited.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FailoverPolicy:
    max_attempts: int = 10
    attempt_timeout: float = 60.0  # seconds, per upstream attempt
    total_deadline: float = 120.0  # seconds, from the start of the request
    auth_cooldown: float = 60.0  # how long a key answering 401/403 is held back
    rate_limit_default: float = 10.0  # hold for a 429 that did not say how long
    max_retry_wait: float = 5.0  # longest Retry-After worth waiting for within one request

    def __post_init__(self) -> None:
        # Configurable by operators, so nonsense is refused here rather than looping or never
        # failing over. `not x > 0` also rejects NaN.
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        for name, value in (
            ("attempt_timeout", self.attempt_timeout),
            ("total_deadline", self.total_deadline),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be positive")
        for name, value in (
            ("auth_cooldown", self.auth_cooldown),
            ("rate_limit_default", self.rate_limit_default),
            ("max_retry_wait", self.max_retry_wait),
        ):
            if not value >= 0:
                raise ValueError(f"{name} must not be negative")
