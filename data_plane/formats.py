"""The data plane's one vocabulary for API formats and provider auth styles. Pure.

The snapshot spells them as contract enums (`SNAPSHOT_FORMAT_*`, `SNAPSHOT_AUTH_STYLE_*`);
the routing table translates those once, where it is built from a snapshot, and from
there on the proxy (resolution, surfaces, error envelopes, headers) and the mock
upstream speak only these.
"""

from __future__ import annotations

from enum import Enum


class ApiFormat(Enum):
    """The wire API a surface speaks and a provider understands."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"


class AuthStyle(Enum):
    """How a provider expects its key: `Authorization: Bearer …` or `x-api-key: …`."""

    BEARER = "bearer"
    X_API_KEY = "x-api-key"
