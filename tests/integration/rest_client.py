"""Calling the admin REST API in tests: a control plane with its HTTP listener, and an
encoder that turns an RPC's request message into the HTTP request its binding describes
(so a table of gRPC requests drives both transports)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import grpc
import httpx
from google.protobuf import descriptor_pool, json_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from control_plane.http import admin_router
from control_plane.http.bindings import Binding, Router
from control_plane.server import ADMIN_SERVICES, Settings

from .rpc_helpers import running

ROUTER: Router = admin_router(list(ADMIN_SERVICES))


def rest_settings(data_dir: Path, **overrides: Any) -> Settings:
    return Settings(listen="127.0.0.1:0", data_dir=data_dir, http_listen="127.0.0.1:0", **overrides)


@dataclass
class RestPlane:
    """A running control plane and an HTTP client on its HTTP listener."""

    url: str
    http: httpx.Client
    channel: grpc.Channel
    operator_token: str
    admin_token: str
    server: Any

    def headers(self, token: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"} if token else {}

    def revision(self) -> int:
        return int(self.server.store.revision())


@contextmanager
def rest_plane(data_dir: Path, **overrides: Any) -> Iterator[RestPlane]:
    with running(rest_settings(data_dir, **overrides)) as cp:
        assert cp.server.http is not None
        url = f"http://127.0.0.1:{cp.server.http.port}"
        with httpx.Client(base_url=url, timeout=30) as client:
            yield RestPlane(
                url=url,
                http=client,
                channel=cp.channel,
                operator_token=cp.operator_token,
                admin_token=cp.admin_token,
                server=cp.server,
            )


def binding_of(rpc: str, index: int = 0) -> Binding:
    """The `index`th binding of an RPC (`/keyway.v1.Service/Method`)."""
    return ROUTER.by_rpc()[rpc][index]


def _pop(data: dict[str, Any], path: list[str]) -> None:
    if len(path) == 1:
        data.pop(path[0], None)
    elif isinstance(data.get(path[0]), dict):
        _pop(data[path[0]], path[1:])


def _get(message: Message, path: str) -> str:
    value: Any = message
    for name in path.split("."):
        value = getattr(value, name)
    return str(value)


def encode(
    binding: Binding, message: Message, *, whole: bool = False
) -> tuple[str, str, dict[str, Any], Any]:
    """(verb, path, query params, JSON body or None) of `message` sent over `binding`; with
    `whole`, a route whose body is the resource gets the whole request's JSON instead."""
    path = "/" + "/".join(
        quote(_get(message, s[1:-1]), safe="") if s.startswith("{") else s for s in binding.segments
    )
    data = json_format.MessageToDict(message)
    camel = {f.name: f.json_name for f in cast(Descriptor, message.DESCRIPTOR).fields}
    for variable in binding.variables:
        head, *rest = variable.split(".")
        if rest:
            inner = cast(
                Descriptor, cast(Descriptor, message.DESCRIPTOR).fields_by_name[head].message_type
            )
            names = [camel[head], *(inner.fields_by_name[r].json_name for r in rest)]
        else:
            names = [camel[head]]
        _pop(data, names)
    body: Any = None
    query: dict[str, Any] = {}
    if binding.body == "*" or (binding.body and whole):
        body = data
    elif binding.body:
        body = data.pop(camel[binding.body], {})
        if "updateMask" in data:
            query["updateMask"] = data.pop("updateMask")
        if data:
            raise ValueError(f"{sorted(data)} of {binding.rpc} have no place in its HTTP request")
    else:
        query.update(data)
    return binding.verb, path, query, body


def method_types(rpc: str) -> tuple[type[Message], type[Message]]:
    service, method = rpc.strip("/").split("/")
    found = descriptor_pool.Default().FindServiceByName(service).methods_by_name[method]
    return GetMessageClass(found.input_type), GetMessageClass(found.output_type)


def grpc_call(channel: grpc.Channel, rpc: str, message: Message, token: str) -> Message:
    _, response_type = method_types(rpc)
    call: grpc.UnaryUnaryMultiCallable[Message, Message] = channel.unary_unary(
        rpc,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_type.FromString,
    )
    return call(message, metadata=(("authorization", f"Bearer {token}"),))


def http_call(
    plane: RestPlane, binding: Binding, message: Message, token: str, *, whole: bool = False
) -> httpx.Response:
    verb, path, query, body = encode(binding, message, whole=whole)
    return plane.http.request(verb, path, params=query, json=body, headers=plane.headers(token))
