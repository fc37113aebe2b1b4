"""Field masks of Update RPCs (AIP-134): which fields to write, and the merged resource."""

from __future__ import annotations

from collections.abc import Collection
from typing import TypeVar, cast

from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from .errors import InvalidArgument, Violations

M = TypeVar("M", bound=Message)


def resolve(
    resource: Message,
    paths: Collection[str],
    updatable: Collection[str],
    *,
    field: str = "update_mask",
) -> frozenset[str]:
    """The set of fields to write.

    An empty mask means every updatable field that is set in `resource`; `*`
    means all updatable fields (so a full replace can clear values).
    """
    if not paths:
        present = {fd.name for fd, _ in resource.ListFields()}
        chosen = frozenset(p for p in updatable if p in present)
        if not chosen:
            raise InvalidArgument.field(field, "names no field to update")
        return chosen
    if "*" in paths:
        return frozenset(updatable)
    v = Violations()
    for i, path in enumerate(paths):
        if path not in updatable:
            allowed = ", ".join(sorted(updatable))
            v.add(f"{field}.paths[{i}]", f"cannot update '{path}'; updatable fields: {allowed}")
    v.raise_if_any("invalid update_mask")
    return frozenset(paths)


def merge(current: M, update: M, fields: Collection[str]) -> M:
    """A copy of `current` with `fields` taken from `update` (AIP-134 replace semantics).

    A named field is replaced as a whole: a repeated field takes `update`'s list, a
    message field `update`'s message, or nothing when `update` does not set it (so the
    mask can clear it), a scalar `update`'s value.
    """
    merged = type(current)()
    merged.CopyFrom(current)
    descriptor = cast(Descriptor, current.DESCRIPTOR)
    for name in fields:
        field = descriptor.fields_by_name[name]
        merged.ClearField(name)
        if field.is_repeated:
            getattr(merged, name).extend(getattr(update, name))
        elif field.message_type is not None:
            if update.HasField(name):
                getattr(merged, name).CopyFrom(getattr(update, name))
        else:
            setattr(merged, name, getattr(update, name))
    return merged
