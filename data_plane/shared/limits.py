"""Limits both planes must agree on."""

from __future__ import annotations

SNAPSHOT_RECEIVE_LIMIT = 256 * 1024 * 1024
"""Largest snapshot message a proxy accepts; the control plane's budget stays below."""

MAX_REQUESTS_PER_MINUTE = 1_000_000
"""Highest `limits.requests_per_minute` a configuration may set."""
MAX_CONCURRENCY = 100_000
"""Highest `limits.concurrency` a configuration may set."""
