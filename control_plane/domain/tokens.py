"""Bearer tokens: a recognisable prefix, random body and a checksum.

The prefix lets secret scanners find leaked tokens; the checksum lets a proxy
reject a mistyped or truncated token without any lookup. The format itself
lives in `data_plane.shared.tokens`, shared with the proxies. Only a SHA-256
of a token is stored: the body carries ~190 bits of entropy, so a fast hash
is sufficient (no password-style stretching needed).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from enum import Enum

from data_plane.shared import tokens as wire


class TokenKind(Enum):
    ACCESS = wire.ACCESS_PREFIX
    ADMIN = "kwadm_"
    OPERATOR = "kwop_"
    DATA_PLANE = "kwdp_"


def mint(kind: TokenKind, randbelow: Callable[[int], int] = secrets.randbelow) -> str:
    body = "".join(wire.ALPHABET[randbelow(62)] for _ in range(wire.BODY_LEN))
    head = kind.value + body
    return head + wire.checksum(head)


def is_well_formed(token: str, kind: TokenKind) -> bool:
    return wire.is_well_formed(token, kind.value)


def kind_of(token: str) -> TokenKind | None:
    for kind in TokenKind:
        if is_well_formed(token, kind):
            return kind
    return None


token_hash = wire.token_sha256
