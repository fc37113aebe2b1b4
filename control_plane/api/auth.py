"""Who is calling: bearer tokens in gRPC metadata, resolved through the store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from control_plane.domain import tokens
from control_plane.domain.errors import DomainError, PermissionDenied, Unauthenticated
from control_plane.domain.tokens import TokenKind
from control_plane.store.port import Store, call

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")


@dataclass(frozen=True, slots=True)
class Principal:
    kind: TokenKind
    credential_id: str
    account_id: str | None

    def account(self) -> str:
        """The account an account-scoped RPC acts on."""
        if self.kind is not TokenKind.ADMIN or self.account_id is None:
            raise PermissionDenied(
                "this RPC acts on one account: call it with that account's admin API key, "
                "not the operator token (the operator makes one with "
                "`keyway admin admin-keys create --account ACCOUNT_ID --name NAME`)"
            )
        return self.account_id

    def require_operator(self) -> None:
        if self.kind is not TokenKind.OPERATOR:
            raise PermissionDenied(
                "this RPC needs the operator token: the control plane writes it to "
                "operator.token in its data directory on first start "
                "(`--token-file .keyway/operator.token` with `make run`)"
            )

    def may_act_on(self, account_id: str) -> bool:
        return self.kind is TokenKind.OPERATOR or self.account_id == account_id


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("authorization metadata must be 'Bearer <token>'")
            return token.strip()
    raise Unauthenticated(
        "missing authorization metadata: send 'authorization: Bearer <token>' "
        "(the CLI reads --token or KEYWAY_TOKEN)"
    )


def authenticate(store: Store, metadata: Iterable[tuple[str, str | bytes]] | None) -> Principal:
    token = bearer_token(metadata)
    kind = tokens.kind_of(token)
    if kind is None:
        # Caught by the checksum before any lookup; says nothing about storage.
        raise Unauthenticated("malformed token (wrong prefix, length or checksum)")
    found = store.authenticate(token)
    if found is None:
        raise Unauthenticated("unknown or revoked token")
    if found.kind is TokenKind.DATA_PLANE:
        raise PermissionDenied("data-plane tokens cannot call the admin API")
    return Principal(found.kind, found.id, found.account_id)


REFLECTION_PREFIX = "/grpc.reflection."


class ReflectionGate(grpc.aio.ServerInterceptor):
    """gRPC server reflection only for callers with an admin or operator token.

    The descriptors are public (the proto files are the contract), but an open
    reflection service tells anyone who can reach the port what it is; grpcurl and
    friends send the token like any other client (`-H 'authorization: Bearer …'`).
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[_Req, _Resp] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[_Req, _Resp] | None:
        if handler_call_details.method.startswith(REFLECTION_PREFIX):
            try:
                metadata = handler_call_details.invocation_metadata
                await call(self._store, authenticate, self._store, metadata)
            except DomainError as error:
                return _refusal(error)
        return await continuation(handler_call_details)


def _refusal(error: DomainError) -> grpc.RpcMethodHandler[Any, Any]:
    code = (
        grpc.StatusCode.PERMISSION_DENIED
        if isinstance(error, PermissionDenied)
        else grpc.StatusCode.UNAUTHENTICATED
    )
    message = f"server reflection needs an admin or operator token: {error.message}"

    async def refuse(
        requests: AsyncIterator[object], context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        await context.abort(code, message)

    return grpc.stream_stream_rpc_method_handler(refuse)
