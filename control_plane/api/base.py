"""Shared plumbing for servicers: authenticate, run, translate errors."""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from google.protobuf import field_mask_pb2
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from control_plane.domain import masks, paging
from control_plane.domain.errors import DomainError, Violations
from control_plane.domain.fields import check_common, page_size
from control_plane.domain.quotas import DEFAULT_QUOTAS, Quotas
from control_plane.store.store import Page, Store

from .auth import Principal, authenticate
from .errors import internal_status, to_status, trailing_metadata

log = logging.getLogger("keyway.control_plane")

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)


@dataclass(frozen=True, slots=True)
class Options:
    """Operator choices that shape validation and the catalog."""

    provider_base_urls: dict[str, str] = field(default_factory=dict)
    allow_private_upstreams: bool = False
    quotas: Quotas = DEFAULT_QUOTAS


class Servicer:
    def __init__(self, store: Store, options: Options) -> None:
        self.store = store
        self.options = options


S = TypeVar("S", bound=Servicer)


def rpc(
    fn: Callable[[S, Req, Principal], Resp],
) -> Callable[[S, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]:
    """Wraps a synchronous handler as a grpc.aio method.

    Store calls are short SQLite transactions; running them on the event loop
    keeps every write serialised without a lock.
    """
    return _wrap(fn, _awaitable(fn), account_scoped=False)


def account_rpc(
    fn: Callable[[S, Req, Principal], Resp],
) -> Callable[[S, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]:
    """`rpc` for methods acting on the caller's account: the wrong kind of
    credential is refused before any input is looked at."""
    return _wrap(fn, _awaitable(fn), account_scoped=True)


def slow_rpc(
    fn: Callable[[S, Req, Principal], Awaitable[Resp]],
) -> Callable[[S, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]:
    """`rpc` for a coroutine handler whose long work (a pass over every secret) awaits a
    worker thread, so the event loop keeps serving everything else."""
    return _wrap(fn, fn, account_scoped=False)


def _awaitable(
    fn: Callable[[S, Req, Principal], Resp],
) -> Callable[[S, Req, Principal], Awaitable[Resp]]:
    async def call(self: S, request: Req, principal: Principal) -> Resp:
        return fn(self, request, principal)

    return call


def _wrap(
    fn: Callable[..., object],
    call: Callable[[S, Req, Principal], Awaitable[Resp]],
    *,
    account_scoped: bool,
) -> Callable[[S, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]:
    @functools.wraps(fn)
    async def method(self: S, request: Req, context: grpc.aio.ServicerContext[Any, Any]) -> Resp:
        try:
            principal = authenticate(self.store, context.invocation_metadata())
            if account_scoped:
                principal.account()
            return await call(self, request, principal)
        except DomainError as error:
            code, status = to_status(error)
        except Exception:
            request_id = secrets.token_hex(6)
            log.exception("unexpected error in %s (request id %s)", fn.__name__, request_id)
            code, status = internal_status(request_id)
        await context.abort(code, status.message, trailing_metadata(status))

    return method


def timestamp(micros: int | None) -> Timestamp | None:
    if micros is None:
        return None
    ts = Timestamp()
    ts.FromMicroseconds(micros)
    return ts


def common(row: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments every resource message shares."""
    return {
        "id": row["id"],
        "description": row["description"],
        "metadata": row["metadata"],
        "create_time": timestamp(row["create_time"]),
        "update_time": timestamp(row["update_time"]),
        "etag": row["etag"],
    }


def page_args(size: int, token: str, filter_key: str = "") -> dict[str, int]:
    return {"after": paging.decode(token, filter_key), "limit": page_size(size)}


def next_token(page: Page, filter_key: str = "") -> str:
    return "" if page.next_after is None else paging.encode(page.next_after, filter_key)


def check_update(
    values: dict[str, Any], current: dict[str, Any], *, name_field: str = "name"
) -> None:
    """Validates name/description/metadata as they will be after an update."""

    def after(column: str) -> str:
        return str(values[column] if column in values else current[column])

    v = Violations()
    check_common(
        v,
        "",
        name=after("name"),
        description=after("description"),
        metadata=after("metadata"),
        name_field=name_field,
    )
    v.raise_if_any()


def changes(
    resource: Message,
    mask: field_mask_pb2.FieldMask,
    updatable: dict[str, str],
) -> dict[str, Any]:
    """Column values for the masked fields; `updatable` maps field -> column."""
    chosen = masks.resolve(resource, list(mask.paths), updatable)
    return {updatable[f]: getattr(resource, f) for f in chosen}
