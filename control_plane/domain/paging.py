"""Opaque page tokens for keyset pagination over creation order.

A token carries the last row's sequence number and a fingerprint of the
filter it was issued for, so reusing it with another filter is an error
rather than a silently wrong page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from .errors import InvalidArgument


def _fingerprint(filter_key: str) -> str:
    return hashlib.sha256(filter_key.encode()).hexdigest()[:12]


def _encode(doc: dict[str, object]) -> str:
    raw = json.dumps(doc, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(token: str, name: str, filter_key: str, field: str) -> object:
    """The value under `name` in a token issued for `filter_key`."""
    try:
        padded = token + "=" * (-len(token) % 4)
        doc = json.loads(base64.urlsafe_b64decode(padded.encode()))
        value = doc[name]
        fingerprint = doc["f"]
    except (binascii.Error, ValueError, KeyError, TypeError, RecursionError):
        raise InvalidArgument.field(field, "is not a token from a previous response") from None
    if fingerprint != _fingerprint(filter_key):
        raise InvalidArgument.field(field, "was issued for a different filter")
    return value


def _not_ours(field: str) -> InvalidArgument:
    return InvalidArgument.field(field, "is not a token from a previous response")


def encode(after_seq: int, filter_key: str = "") -> str:
    return _encode({"a": after_seq, "f": _fingerprint(filter_key)})


def decode(token: str, filter_key: str = "", field: str = "page_token") -> int:
    """Returns the sequence number to continue after (0 for the first page)."""
    if not token:
        return 0
    after = _decode(token, "a", filter_key, field)
    # bool is an int subclass; the bound keeps it a valid SQLite INTEGER.
    if type(after) is not int or not 0 <= after < 2**63:
        raise _not_ours(field)
    return after


def encode_key(after_key: str, filter_key: str = "") -> str:
    """A token continuing after a row ordered by a string key (not a sequence number)."""
    return _encode({"k": after_key, "f": _fingerprint(filter_key)})


def decode_key(token: str, filter_key: str = "", field: str = "page_token") -> str:
    """The key to continue after ("" for the first page)."""
    if not token:
        return ""
    after = _decode(token, "k", filter_key, field)
    if not isinstance(after, str) or not after:
        raise _not_ours(field)
    return after
