"""Which caller a request's access key names, or why it names none. Pure.

The token's format and checksum are checked before any lookup, so a mistyped or
truncated key costs no table access; a known key is looked up by its SHA-256.
"""

from __future__ import annotations

from collections.abc import Iterable

from data_plane.shared.tokens import ACCESS_PREFIX, is_well_formed, token_sha256

from .errors import KeywayError
from .table import Caller, RoutingTable


def presented_token(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The token of `Authorization: Bearer …` or `x-api-key: …`, whichever comes first."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer":
                return token.strip().decode("latin-1")
        elif name == b"x-api-key":
            return value.strip().decode("latin-1")
    return None


def authenticate(table: RoutingTable | None, headers: Iterable[tuple[bytes, bytes]]) -> Caller:
    """The caller, or a KeywayError naming what is wrong with the key (never its value)."""
    if table is None:
        raise KeywayError("not_ready", "the proxy has not loaded a routing snapshot yet")
    token = presented_token(headers)
    if not token:
        raise KeywayError("missing_access_key", "no access key: send Authorization: Bearer <key>")
    if not is_well_formed(token, ACCESS_PREFIX):
        raise KeywayError("malformed_access_key", "the access key is malformed")
    caller = table.callers.get(token_sha256(token))
    if caller is None:
        raise KeywayError("invalid_access_key", "the access key is unknown or revoked")
    if caller.disabled:
        raise KeywayError(
            "access_key_disabled",
            f"the access key {caller.access_key_id} is disabled; an admin can enable it again "
            f"(keyway admin access-keys enable {caller.access_key_id})",
        )
    return caller
