"""What a usage query may ask for. Pure.

Ranges are bounded (a query reads hourly rollups, at most `MAX_RANGE_DAYS` of them per
group) and tenant-scoped: an account admin sees its own account only, the operator
every account or the one it names.
"""

from __future__ import annotations

from .errors import PermissionDenied, Violations

MAX_RANGE_DAYS = 400
MAX_HOURLY_DAYS = 31
"""Hourly rows over a longer range would be thousands per group: use days."""
DEFAULT_RANGE_US = 24 * 3600 * 1_000_000
_DAY_US = 24 * 3600 * 1_000_000


def time_range(
    start_us: int | None, end_us: int | None, now_us: int, *, hourly: bool = False
) -> tuple[int, int]:
    """The range asked for, with defaults (the 24 hours before `end`, which is now)."""
    end = now_us if end_us is None else end_us
    start = end - DEFAULT_RANGE_US if start_us is None else start_us
    v = Violations()
    if end <= start:
        v.add("end_time", "must be after start_time")
    elif end - start > MAX_RANGE_DAYS * _DAY_US:
        v.add("start_time", f"the range may span at most {MAX_RANGE_DAYS} days")
    elif hourly and end - start > MAX_HOURLY_DAYS * _DAY_US:
        v.add("bucket", f"hourly buckets span at most {MAX_HOURLY_DAYS} days: use days")
    v.raise_if_any()
    return start, end


def scope(asked: str, own: str | None) -> str | None:
    """The account a query reads: `own` for an account admin (who may name only it),
    `asked` or every account (None) for the operator (`own` None)."""
    if own is None:
        return asked or None
    if asked and asked != own:
        raise PermissionDenied("an admin API key reads its own account's usage only")
    return own
