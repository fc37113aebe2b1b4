"""Rendering of admin API messages for humans and scripts.

Humans get aligned tables; scripts get the proto3 JSON mapping (camelCase), which is
also the documented input shape (`json_input`), so `get --json` output can be edited and
sent back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from . import descriptors

_EMPTY = "-"


def to_json(value: Message | Sequence[Message]) -> str:
    """The proto3 JSON mapping of one message, or a JSON array of several."""
    if isinstance(value, Message):
        return json.dumps(json_format.MessageToDict(value), indent=2, sort_keys=False)
    items = [json_format.MessageToDict(item) for item in value]
    return json.dumps(items, indent=2, sort_keys=False)


def to_json_short_enums(value: Message | Sequence[Message]) -> str:
    """Like `to_json`, with enum values named without their type prefix.

    `DATA_PLANE_STATE_IN_SYNC` becomes `IN_SYNC`. For read-only outputs (states, not
    inputs): `json_input.json_to_message` expects the full names, so such output is not meant to
    be sent back.
    """
    if isinstance(value, Message):
        return json.dumps(_short_enums(value, json_format.MessageToDict(value)), indent=2)
    items = [_short_enums(item, json_format.MessageToDict(item)) for item in value]
    return json.dumps(items, indent=2)


def render_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    table = [list(headers), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]
    return "\n".join(lines)


def render_detail(message: Message) -> str:
    """Every field of one message as `name  value` lines; nested values may span lines."""
    names = [field.name for field in descriptors.of(message).fields]
    width = max(len(name) for name in names)
    lines: list[str] = []
    for name in names:
        value_lines = format_field(message, name).split("\n")
        lines.append(f"{name.ljust(width)}  {value_lines[0]}")
        lines.extend(f"{' ' * width}  {extra}" for extra in value_lines[1:])
    return "\n".join(lines)


def format_field(message: Message, name: str) -> str:
    """One field for a table cell: empty values as `-`, enums as short lowercase labels."""
    field = descriptors.of(message).fields_by_name[name]
    value = getattr(message, name)
    if field.is_repeated:
        parts = [_format_scalar(field, item) for item in value]
        return ", ".join(parts) if parts else _EMPTY
    if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE and not message.HasField(name):
        # An absent scope is not "nothing": it means every provider and model.
        return (
            "everything allowed" if descriptors.message_type(field).full_name == _ACCESS else _EMPTY
        )
    return _format_scalar(field, value)


def format_timestamp(seconds: int) -> str:
    """ISO-8601 UTC to the second, e.g. `2025-01-02T03:04:05Z`."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def enum_label(enum: EnumDescriptor, number: int) -> str:
    """`API_FORMAT_OPENAI` → `openai`, `AUTH_STYLE_X_API_KEY` → `x-api-key`; unset → `-`."""
    if number == 0:
        return _EMPTY
    value = enum.values_by_number.get(number)
    if value is None:
        return str(number)
    return value.name.removeprefix(_enum_prefix(enum)).lower().replace("_", "-")


def enum_name(enum: EnumDescriptor, number: int) -> str:
    """`DATA_PLANE_STATE_IN_SYNC` → `IN_SYNC`: for states shown, never typed; unset → `-`."""
    if number == 0:
        return _EMPTY
    value = enum.values_by_number.get(number)
    if value is None:
        return str(number)
    return value.name.removeprefix(_enum_prefix(enum))


def enum_labels(enum: EnumDescriptor) -> tuple[str, ...]:
    """The labels a user may type, in declaration order, without the unspecified value."""
    return tuple(enum_label(enum, value.number) for value in enum.values if value.number != 0)


def enum_number(enum: EnumDescriptor, label: str) -> int:
    """Inverse of `enum_label`; raises ValueError naming the accepted labels."""
    for value in enum.values:
        if value.number != 0 and enum_label(enum, value.number) == label:
            return value.number
    raise ValueError(f"invalid choice {label!r} (choose from {', '.join(enum_labels(enum))})")


_ACCESS = "keyway.v1.Access"


def _format_scalar(field: FieldDescriptor, value: Any) -> str:
    cpp = field.cpp_type
    if cpp == FieldDescriptor.CPPTYPE_MESSAGE:
        formatter = _MESSAGE_FORMATTERS.get(
            descriptors.message_type(field).full_name, _compact_json
        )
        return formatter(value)
    if cpp == FieldDescriptor.CPPTYPE_ENUM:
        return enum_label(descriptors.enum_type(field), value)
    if cpp == FieldDescriptor.CPPTYPE_BOOL:
        return "yes" if value else "no"
    text = str(value)
    return text if text else _EMPTY


def _format_timestamp_message(value: Any) -> str:
    return format_timestamp(value.seconds) if value.seconds or value.nanos else _EMPTY


def _format_provider_model(value: Any) -> str:
    if value.upstream_id and value.upstream_id != value.id:
        return f"{value.id}={value.upstream_id}"
    return str(value.id)


def _format_provider_key_error(value: Any) -> str:
    status = str(value.status) if value.status else "no response"
    when = f" at {format_timestamp(value.time.seconds)}" if value.HasField("time") else ""
    return f"{status}: {value.reason or 'unknown'}{when}"


def _format_access(value: Any) -> str:
    lines = []
    for dimension in ("providers", "models"):
        if not value.HasField(dimension):
            lines.append(f"{dimension}: all")
        else:
            allowed = list(getattr(value, dimension).allow)
            lines.append(f"{dimension}: {', '.join(allowed) if allowed else 'none'}")
    return "\n".join(lines)


def _format_router(value: Any) -> str:
    lines = []
    for rule in value.rules:
        target = f"{rule.provider}/{rule.model}" if rule.model else rule.provider
        steps = "; ".join(
            f"{step.type or _EMPTY} {step.key_selection_strategy or 'ordered'} "
            f"[{', '.join(key.id for key in step.keys)}]"
            for step in rule.steps
        )
        lines.append(f"{target}: {steps}")
    return "\n".join(lines) if lines else "no rules (default routing)"


def _format_limits(value: Any) -> str:
    parts = []
    if value.HasField("requests_per_minute"):
        parts.append(f"{value.requests_per_minute} requests/minute")
    if value.HasField("concurrency"):
        parts.append(f"{value.concurrency} in flight")
    return (", ".join(parts) + " per access key") if parts else "none"


def _compact_json(value: Any) -> str:
    return json.dumps(json_format.MessageToDict(value), separators=(", ", ": "))


def snapshot_state(value: Any) -> str:
    """`published`, `pending` or `QUARANTINED` (loud: something needs fixing)."""
    label = enum_label(value.DESCRIPTOR.fields_by_name["state"].enum_type, value.state)
    return label.upper() if label == "quarantined" else label


def _format_snapshot_status(value: Any) -> str:
    state = snapshot_state(value)
    if state != "QUARANTINED":
        return f"{state} (latest snapshot {value.published_version}, ~{value.snapshot_bytes} bytes)"
    when = _format_timestamp_message(value.quarantine_time)
    lines = [f"QUARANTINED since snapshot {value.quarantined_version} ({when}): {value.reason}"]
    lines.extend(f"  {problem.field}: {problem.description}" for problem in value.problems)
    lines.append(
        "proxies keep serving its last good data (deleted access keys removed)"
        if value.serving_previous
        else "none of its data is served until a write fixes it"
    )
    return "\n".join(lines)


_MESSAGE_FORMATTERS: dict[str, Callable[[Any], str]] = {
    "google.protobuf.Timestamp": _format_timestamp_message,
    "keyway.v1.AccountSnapshotStatus": _format_snapshot_status,
    "keyway.v1.ProviderModel": _format_provider_model,
    "keyway.v1.ProviderKeyError": _format_provider_key_error,
    _ACCESS: _format_access,
    "keyway.v1.Router": _format_router,
    "keyway.v1.Limits": _format_limits,
}


def _enum_prefix(enum: EnumDescriptor) -> str:
    # Buf's STANDARD lint requires values prefixed with the UPPER_SNAKE enum name.
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"


def _short_enums(message: Message, document: dict[str, Any]) -> dict[str, Any]:
    """Strips the type prefix from every enum value in `document`, the JSON of `message`."""
    for field in descriptors.of(message).fields:
        key = field.json_name
        if key not in document:
            continue
        if field.cpp_type == FieldDescriptor.CPPTYPE_ENUM:
            prefix = _enum_prefix(descriptors.enum_type(field))

            def strip(item: Any, prefix: str = prefix) -> Any:
                return item.removeprefix(prefix) if isinstance(item, str) else item

            value = document[key]
            document[key] = [strip(v) for v in value] if field.is_repeated else strip(value)
        elif field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
            message_type = descriptors.message_type(field)
            if message_type.full_name.startswith("google.protobuf.") or (
                message_type.GetOptions().map_entry
            ):
                continue  # well-known types have their own JSON forms; maps are not walked
            nested = getattr(message, field.name)
            if field.is_repeated:
                for item, item_document in zip(nested, document[key], strict=True):
                    _short_enums(item, item_document)
            else:
                _short_enums(nested, document[key])
    return document
