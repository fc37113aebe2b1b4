"""How values are kept in columns, whatever the database: one encoding for every adapter.

- a configuration's access, router and limits: their canonical proto3 JSON (sorted keys,
  no spaces), so equal configurations store equal text and the snapshot estimate
  (`footprint`) can measure them;
- a custom provider's formats and auth style: the admin API's enum numbers; its models:
  `[[id, upstream id], …]`;
- the associated data a provider key's value is sealed with, by the version it was
  sealed under.
"""

from __future__ import annotations

import json

from google.protobuf import json_format
from keyway.v1 import access_key_configurations_pb2 as pb

from control_plane.domain import catalog, formats
from control_plane.domain.formats import ApiFormat, AuthStyle
from control_plane.secrets.sealing import legacy_row_aad, row_aad

AAD_VERSION = 2
"""What new rows are sealed with: `row_aad` (owner, provider, row, version)."""


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


def formats_to_json(values: tuple[ApiFormat, ...]) -> str:
    return json.dumps([formats.to_api_format(f) for f in values])


def formats_from_json(text: str) -> tuple[ApiFormat, ...]:
    """Raises ValueError (or TypeError) for text that is not such a list."""
    return tuple(formats.from_api_format(f) for f in json.loads(text))


def auth_style_to_int(value: AuthStyle | None) -> int:
    return int(formats.to_api_auth_style(value))


def auth_style_from_int(number: int) -> AuthStyle | None:
    return formats.from_api_auth_style(number)


def models_to_json(models: tuple[catalog.Model, ...]) -> str:
    return json.dumps([[m.id, m.upstream_id] for m in models])


def models_from_json(text: str) -> tuple[catalog.Model, ...]:
    return tuple(catalog.Model(i, u) for i, u in json.loads(text))


def key_aad(
    account_id: str, provider_id: str, row_id: str, secret_version: int, aad_version: int
) -> bytes:
    """The associated data of a stored provider key, by the version it was sealed with."""
    if aad_version == 1:
        return legacy_row_aad(row_id, secret_version)
    return row_aad(account_id, provider_id, row_id, secret_version)
