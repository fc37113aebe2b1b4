"""How configurations are stored: the canonical proto3 JSON of access and router."""

from __future__ import annotations

import json

from google.protobuf import json_format
from keyway.v1 import access_key_configurations_pb2 as pb


def _dump(message: pb.Access | pb.Router) -> str:
    return json.dumps(json_format.MessageToDict(message), sort_keys=True, separators=(",", ":"))


def config_to_columns(config: pb.AccessKeyConfiguration) -> tuple[str | None, str]:
    """(access_json, router_json); access_json is NULL when access is absent (allow-all)."""
    access = _dump(config.access) if config.HasField("access") else None
    return access, _dump(config.router)


def config_from_columns(access_json: str | None, router_json: str) -> pb.AccessKeyConfiguration:
    config = pb.AccessKeyConfiguration()
    if access_json is not None:
        json_format.Parse(access_json, config.access)
        config.access.SetInParent()
    json_format.Parse(router_json, config.router)
    return config
