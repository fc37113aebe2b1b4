"""The bearer-token format both planes share: prefix, base62 body, CRC32. Pure.

Proxies check the checksum before any lookup, so a mistyped or truncated
access key is rejected without touching the routing table. The control
plane mints tokens with the same functions (it brings the randomness).
"""

from __future__ import annotations

import hashlib
import hmac
import string
import zlib

ALPHABET = string.digits + string.ascii_letters
BODY_LEN = 32
CHECK_LEN = 6
ACCESS_PREFIX = "kwak_"


def base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        chars.append(ALPHABET[rem])
    return "".join(reversed(chars))


def checksum(prefix_and_body: str) -> str:
    return base62(zlib.crc32(prefix_and_body.encode()), CHECK_LEN)


def is_well_formed(token: str, prefix: str) -> bool:
    if len(token) != len(prefix) + BODY_LEN + CHECK_LEN or not token.startswith(prefix):
        return False
    # Base62 is exactly the ASCII letters and digits (and compare_digest takes only ASCII).
    rest = token[len(prefix) :]
    if not (rest.isascii() and rest.isalnum()):
        return False
    head, check = token[:-CHECK_LEN], token[-CHECK_LEN:]
    return hmac.compare_digest(checksum(head), check)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
