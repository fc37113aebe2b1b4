"""Opaque, random, type-prefixed resource ids."""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable

ACCOUNT = "acct_"
ADMIN_API_KEY = "adk_"
PROVIDER_KEY = "pk_"
ACCESS_KEY = "ak_"
CONFIGURATION = "akc_"
CUSTOM_PROVIDER = "cp_"
DATA_PLANE_CREDENTIAL = "dpc_"
OPERATOR = "op_"

_BODY = re.compile(r"[a-z2-7]{16}")


def new_id(prefix: str, token_bytes: Callable[[int], bytes] = secrets.token_bytes) -> str:
    body = base64.b32encode(token_bytes(10)).decode().lower()
    return prefix + body


def looks_like(value: str, prefix: str) -> bool:
    return value.startswith(prefix) and _BODY.fullmatch(value[len(prefix) :]) is not None
