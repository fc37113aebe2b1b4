"""Reading the CLI's JSON input files into admin API messages.

Input is the proto3 JSON mapping (camelCase; the proto field names work too), the same
shape `get --json` prints, so output can be edited and sent back. Every error names the
file and the field path, before protobuf's own parser sees the document.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from . import descriptors

_M = TypeVar("_M", bound=Message)


def parse_json_object(text: str, source: str) -> dict[str, Any]:
    """Parses a JSON document that must be an object; errors give line and column."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{source}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}"
        ) from None
    if not isinstance(document, dict):
        raise ValueError(f"{source}: expected a JSON object, got {_json_kind(document)}")
    return document


def json_to_message(document: dict[str, Any], message: _M, source: str) -> _M:
    """Fills `message` from its proto3 JSON form; errors name the offending field path."""
    # protobuf's own errors nest "Failed to parse X field" clauses and sometimes omit the
    # path, so the document is checked against the descriptor first to name the field.
    problem = _find_problem(document, descriptors.of(message), "")
    if problem is not None:
        raise ValueError(f"{source}: {problem}")
    try:
        return json_format.ParseDict(document, message)
    except json_format.ParseError as err:
        raise ValueError(f"{source}: {str(err).splitlines()[0]}") from None


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _find_problem(value: object, descriptor: Descriptor, path: str) -> str | None:
    if not isinstance(value, dict):
        return f"{path or 'top level'}: expected an object, got {_json_kind(value)}"
    fields = {field.json_name: field for field in descriptor.fields}
    fields.update({field.name: field for field in descriptor.fields})
    for key, item in value.items():
        item_path = f"{path}.{key}" if path else str(key)
        field = fields.get(key)
        if field is None:
            expected = ", ".join(field.json_name for field in descriptor.fields)
            return f"{item_path}: unknown field (expected one of: {expected})"
        if item is None:
            continue  # null means "default" for every field in proto3 JSON
        if not field.is_repeated:
            problem = _check_value(item, field, item_path)
        elif not isinstance(item, list):
            problem = f"{item_path}: expected a list, got {_json_kind(item)}"
        else:
            problem = next(
                (
                    found
                    for index, element in enumerate(item)
                    if (found := _check_value(element, field, f"{item_path}[{index}]"))
                ),
                None,
            )
        if problem is not None:
            return problem
    return None


_INTEGER_TYPES = frozenset(
    {
        FieldDescriptor.CPPTYPE_INT32,
        FieldDescriptor.CPPTYPE_INT64,
        FieldDescriptor.CPPTYPE_UINT32,
        FieldDescriptor.CPPTYPE_UINT64,
    }
)


def _check_value(value: object, field: FieldDescriptor, path: str) -> str | None:
    cpp = field.cpp_type
    if cpp == FieldDescriptor.CPPTYPE_MESSAGE:
        message_type = descriptors.message_type(field)
        if message_type.full_name.startswith("google.protobuf."):
            return None  # well-known types have their own JSON forms; ParseDict checks them
        return _find_problem(value, message_type, path)
    if cpp == FieldDescriptor.CPPTYPE_STRING:
        ok, expected = isinstance(value, str), "a string"
    elif cpp == FieldDescriptor.CPPTYPE_BOOL:
        ok, expected = isinstance(value, bool), "a boolean"
    elif cpp == FieldDescriptor.CPPTYPE_ENUM:
        names = [item.name for item in descriptors.enum_type(field).values]
        ok = value in names or (isinstance(value, int) and not isinstance(value, bool))
        expected = f"one of {', '.join(names)}"
    elif cpp in _INTEGER_TYPES:
        ok = isinstance(value, int | str) and not isinstance(value, bool)
        expected = "an integer"
    else:
        ok = isinstance(value, int | float | str) and not isinstance(value, bool)
        expected = "a number"
    return None if ok else f"{path}: expected {expected}, got {_json_kind(value)}"
