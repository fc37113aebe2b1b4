"""The admin REST API: each request transcoded to its RPC and served by the gRPC servicer.

The servicer method is awaited in-process with a call context that carries the request's
`Authorization` header as the gRPC metadata it would have been. So authentication,
validation, tenancy, quotas and the error details are the servicers' own, written once:
an HTTP caller cannot reach anything a gRPC caller could not, and gets the same answer.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast
from urllib.parse import unquote

import grpc
from google.protobuf.message import Message
from google.rpc import status_pb2
from starlette.requests import Request
from starlette.responses import Response

from control_plane.api.errors import internal_status, to_status
from control_plane.domain.errors import DomainError, InvalidArgument, NotFound

from .bindings import Router
from .errors import error_body
from .transcode import HttpCall, etag_of, request_message, response_body

log = logging.getLogger("keyway.control_plane.http")

Handler = Callable[[Message, Any], Awaitable[Message]]

_DETAILS_KEY = "grpc-status-details-bin"
ROUTE_KEY = "keyway.route"
"""Where a request's scope notes the route template it matched, for the request log."""


class RpcFailed(Exception):
    """A servicer aborted its call; `status` is what a gRPC client would have received."""

    def __init__(self, status: status_pb2.Status) -> None:
        super().__init__(status.message)
        self.status = status


class _CallContext:
    """What the servicers use of a `grpc.aio.ServicerContext`: metadata in, abort out."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    async def abort(
        self,
        code: grpc.StatusCode,
        details: str = "",
        trailing_metadata: Sequence[tuple[str, str | bytes]] = (),
    ) -> None:
        status = status_pb2.Status(code=code.value[0], message=details)
        for key, value in trailing_metadata:
            if key == _DETAILS_KEY and isinstance(value, bytes):
                status = status_pb2.Status.FromString(value)
        raise RpcFailed(status)


def handlers(servicers: Mapping[str, object], router: Router) -> dict[str, Handler]:
    """RPC path -> the bound servicer method, for every annotated RPC.

    Raises LookupError at start-up when a route's service has no servicer.
    """
    found: dict[str, Handler] = {}
    for binding in router.bindings:
        service = binding.method.containing_service.full_name
        if service not in servicers:
            raise LookupError(f"no servicer for {service} (route {binding.template})")
        found[binding.rpc] = getattr(servicers[service], binding.method.name)
    return found


def _json(body: object, status: int, headers: Mapping[str, str] | None = None) -> Response:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(data, status, headers=headers, media_type="application/json")


def _failure(status: status_pb2.Status, http: int | None = None) -> Response:
    body = error_body(status, http)
    return _json(body, body["error"]["code"])


class _Refused(Exception):
    """A refusal with its own HTTP status (405, 413) and headers."""

    def __init__(
        self, error: DomainError, http: int, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(error.message)
        self.error = error
        self.http = http
        self.headers = dict(headers or {})


async def _read_body(request: Request, limit: int) -> bytes:
    too_large = _Refused(InvalidArgument.field("body", f"is larger than {limit} bytes"), 413)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _path_parts(request: Request) -> tuple[str, ...]:
    # Split before decoding, so that an id holding `%2F` stays one segment.
    raw = cast(bytes, request.scope.get("raw_path") or request.url.path.encode())
    path = raw.decode("latin-1").split("?", 1)[0]
    return tuple(unquote(part) for part in path.strip("/").split("/"))


class RestApi:
    """The ASGI endpoint of every annotated RPC."""

    def __init__(
        self, router: Router, servicers: Mapping[str, object], *, max_body_bytes: int
    ) -> None:
        self.router = router
        self._handlers = handlers(servicers, router)
        self._max_body = max_body_bytes

    async def handle(self, request: Request) -> Response:
        """The one place where this endpoint's failures become responses."""
        try:
            return await self._serve(request)
        except RpcFailed as failed:
            return _failure(failed.status)
        except _Refused as refused:
            response = _failure(to_status(refused.error)[1], refused.http)
            response.headers.update(refused.headers)
            return response
        except DomainError as error:
            return _failure(to_status(error)[1])
        except Exception:
            request_id = secrets.token_hex(6)
            log.exception("unexpected error in %s (request id %s)", request.url.path, request_id)
            return _failure(internal_status(request_id)[1])

    async def _serve(self, request: Request) -> Response:
        parts = _path_parts(request)
        found = self.router.find(request.method, parts)
        if found is None:
            request.scope[ROUTE_KEY] = "(no route)"
            allowed = self.router.verbs(parts)
            if not allowed:
                raise NotFound(f"no admin API route {request.url.path}")
            listed = ", ".join(allowed)
            raise _Refused(
                InvalidArgument(
                    f"{request.method} is not a method of this path; it takes {listed}"
                ),
                405,
                {"Allow": listed},
            )
        binding, variables = found
        request.scope[ROUTE_KEY] = binding.template
        body = await _read_body(request, self._max_body)
        message = request_message(
            binding,
            HttpCall(
                variables=variables,
                query=tuple(request.query_params.multi_items()),
                body=body,
                if_match=request.headers.get("if-match"),
            ),
        )
        authorization = request.headers.get("authorization")
        metadata = () if authorization is None else (("authorization", authorization),)
        reply = await self._handlers[binding.rpc](message, _CallContext(metadata))
        status = binding.success_status
        etag = etag_of(reply)
        headers = {} if etag is None else {"ETag": f'"{etag}"'}
        if status == 204:
            return Response(status_code=204, headers=headers)
        return _json(response_body(reply), status, headers)
