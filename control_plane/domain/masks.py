"""Field-mask resolution for Update RPCs (AIP-134)."""

from __future__ import annotations

from collections.abc import Collection

from google.protobuf.message import Message

from .errors import InvalidArgument, Violations


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
