"""An HTTP request as the request message of its RPC, and a response message as JSON.

Proto3 JSON both ways (camelCase; the proto names are accepted too). The body is checked
against the message's descriptor before it is parsed, so that an unknown field or a value
of the wrong JSON type is refused with its path (`router.rules[0].steps[0].keys[0].idd`),
never dropped. Path variables set the fields they name; query parameters are read on GET
and DELETE only (plus `updateMask` on PATCH), so a secret sent in a body field can never
arrive in a URL instead. A PATCH without `updateMask` updates the fields present in the
body, so that `{"disabled": false}` writes `disabled` (proto3 cannot tell false from
absent). `If-Match` makes the write conditional on the etag it carries.

Errors are `InvalidArgument` with one violation per field, which the listener renders
exactly as the servicers' own. No text here quotes a value the caller sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from control_plane.domain.errors import InvalidArgument, Violations

from .bindings import Binding

_FIELD_MASK = "google.protobuf.FieldMask"
_STRING_WKT = {"google.protobuf.Timestamp", "google.protobuf.Duration", _FIELD_MASK}
_INTEGERS = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED32,
    FieldDescriptor.TYPE_SFIXED64,
}
_FLOATS = {FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE}
_QUERY_VERBS = {"GET", "DELETE"}
_MASK = "update_mask"
_ETAG = "etag"


@dataclass(frozen=True, slots=True)
class HttpCall:
    """What the transcoder reads from one HTTP request."""

    variables: Mapping[str, str]
    query: tuple[tuple[str, str], ...]
    body: bytes
    if_match: str | None = None


def field_of(descriptor: Descriptor, key: str) -> FieldDescriptor | None:
    """A field by its JSON (camelCase) or proto name."""
    for field in descriptor.fields:
        if key in (field.json_name, field.name):
            return field
    return None


def _kind(field: FieldDescriptor) -> str:
    if field.message_type is not None:
        return "a JSON string" if field.message_type.full_name in _STRING_WKT else "a JSON object"
    if field.type == FieldDescriptor.TYPE_BOOL:
        return "true or false"
    if field.enum_type is not None:
        names = ", ".join(v.name for v in field.enum_type.values)
        return f"one of {names}"
    if field.type in _INTEGERS:
        return "an integer"
    if field.type in _FLOATS:
        return "a number"
    return "a JSON string"


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _fits(value: object, field: FieldDescriptor) -> bool:
    """Whether a JSON value has the kind the field's proto3 JSON mapping accepts."""
    if field.message_type is not None:
        if field.message_type.full_name in _STRING_WKT:
            return isinstance(value, str)
        return isinstance(value, dict)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if field.enum_type is not None:
        return isinstance(value, str | int)
    if field.type in _INTEGERS:
        return isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit())
    if field.type in _FLOATS:
        return isinstance(value, int | float | str)
    return isinstance(value, str)


def _check_object(value: object, descriptor: Descriptor, path: str, v: Violations) -> None:
    if not isinstance(value, dict):
        v.add(path or "body", "must be a JSON object")
        return
    for key, item in value.items():
        where = f"{path}.{key}" if path else str(key)
        field = field_of(descriptor, key)
        if field is None:
            v.add(where, f"unknown field of {descriptor.name}")
        elif item is None or _is_map(field):
            continue  # null is the default; map values are left to the parser
        elif field.is_repeated:
            if not isinstance(item, list):
                v.add(where, "must be a JSON array")
                continue
            for i, element in enumerate(item):
                _check_value(element, field, f"{where}[{i}]", v)
        else:
            _check_value(item, field, where, v)


def _check_value(value: object, field: FieldDescriptor, where: str, v: Violations) -> None:
    if not _fits(value, field):
        v.add(where, f"must be {_kind(field)}")
    elif field.message_type is not None and field.message_type.full_name not in _STRING_WKT:
        _check_object(value, field.message_type, where, v)


def _parse_body(body: bytes) -> object:
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise InvalidArgument.field("body", "must be UTF-8 JSON") from None
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        raise InvalidArgument.field("body", f"is not valid JSON ({error.msg} at {where})") from None


def _fill(target: Message, data: object) -> None:
    descriptor = cast(Descriptor, target.DESCRIPTOR)
    v = Violations()
    _check_object(data, descriptor, "", v)
    v.raise_if_any("invalid request body")
    try:
        json_format.ParseDict(cast(dict[str, Any], data), target, ignore_unknown_fields=False)
    except json_format.ParseError:
        # Only a value out of range or malformed within its kind gets here (a timestamp,
        # an integer too large); the parser's text would quote it.
        raise InvalidArgument.field(
            "body", f"holds a value out of range or malformed for {descriptor.name}"
        ) from None


def _chain(descriptor: Descriptor, path: str) -> list[FieldDescriptor] | None:
    """The fields a dotted path (JSON or proto names) goes through, or None."""
    chain: list[FieldDescriptor] = []
    current: Descriptor | None = descriptor
    for name in path.split("."):
        field = None if current is None else field_of(current, name)
        if field is None:
            return None
        chain.append(field)
        current = None if field.is_repeated else field.message_type
    return chain


def _holder(message: Message, chain: list[FieldDescriptor]) -> Message:
    for field in chain[:-1]:
        message = getattr(message, field.name)
    return message


def _scalar(text: str, field: FieldDescriptor, where: str) -> object:
    """A query or path text as the field's Python value."""
    if field.message_type is not None and field.message_type.full_name in _STRING_WKT:
        return text  # a FieldMask, Timestamp or Duration: its JSON string, parsed by _set
    if field.type == FieldDescriptor.TYPE_BOOL:
        if text not in ("true", "false"):
            raise InvalidArgument.field(where, "must be true or false")
        return text == "true"
    if field.enum_type is not None:
        by_name = field.enum_type.values_by_name.get(text)
        if by_name is None:
            raise InvalidArgument.field(where, f"must be {_kind(field)}")
        return by_name.number
    if field.type in _INTEGERS:
        try:
            return int(text)
        except ValueError:
            raise InvalidArgument.field(where, "must be an integer") from None
    if field.type in _FLOATS:
        try:
            return float(text)
        except ValueError:
            raise InvalidArgument.field(where, "must be a number") from None
    if field.message_type is not None:
        raise InvalidArgument.field(where, "cannot be set from the URL; send it in the body")
    return text


def _set(message: Message, chain: list[FieldDescriptor], text: str, where: str) -> None:
    field = chain[-1]
    holder = _holder(message, chain)
    value = _scalar(text, field, where)
    if field.message_type is not None:  # one of _STRING_WKT
        try:
            getattr(holder, field.name).FromJsonString(cast(str, value))
        except ValueError:
            kind = field.message_type.name
            example = {"Timestamp": "2026-12-01T00:00:00Z", "Duration": "3.5s"}.get(kind, "a,b")
            raise InvalidArgument.field(where, f"must be a {kind} such as {example}") from None
    elif field.is_repeated:
        getattr(holder, field.name).append(value)
    else:
        setattr(holder, field.name, value)


def _query(request: Message, binding: Binding, query: Iterable[tuple[str, str]]) -> None:
    """Sets the fields the query names."""
    descriptor = cast(Descriptor, request.DESCRIPTOR)
    bound = {v.split(".")[0] for v in binding.variables}
    if binding.body == "*":
        bound.update(f.name for f in descriptor.fields)
    elif binding.body:
        bound.add(binding.body)
    seen: set[str] = set()
    for key, text in query:
        chain = _chain(descriptor, key)
        if chain is None:
            raise InvalidArgument.field(key, "unknown query parameter")
        path = ".".join(f.name for f in chain)
        if binding.verb not in _QUERY_VERBS and path != _MASK:
            raise InvalidArgument.field(
                key, f"is not read from the query of a {binding.verb}: send it in the JSON body"
            )
        if chain[0].name in bound:
            raise InvalidArgument.field(key, "is set by the path or body, not the query")
        if path in seen and not chain[-1].is_repeated:
            raise InvalidArgument.field(key, "is given more than once")
        seen.add(path)
        _set(request, chain, text, key)


def _etag_target(request: Message, binding: Binding) -> Message | None:
    descriptor = cast(Descriptor, request.DESCRIPTOR)
    if _ETAG in descriptor.fields_by_name:
        return request
    if binding.body not in ("", "*"):
        resource = getattr(request, binding.body)
        if _ETAG in cast(Descriptor, resource.DESCRIPTOR).fields_by_name:
            return cast(Message, resource)
    return None


def _if_match(request: Message, binding: Binding, header: str) -> None:
    etag = header.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    etag = etag.strip('"')
    target = _etag_target(request, binding)
    if target is None:
        raise InvalidArgument.field("If-Match", f"{binding.method.name} is not conditional")
    if not etag or etag == "*":
        raise InvalidArgument.field("If-Match", "must be the etag of the resource")
    current = cast(str, getattr(target, _ETAG))
    if current and current != etag:
        raise InvalidArgument.field("If-Match", "differs from the etag in the body")
    setattr(target, _ETAG, etag)


def _derived_mask(request: Message, binding: Binding, data: object) -> None:
    descriptor = cast(Descriptor, request.DESCRIPTOR)
    if binding.verb != "PATCH" or _MASK not in descriptor.fields_by_name:
        return
    if binding.body in ("", "*") or not isinstance(data, dict):
        return
    resource = cast(Descriptor, descriptor.fields_by_name[binding.body].message_type)
    from_path = {v.split(".", 1)[1] for v in binding.variables if v.startswith(binding.body + ".")}
    paths = sorted(
        field.name
        for key in data
        if (field := field_of(resource, key)) is not None
        and field.name not in from_path
        and field.name != _ETAG
    )
    getattr(request, _MASK).paths.extend(paths)


def _variables(request: Message, variables: Mapping[str, str]) -> None:
    descriptor = cast(Descriptor, request.DESCRIPTOR)
    for path, text in variables.items():
        chain = cast(list[FieldDescriptor], _chain(descriptor, path))  # checked at start-up
        current = getattr(_holder(request, chain), chain[-1].name)
        if current and current != text:
            raise InvalidArgument.field(path, "differs from the value in the URL path")
        _set(request, chain, text, path)


def _whole_request(binding: Binding, data: object) -> bool:
    """Whether a body meant to be the resource is the whole request message instead: it has
    the resource's field name at its top (`{"providerKey": {…}, "value": …}`), which is no
    field of the resource itself, so the two readings cannot be confused."""
    if binding.body in ("", "*") or not isinstance(data, dict):
        return False
    field = binding.method.input_type.fields_by_name[binding.body]
    resource = cast(Descriptor, field.message_type)
    names = (field.json_name, field.name)
    return any(key in names for key in data) and not any(field_of(resource, n) for n in names)


def request_message(binding: Binding, call: HttpCall) -> Message:
    """The request message of `binding`'s RPC for one HTTP request.

    A route whose body is the resource (`body: "provider_key"`, AIP-133/134) also takes the
    proto3 JSON of the whole request message, so the gRPC request's JSON is valid input of
    its route too.
    """
    request = GetMessageClass(binding.method.input_type)()
    resource: object = None
    if binding.body:
        data = _parse_body(call.body)
        if binding.body == "*" or _whole_request(binding, data):
            _fill(request, data)
            body_field = binding.method.input_type.fields_by_name.get(binding.body)
            if body_field is not None and isinstance(data, dict):
                resource = data.get(body_field.json_name, data.get(body_field.name))
        else:
            _fill(getattr(request, binding.body), data)
            resource = data
    elif call.body.strip():
        raise InvalidArgument.field("body", f"{binding.verb} {binding.template} takes no body")
    _query(request, binding, call.query)
    mask = getattr(request, _MASK, None)
    if mask is not None and not mask.paths:
        _derived_mask(request, binding, resource)
    _variables(request, call.variables)
    if call.if_match is not None:
        _if_match(request, binding, call.if_match)
    return request


def response_body(message: Message) -> dict[str, Any]:
    """Proto3 JSON of a response: camelCase names, unset fields omitted."""
    return json_format.MessageToDict(message)


def etag_of(message: Message) -> str | None:
    """The etag of the one resource a response carries, for the `ETag` header."""
    for field, value in message.ListFields():
        if field.message_type is not None and not field.is_repeated:
            etag = getattr(value, _ETAG, "")
            if isinstance(etag, str) and etag:
                return etag
    return None
