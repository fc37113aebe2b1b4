"""JSON merge patches (RFC 7386) and the before/after diff of `configurations update`."""

from __future__ import annotations

from typing import Any

import pytest
from keyway.v1 import access_key_configurations_pb2 as pb

from control_plane.cli.edits import diff, json_names, merge_patch

# RFC 7386, appendix A: (target, patch, result).
RFC_EXAMPLES: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), RFC_EXAMPLES)
def test_rfc_7386_examples(target: Any, patch: Any, result: Any) -> None:
    before = repr(target)
    assert merge_patch(target, patch) == result
    assert repr(target) == before  # the target is not modified


def test_field_names_are_spelled_as_the_json_mapping_does() -> None:
    patch = {
        "router": {"rules": [{"provider": "openai", "steps": [{"key_selection_strategy": "x"}]}]},
        "access": None,
        "typo": 1,
    }
    assert json_names(patch, pb.AccessKeyConfiguration.DESCRIPTOR) == {
        "router": {"rules": [{"provider": "openai", "steps": [{"keySelectionStrategy": "x"}]}]},
        "access": None,
        "typo": 1,
    }


def test_diff_shows_only_what_changed() -> None:
    before = {"name": "Production", "access": {"providers": {"allow": ["openai"]}}}
    after = {"name": "Production"}
    assert diff(before, before) == []
    lines = diff(before, after)
    assert lines[:2] == ["--- before", "+++ after"]
    assert [line for line in lines if line.startswith("-") and not line.startswith("---")] == [
        '-  "access": {',
        '-    "providers": {',
        '-      "allow": [',
        '-        "openai"',
        "-      ]",
        "-    }",
        "-  },",
    ]
    assert [line for line in lines if line.startswith("+") and not line.startswith("+++")] == []
