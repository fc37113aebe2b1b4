"""Limits both planes must agree on."""

from __future__ import annotations

SNAPSHOT_RECEIVE_LIMIT = 256 * 1024 * 1024
"""Largest snapshot message a proxy accepts; the control plane's budget stays below."""
