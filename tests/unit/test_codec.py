import json
from typing import Any

import pytest
from google.protobuf import json_format
from keyway.v1 import access_key_configurations_pb2 as pb

from control_plane.store.codec import config_from_columns, config_to_columns

ROUTER = {
    "rules": [
        {
            "provider": "openai",
            "steps": [
                {
                    "type": "user",
                    "keySelectionStrategy": "ordered",
                    "keys": [{"id": "pk_a"}, {"id": "pk_b"}],
                }
            ],
        },
        {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "steps": [
                {"type": "user", "keySelectionStrategy": "ordered", "keys": [{"id": "pk_c"}]}
            ],
        },
    ]
}


def _config(doc: dict[str, Any]) -> pb.AccessKeyConfiguration:
    return json_format.ParseDict(doc, pb.AccessKeyConfiguration())


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param({}, id="empty"),
        pytest.param({"router": ROUTER}, id="router-only"),
        pytest.param({"access": {}}, id="access-present-empty"),
        pytest.param({"access": {"providers": {"allow": []}}}, id="providers-allow-nothing"),
        pytest.param({"access": {"models": {}}}, id="models-allow-nothing"),
        pytest.param({"limits": {"requestsPerMinute": 600}}, id="rate-limit"),
        pytest.param({"limits": {"concurrency": 4, "requestsPerMinute": 60}}, id="both-limits"),
        pytest.param(
            {
                "access": {
                    "providers": {"allow": ["openai", "anthropic"]},
                    "models": {"allow": ["openai/gpt-4o", "anthropic/claude-sonnet-4-5"]},
                },
                "router": ROUTER,
            },
            id="full",
        ),
    ],
)
def test_round_trip_preserves_content_and_presence(doc: dict[str, Any]) -> None:
    config = _config(doc)
    back = config_from_columns(**config_to_columns(config))  # type: ignore[arg-type]
    assert back == config
    assert back.HasField("limits") == config.HasField("limits")
    assert back.HasField("access") == config.HasField("access")
    assert back.access.HasField("providers") == config.access.HasField("providers")
    assert back.access.HasField("models") == config.access.HasField("models")


@pytest.mark.parametrize(
    ("doc", "access_json"),
    [
        ({}, None),
        ({"router": ROUTER}, None),
        ({"access": {}}, "{}"),
        ({"access": {"providers": {"allow": []}}}, '{"providers":{}}'),
        (
            {"access": {"models": {"allow": ["openai/gpt-4o"]}}},
            '{"models":{"allow":["openai/gpt-4o"]}}',
        ),
    ],
)
def test_access_column_is_null_only_when_access_is_absent(
    doc: dict[str, Any], access_json: str | None
) -> None:
    assert config_to_columns(_config(doc))["access_json"] == access_json


def test_limits_column_is_null_without_limits() -> None:
    assert config_to_columns(_config({"router": ROUTER}))["limits_json"] is None
    columns = config_to_columns(_config({"limits": {"concurrency": 3}}))
    assert columns["limits_json"] == '{"concurrency":3}'


def test_router_column_is_canonical_json() -> None:
    router_json = config_to_columns(_config({"router": ROUTER}))["router_json"]
    assert router_json is not None
    assert json.loads(router_json) == ROUTER
    assert " " not in router_json
    assert router_json == json.dumps(ROUTER, sort_keys=True, separators=(",", ":"))
    assert config_to_columns(pb.AccessKeyConfiguration())["router_json"] == "{}"


def test_only_access_router_and_limits_are_stored() -> None:
    config = _config({"name": "n", "id": "akc_x", "etag": "e", "router": ROUTER})
    back = config_from_columns(**config_to_columns(config))  # type: ignore[arg-type]
    assert back.name == ""
    assert back.id == ""
    assert back.router == config.router
