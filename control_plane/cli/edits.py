"""Editing a resource's JSON from the command line: merge patches and what changed. Pure.

`configurations update --merge` applies the file as a JSON merge patch (RFC 7386) to the
configuration as it is: objects merge key by key, `null` removes a key, and anything else,
arrays included, replaces the value. Every update then shows the change as a diff of the
JSON before and after, so replacing a whole top-level field is never a surprise.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from google.protobuf.descriptor import Descriptor


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: `target` with `patch` applied (neither is modified)."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def json_names(document: Any, descriptor: Descriptor) -> Any:
    """`document` with its field names spelled as the proto3 JSON mapping does (camelCase).

    Input may use either spelling (`key_selection_strategy` or `keySelectionStrategy`); a
    patch must use the same one as the document it merges into. Unknown keys are kept as
    written, for the parser to name.
    """
    if not isinstance(document, dict):
        return document
    fields = {f.name: f for f in descriptor.fields}
    fields.update({f.json_name: f for f in descriptor.fields})
    spelled: dict[str, Any] = {}
    for key, value in document.items():
        field = fields.get(key)
        if field is None:
            spelled[key] = value
            continue
        nested = field.message_type
        if nested is not None and not nested.full_name.startswith("google.protobuf."):
            if field.is_repeated and isinstance(value, list):
                value = [json_names(item, nested) for item in value]
            else:
                value = json_names(value, nested)
        spelled[field.json_name] = value
    return spelled


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """A unified diff of two JSON documents, or [] when they are equal."""
    if before == after:
        return []
    old = json.dumps(before, indent=2, sort_keys=True).splitlines()
    new = json.dumps(after, indent=2, sort_keys=True).splitlines()
    return list(difflib.unified_diff(old, new, "before", "after", lineterm="", n=2))
