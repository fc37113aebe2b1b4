"""How stored secrets are shown: never whole, and less of them when short."""

from __future__ import annotations

_MASK = "***"


def redact(value: str) -> str:
    """`sk-proj-ab***wxyz`; `***wxyz` below 20 characters; `***` below 8."""
    if len(value) >= 20:
        return value[:10] + _MASK + value[-4:]
    if len(value) >= 8:
        return _MASK + value[-4:]
    return _MASK
