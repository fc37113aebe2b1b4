"""The id every response carries in `x-keyway-request-id`, errors included."""

from __future__ import annotations

import secrets

HEADER = b"x-keyway-request-id"


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)
