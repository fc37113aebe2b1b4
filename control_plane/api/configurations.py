"""AccessKeyConfigurationService: validated scope + routing, stored canonical."""

from __future__ import annotations

from typing import Any

from keyway.v1 import access_key_configurations_pb2 as pb
from keyway.v1 import access_key_configurations_pb2_grpc

from control_plane.domain import configuration, masks
from control_plane.domain.errors import Violations
from control_plane.domain.fields import check_common, require_id
from control_plane.store.codec import config_from_columns
from control_plane.store.store import CONFIGURATIONS

from .auth import Principal
from .base import Servicer, account_rpc, changes, check_update, common, next_token, page_args

_UPDATABLE = {
    "name": "name",
    "description": "description",
    "metadata": "metadata",
    "access": "access",
    "router": "router",
    "limits": "limits",
}
_VALIDATED = ("access", "router", "limits")  # checked together against the account


def configuration_message(row: dict[str, Any], linked: int) -> pb.AccessKeyConfiguration:
    message = config_from_columns(row["access_json"], row["router_json"], row["limits_json"])
    message.MergeFrom(
        pb.AccessKeyConfiguration(name=row["name"], access_key_count=linked, **common(row))
    )
    return message


def _warnings(
    candidate: pb.AccessKeyConfiguration, view: configuration.AccountView
) -> list[pb.ConfigurationWarning]:
    """What looks like a mistake in a stored configuration but is valid."""
    return [
        pb.ConfigurationWarning(field=w.field, description=w.description)
        for w in configuration.unlisted_models(candidate.access, view)
    ]


class ConfigurationServicer(
    Servicer, access_key_configurations_pb2_grpc.AccessKeyConfigurationServiceServicer
):
    def _message(self, row: dict[str, Any]) -> pb.AccessKeyConfiguration:
        return configuration_message(row, self.store.linked_count(row["id"]))

    @account_rpc
    def CreateAccessKeyConfiguration(
        self, request: pb.CreateAccessKeyConfigurationRequest, who: Principal
    ) -> pb.CreateAccessKeyConfigurationResponse:
        account_id = who.account()
        c = request.configuration
        v = Violations()
        check_common(v, "", name=c.name, description=c.description, metadata=c.metadata)
        v.raise_if_any("configuration is invalid", reason="INVALID_CONFIGURATION")
        row = self.store.create_configuration(
            account_id, name=c.name, description=c.description, metadata=c.metadata, body=c
        )
        warnings = _warnings(c, self.store.account_view(account_id))
        return pb.CreateAccessKeyConfigurationResponse(
            configuration=self._message(row), warnings=warnings
        )

    @account_rpc
    def GetAccessKeyConfiguration(
        self, request: pb.GetAccessKeyConfigurationRequest, who: Principal
    ) -> pb.GetAccessKeyConfigurationResponse:
        row = self.store.get(CONFIGURATIONS, require_id(request.id), who.account())
        return pb.GetAccessKeyConfigurationResponse(configuration=self._message(row))

    @account_rpc
    def ListAccessKeyConfigurations(
        self, request: pb.ListAccessKeyConfigurationsRequest, who: Principal
    ) -> pb.ListAccessKeyConfigurationsResponse:
        page = self.store.list_configurations(
            who.account(), **page_args(request.page_size, request.page_token)
        )
        return pb.ListAccessKeyConfigurationsResponse(
            configurations=[self._message(r) for r in page.rows],
            next_page_token=next_token(page),
        )

    @account_rpc
    def UpdateAccessKeyConfiguration(
        self, request: pb.UpdateAccessKeyConfigurationRequest, who: Principal
    ) -> pb.UpdateAccessKeyConfigurationResponse:
        account_id = who.account()
        c = request.configuration
        current = self.store.get(CONFIGURATIONS, require_id(c.id, "configuration.id"), account_id)
        values = changes(c, request.update_mask, _UPDATABLE)
        check_update(values, current)
        body = None
        if any(part in values for part in _VALIDATED):
            stored = config_from_columns(
                current["access_json"], current["router_json"], current["limits_json"]
            )
            body = masks.merge(stored, c, [p for p in _VALIDATED if p in values])
        columns = {k: v for k, v in values.items() if k not in _VALIDATED}
        row = self.store.update_configuration(account_id, c.id, columns, c.etag, body)
        warnings = [] if body is None else _warnings(body, self.store.account_view(account_id))
        return pb.UpdateAccessKeyConfigurationResponse(
            configuration=self._message(row), warnings=warnings
        )

    @account_rpc
    def DeleteAccessKeyConfiguration(
        self, request: pb.DeleteAccessKeyConfigurationRequest, who: Principal
    ) -> pb.DeleteAccessKeyConfigurationResponse:
        self.store.delete(CONFIGURATIONS, require_id(request.id), who.account(), request.etag)
        return pb.DeleteAccessKeyConfigurationResponse()
