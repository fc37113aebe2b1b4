"""Shared plumbing for servicers: authenticate, run, translate errors."""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf import field_mask_pb2
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from control_plane.domain import masks, paging, tokens
from control_plane.domain.errors import DomainError, Violations
from control_plane.domain.fields import check_common, page_size
from control_plane.domain.quotas import DEFAULT_QUOTAS, Quotas
from control_plane.domain.tokens import TokenKind
from control_plane.store.port import Store, call
from control_plane.store.records import Credential, Labels, Page

from . import audit
from .auth import Principal, authenticate
from .errors import internal_status, to_status, trailing_metadata

log = logging.getLogger("keyway.control_plane")

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)
_Metadata = Iterable[tuple[str, str | bytes]] | None


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

    The handler (authentication included) runs on the store's executor, never on the
    event loop: a database call may take a network round trip. So a handler must not
    touch what lives on the loop (streams, the status book); `async_rpc` is for those.
    """
    return _wrap(fn, _on_store(fn, account_scoped=False))


def account_rpc(
    fn: Callable[[S, Req, Principal], Resp],
) -> Callable[[S, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]:
    """`rpc` for methods acting on the caller's account: the wrong kind of
    credential is refused before any input is looked at."""
    return _wrap(fn, _on_store(fn, account_scoped=True))


def async_rpc(
    fn: Callable[[S, Req, Principal], Awaitable[Resp]],
) -> Callable[[S, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]:
    """`rpc` for a coroutine handler, run on the event loop: for work on loop state, or long
    work on worker threads. It reaches the store with `await call(self.store, …)` only."""

    async def handle(self: S, request: Req, metadata: _Metadata) -> Resp:
        principal = await call(self.store, authenticate, self.store, metadata)
        try:
            response = await fn(self, request, principal)
        except BaseException as error:
            audit.record(fn.__name__, principal, request, None, error)
            raise
        audit.record(fn.__name__, principal, request, response, None)
        return response

    return _wrap(fn, handle)


def _on_store(
    fn: Callable[[S, Req, Principal], Resp], *, account_scoped: bool
) -> Callable[[S, Req, _Metadata], Awaitable[Resp]]:
    def handle(self: S, request: Req, metadata: _Metadata) -> Resp:
        principal = authenticate(self.store, metadata)
        if account_scoped:
            principal.account()
        try:
            response = fn(self, request, principal)
        except BaseException as error:
            audit.record(fn.__name__, principal, request, None, error)
            raise
        audit.record(fn.__name__, principal, request, response, None)
        return response

    async def offloaded(self: S, request: Req, metadata: _Metadata) -> Resp:
        return await call(self.store, handle, self, request, metadata)

    return offloaded


def _wrap(
    fn: Callable[..., object],
    handle: Callable[[S, Req, _Metadata], Awaitable[Resp]],
) -> Callable[[S, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]:
    """The one place where a handler's errors become a gRPC status."""

    @functools.wraps(fn)
    async def method(self: S, request: Req, context: grpc.aio.ServicerContext[Any, Any]) -> Resp:
        try:
            return await handle(self, request, context.invocation_metadata())
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


class _Resource(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def create_time_us(self) -> int: ...
    @property
    def update_time_us(self) -> int: ...
    @property
    def etag(self) -> str: ...
    @property
    def fields(self) -> Labels: ...


def common(record: _Resource) -> dict[str, Any]:
    """Constructor arguments every resource message shares."""
    return {
        "id": record.id,
        "description": record.fields.description,
        "metadata": record.fields.metadata,
        "create_time": timestamp(record.create_time_us),
        "update_time": timestamp(record.update_time_us),
        "etag": record.etag,
    }


def page_args(size: int, token: str, filter_key: str = "") -> dict[str, int]:
    return {"after": paging.decode(token, filter_key), "limit": page_size(size)}


def next_token(page: Page[Any], filter_key: str = "") -> str:
    return "" if page.next_after is None else paging.encode(page.next_after, filter_key)


def masked(
    resource: Message, mask: field_mask_pb2.FieldMask, updatable: Mapping[str, str]
) -> dict[str, str]:
    """The fields an update writes: message field -> the record field it sets."""
    chosen = masks.resolve(resource, list(mask.paths), updatable)
    return {name: updatable[name] for name in sorted(chosen)}


def new_credential(
    store: Store,
    kind: TokenKind,
    fields: Labels,
    *,
    account_id: str | None = None,
    field_prefix: str = "",
) -> tuple[Credential, str]:
    """Checks the labels, mints a token of `kind` and stores the credential: it and its
    token (shown this once; only a hash is kept)."""
    v = Violations()
    check_common(
        v,
        field_prefix,
        name=fields.name,
        description=fields.description,
        metadata=fields.metadata,
    )
    v.raise_if_any()
    token = tokens.mint(kind)
    return store.create_credential(kind, account_id=account_id, fields=fields, token=token), token


def check_labels(resource: Message, *, name_field: str = "name") -> None:
    """Validates name/description/metadata of a resource as it will be stored."""
    v = Violations()
    check_common(
        v,
        "",
        name=getattr(resource, name_field),
        description=getattr(resource, "description"),  # noqa: B009 - any resource message
        metadata=getattr(resource, "metadata"),  # noqa: B009
        name_field=name_field,
    )
    v.raise_if_any()
