"""Bearer tokens: a recognisable prefix, random body and a checksum.

The prefix lets secret scanners find leaked tokens; the CRC32 checksum lets
a proxy reject a mistyped or truncated token without any lookup. Only a
SHA-256 of a token is stored: the body carries ~190 bits of entropy, so a
fast hash is sufficient (no password-style stretching needed).
"""

from __future__ import annotations

import hashlib
import secrets
import string
import zlib
from collections.abc import Callable
from enum import Enum

_ALPHABET = string.digits + string.ascii_letters
_BODY_LEN = 32
_CHECK_LEN = 6


class TokenKind(Enum):
    ACCESS = "kwak_"
    ADMIN = "kwadm_"
    OPERATOR = "kwop_"
    DATA_PLANE = "kwdp_"


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def _checksum(prefix_and_body: str) -> str:
    return _base62(zlib.crc32(prefix_and_body.encode()), _CHECK_LEN)


def mint(kind: TokenKind, randbelow: Callable[[int], int] = secrets.randbelow) -> str:
    body = "".join(_ALPHABET[randbelow(62)] for _ in range(_BODY_LEN))
    head = kind.value + body
    return head + _checksum(head)


def is_well_formed(token: str, kind: TokenKind) -> bool:
    if len(token) != len(kind.value) + _BODY_LEN + _CHECK_LEN:
        return False
    if not token.startswith(kind.value):
        return False
    # Base62 only: also keeps non-ASCII input away from compare_digest (TypeError).
    if any(c not in _ALPHABET for c in token[len(kind.value) :]):
        return False
    head, check = token[:-_CHECK_LEN], token[-_CHECK_LEN:]
    return secrets.compare_digest(_checksum(head), check)


def kind_of(token: str) -> TokenKind | None:
    for kind in TokenKind:
        if is_well_formed(token, kind):
            return kind
    return None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
