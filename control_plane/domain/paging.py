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


def encode(after_seq: int, filter_key: str = "") -> str:
    raw = json.dumps({"a": after_seq, "f": _fingerprint(filter_key)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(token: str, filter_key: str = "", field: str = "page_token") -> int:
    """Returns the sequence number to continue after (0 for the first page)."""
    if not token:
        return 0
    try:
        padded = token + "=" * (-len(token) % 4)
        doc = json.loads(base64.urlsafe_b64decode(padded.encode()))
        after = doc["a"]
        fingerprint = doc["f"]
    except (binascii.Error, ValueError, KeyError, TypeError, RecursionError):
        raise InvalidArgument.field(field, "is not a token from a previous response") from None
    # bool is an int subclass; the bound keeps it a valid SQLite INTEGER.
    if type(after) is not int or not 0 <= after < 2**63:
        raise InvalidArgument.field(field, "is not a token from a previous response")
    if fingerprint != _fingerprint(filter_key):
        raise InvalidArgument.field(field, "was issued for a different filter")
    return after


def encode_key(after_key: str, filter_key: str = "") -> str:
    """A token continuing after a row ordered by a string key (not a sequence number)."""
    raw = json.dumps({"k": after_key, "f": _fingerprint(filter_key)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_key(token: str, filter_key: str = "", field: str = "page_token") -> str:
    """The key to continue after ("" for the first page)."""
    if not token:
        return ""
    try:
        padded = token + "=" * (-len(token) % 4)
        doc = json.loads(base64.urlsafe_b64decode(padded.encode()))
        after = doc["k"]
        fingerprint = doc["f"]
    except (binascii.Error, ValueError, KeyError, TypeError, RecursionError):
        raise InvalidArgument.field(field, "is not a token from a previous response") from None
    if not isinstance(after, str) or not after:
        raise InvalidArgument.field(field, "is not a token from a previous response")
    if fingerprint != _fingerprint(filter_key):
        raise InvalidArgument.field(field, "was issued for a different filter")
    return after
