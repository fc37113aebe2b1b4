"""The audit trail of admin writes: one log line per write RPC, whatever its result.

`keyway.audit  rpc=CreateProviderKey caller=<credential id> kind=admin
account=<account id> resource=<id> result=OK` — who (the id of the credential that
called, never its token), what, on which resource, and how it ended (a gRPC code name).
A refused write is logged too. Request bodies are never logged: they may hold secrets.
"""

from __future__ import annotations

import logging
from typing import Any

from google.protobuf.message import Message

from control_plane.domain.errors import DomainError

from .auth import Principal
from .errors import to_status

log = logging.getLogger("keyway.audit")

_WRITES = ("Create", "Update", "Delete", "Rotate", "Reset")


def is_write(rpc: str) -> bool:
    return rpc.startswith(_WRITES)


def _resource_id(message: Message | None) -> str:
    """The first `id` found: the message's own, else that of a field's message."""
    if message is None:
        return ""
    own: Any = message
    if "id" in message.DESCRIPTOR.fields_by_name and own.id:
        return str(own.id)
    for field in message.DESCRIPTOR.fields:
        if field.message_type is None or field.is_repeated or not message.HasField(field.name):
            continue
        inner: Any = getattr(message, field.name)
        if "id" in inner.DESCRIPTOR.fields_by_name and inner.id:
            return str(inner.id)
    return ""


def record(
    rpc: str,
    principal: Principal,
    request: Message,
    response: Message | None,
    error: BaseException | None,
) -> None:
    """The audit line of one call, when `rpc` is a write."""
    if not is_write(rpc):
        return
    if error is None:
        result = "OK"
    elif isinstance(error, DomainError):
        result = to_status(error)[0].name
    else:
        result = "INTERNAL"
    log.info(
        "rpc=%s caller=%s kind=%s account=%s resource=%s result=%s",
        rpc,
        principal.credential_id,
        principal.kind.name.lower(),
        principal.account_id or "-",
        _resource_id(response) or _resource_id(request) or "-",
        result,
    )
