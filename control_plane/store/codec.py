"""How configurations are stored: the canonical proto3 JSON of access, router and limits."""

from __future__ import annotations

import json

from google.protobuf import json_format
from keyway.v1 import access_key_configurations_pb2 as pb


def _dump(message: pb.Access | pb.Router | pb.Limits) -> str:
    return json.dumps(json_format.MessageToDict(message), sort_keys=True, separators=(",", ":"))


def config_to_columns(config: pb.AccessKeyConfiguration) -> dict[str, str | None]:
    """The configurations columns; access_json is NULL when access is absent (allow-all),
    limits_json when there are no limits."""
    return {
        "access_json": _dump(config.access) if config.HasField("access") else None,
        "router_json": _dump(config.router),
        "limits_json": _dump(config.limits) if config.HasField("limits") else None,
    }


def config_from_columns(
    access_json: str | None, router_json: str, limits_json: str | None = None
) -> pb.AccessKeyConfiguration:
    config = pb.AccessKeyConfiguration()
    if access_json is not None:
        json_format.Parse(access_json, config.access)
        config.access.SetInParent()
    json_format.Parse(router_json, config.router)
    if limits_json is not None:
        json_format.Parse(limits_json, config.limits)
        config.limits.SetInParent()
    return config
