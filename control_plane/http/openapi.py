"""The OpenAPI 3.1 document of the admin REST API, generated from the contract.

Paths and operations come from the same bindings the transcoder serves; schemas from
the request and response messages (proto3 JSON: camelCase names, 64-bit integers as
strings, enums by name, timestamps as RFC 3339 strings); descriptions from the comments
of the `.proto` sources, which `make proto` keeps in `keyway/v1/contract.binpb` (the
generated Python drops them). `python -m control_plane.http` prints it
(`make openapi`); the listener serves it at `/openapi.json`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from importlib import resources
from typing import Any, cast

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .bindings import Binding, Router

_REF = "#/components/schemas/"
_ERROR = "Error"
_INT64 = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}
_INT32 = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_SFIXED32,
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?s$"},
    "google.protobuf.FieldMask": {
        "type": "string",
        "description": "Comma-separated field paths (camelCase).",
    },
}
_QUERY_VERBS = {"GET", "DELETE"}
# Location path tags of descriptor.proto: FileDescriptorProto.message_type, .enum_type,
# .service; DescriptorProto.field, .nested_type, .enum_type; ServiceDescriptorProto.method.
_MESSAGE, _ENUM, _SERVICE = 4, 5, 6
_FIELD, _NESTED, _NESTED_ENUM, _METHOD = 2, 3, 4, 2


def _comments_of(files: descriptor_pb2.FileDescriptorSet) -> dict[str, str]:
    """Full name of each message, field, enum, service and method -> its leading comment."""
    found: dict[str, str] = {}
    for file in files.file:
        names: dict[tuple[int, ...], str] = {}

        def messages(
            prefix: tuple[int, ...], scope: str, items: Any, into: dict[tuple[int, ...], str]
        ) -> None:
            for i, message in enumerate(items):
                path, name = (*prefix, i), f"{scope}.{message.name}"
                into[path] = name
                for j, field in enumerate(message.field):
                    into[(*path, _FIELD, j)] = f"{name}.{field.name}"
                for j, enum in enumerate(message.enum_type):
                    into[(*path, _NESTED_ENUM, j)] = f"{name}.{enum.name}"
                messages((*path, _NESTED), name, message.nested_type, into)

        messages((_MESSAGE,), file.package, file.message_type, names)
        for i, enum in enumerate(file.enum_type):
            names[(_ENUM, i)] = f"{file.package}.{enum.name}"
        for i, service in enumerate(file.service):
            names[(_SERVICE, i)] = f"{file.package}.{service.name}"
            for j, method in enumerate(service.method):
                names[(_SERVICE, i, _METHOD, j)] = f"{file.package}.{service.name}.{method.name}"
        for location in file.source_code_info.location:
            name = names.get(tuple(location.path))
            if name is not None and location.leading_comments:
                found[name] = " ".join(location.leading_comments.split())
    return found


@functools.cache
def comments() -> dict[str, str]:
    data = resources.files("keyway.v1").joinpath("contract.binpb").read_bytes()
    return _comments_of(descriptor_pb2.FileDescriptorSet.FromString(data))


class _Schemas:
    """Collects the component schemas the operations reference."""

    def __init__(self, notes: dict[str, str]) -> None:
        self.notes = notes
        self.found: dict[str, dict[str, Any]] = {}

    def ref(self, message: Descriptor) -> dict[str, Any]:
        if message.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[message.full_name])
        if message.full_name not in self.found:
            self.found[message.full_name] = {}  # placeholder: recursion ends here
            self.found[message.full_name] = self._message(message)
        return {"$ref": _REF + message.full_name}

    def _enum(self, enum: EnumDescriptor) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string", "enum": [v.name for v in enum.values]}
        if note := self.notes.get(enum.full_name):
            schema["description"] = note
        return schema

    def _single(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.message_type is not None:
            return self.ref(field.message_type)
        if field.enum_type is not None:
            return self._enum(field.enum_type)
        if field.type == FieldDescriptor.TYPE_BOOL:
            return {"type": "boolean"}
        if field.type in _INT32:
            return {"type": "integer", "format": "int32"}
        if field.type in _INT64:
            # proto3 JSON writes 64-bit integers as strings (and reads either).
            return {"type": "string", "format": "int64"}
        if field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
            return {"type": "number"}
        if field.type == FieldDescriptor.TYPE_BYTES:
            return {"type": "string", "contentEncoding": "base64"}
        return {"type": "string"}

    def field(self, field: FieldDescriptor) -> dict[str, Any]:
        schema = self._single(field)
        if field.is_repeated:
            schema = {"type": "array", "items": schema}
        if note := self.notes.get(field.full_name):
            schema = (
                {**schema, "description": note}
                if "$ref" not in schema
                else {
                    "allOf": [schema],
                    "description": note,
                }
            )
        return schema

    def _message(self, message: Descriptor) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {f.json_name: self.field(f) for f in message.fields},
            "additionalProperties": False,
        }
        if note := self.notes.get(message.full_name):
            schema["description"] = note
        return schema


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "The Google JSON error; details are google.rpc messages "
        "(ErrorInfo, BadRequest, PreconditionFailure, QuotaFailure), each with its @type.",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "status"],
                "properties": {
                    "code": {"type": "integer", "description": "The HTTP status."},
                    "message": {"type": "string"},
                    "status": {"type": "string", "description": "The gRPC status code name."},
                    "details": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["@type"],
                            "properties": {"@type": {"type": "string"}},
                            "additionalProperties": True,
                        },
                    },
                },
            }
        },
    }


def _parameters(binding: Binding, schemas: _Schemas) -> Iterator[dict[str, Any]]:
    request = binding.method.input_type
    for variable in binding.variables:
        yield {
            "name": variable,
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            "description": schemas.notes.get(f"{request.full_name}.{variable.split('.')[-1]}")
            or f"Sets `{variable}` of the request.",
        }
    bound = {v.split(".")[0] for v in binding.variables} | {binding.body}
    for field in request.fields:
        if field.name in bound or binding.body == "*":
            continue
        mask = binding.verb == "PATCH" and field.name == "update_mask"
        if binding.verb in _QUERY_VERBS or mask:
            if field.message_type is not None and field.message_type.full_name not in _WELL_KNOWN:
                continue
            yield {"name": field.json_name, "in": "query", "schema": schemas.field(field)}


def _operation(binding: Binding, operation_id: str, schemas: _Schemas) -> dict[str, Any]:
    method = binding.method
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "tags": [method.containing_service.name],
        "summary": method.name,
        "description": schemas.notes.get(method.full_name, ""),
        "parameters": list(_parameters(binding, schemas)),
        "responses": {
            "default": {
                "description": "An error",
                "content": {"application/json": {"schema": {"$ref": _REF + _ERROR}}},
            }
        },
    }
    if binding.body:
        schema = schemas.ref(method.input_type)
        if binding.body != "*":
            # The resource, or (see transcode.request_message) the whole request.
            resource = method.input_type.fields_by_name[binding.body].message_type
            schema = {"anyOf": [schemas.ref(cast(Descriptor, resource)), schema]}
        operation["requestBody"] = {
            "required": binding.body != "*",
            "content": {"application/json": {"schema": schema}},
        }
    status = binding.success_status
    if status == 204:
        operation["responses"]["204"] = {"description": "Done"}
    else:
        operation["responses"][str(status)] = {
            "description": "Created" if status == 201 else "OK",
            "content": {"application/json": {"schema": schemas.ref(method.output_type)}},
        }
    return operation


def document(router: Router, notes: dict[str, str] | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route of `router`."""
    schemas = _Schemas(comments() if notes is None else notes)
    paths: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    for binding in router.bindings:
        name = f"{binding.method.containing_service.name}_{binding.method.name}"
        counts[name] = counts.get(name, 0) + 1
        operation_id = name if counts[name] == 1 else f"{name}_{counts[name]}"
        operation = _operation(binding, operation_id, schemas)
        paths.setdefault(binding.template, {})[binding.verb.lower()] = operation
    components = dict(sorted(schemas.found.items()))
    components[_ERROR] = _error_schema()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Keyway admin API",
            "version": "v1",
            "description": "The admin API over HTTP, transcoded from the gRPC contract "
            "(keyway.v1). Every path is also served under /v1. Authenticate with "
            "`Authorization: Bearer <admin API key or operator token>`.",
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An account's admin API key (kwadm_…) or an operator "
                    "token (kwop_…).",
                }
            },
        },
    }


def openapi_routes(router: Router) -> list[BaseRoute]:
    body = json.dumps(document(router), separators=(",", ":")).encode()

    async def openapi(_: Request) -> Response:
        return Response(body, media_type="application/json")

    return [Route("/openapi.json", openapi, methods=["GET"])]
