"""AccessKeyConfigurationService: validated scope + routing, stored canonical."""

from __future__ import annotations

from keyway.v1 import access_key_configurations_pb2 as pb
from keyway.v1 import access_key_configurations_pb2_grpc

from control_plane.domain import configuration, masks
from control_plane.domain.errors import Violations
from control_plane.domain.fields import check_common, require_id
from control_plane.store.port import CONFIGURATIONS
from control_plane.store.records import Configuration, ConfigurationFields

from .auth import Principal
from .base import Servicer, account_rpc, check_labels, common, masked, next_token, page_args

# Access, router and limits are one body, checked together against the account.
_UPDATABLE = {
    "name": "name",
    "description": "description",
    "metadata": "metadata",
    "access": "body",
    "router": "body",
    "limits": "body",
}


def configuration_message(config: Configuration) -> pb.AccessKeyConfiguration:
    message = pb.AccessKeyConfiguration()
    message.CopyFrom(config.fields.body)
    message.MergeFrom(
        pb.AccessKeyConfiguration(
            name=config.fields.name, access_key_count=config.access_key_count, **common(config)
        )
    )
    return message


def _fields(config: pb.AccessKeyConfiguration) -> ConfigurationFields:
    body = pb.AccessKeyConfiguration()
    for part in ("access", "router", "limits"):
        if config.HasField(part):
            getattr(body, part).CopyFrom(getattr(config, part))
    return ConfigurationFields(
        name=config.name, description=config.description, metadata=config.metadata, body=body
    )


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
    @account_rpc
    def CreateAccessKeyConfiguration(
        self, request: pb.CreateAccessKeyConfigurationRequest, who: Principal
    ) -> pb.CreateAccessKeyConfigurationResponse:
        account_id = who.account()
        c = request.configuration
        v = Violations()
        check_common(v, "", name=c.name, description=c.description, metadata=c.metadata)
        v.raise_if_any("configuration is invalid", reason="INVALID_CONFIGURATION")
        config = self.store.create_configuration(account_id, fields=_fields(c))
        warnings = _warnings(c, self.store.account_view(account_id))
        return pb.CreateAccessKeyConfigurationResponse(
            configuration=configuration_message(config), warnings=warnings
        )

    @account_rpc
    def GetAccessKeyConfiguration(
        self, request: pb.GetAccessKeyConfigurationRequest, who: Principal
    ) -> pb.GetAccessKeyConfigurationResponse:
        config = self.store.get(CONFIGURATIONS, require_id(request.id), who.account())
        return pb.GetAccessKeyConfigurationResponse(configuration=configuration_message(config))

    @account_rpc
    def ListAccessKeyConfigurations(
        self, request: pb.ListAccessKeyConfigurationsRequest, who: Principal
    ) -> pb.ListAccessKeyConfigurationsResponse:
        page = self.store.list_configurations(
            who.account(), **page_args(request.page_size, request.page_token)
        )
        return pb.ListAccessKeyConfigurationsResponse(
            configurations=[configuration_message(c) for c in page.items],
            next_page_token=next_token(page),
        )

    @account_rpc
    def UpdateAccessKeyConfiguration(
        self, request: pb.UpdateAccessKeyConfigurationRequest, who: Principal
    ) -> pb.UpdateAccessKeyConfigurationResponse:
        account_id = who.account()
        c = request.configuration
        current = self.store.get(CONFIGURATIONS, require_id(c.id, "configuration.id"), account_id)
        chosen = masked(c, request.update_mask, _UPDATABLE)
        merged = masks.merge(configuration_message(current), c, chosen)
        check_labels(merged)
        changed = set(chosen.values())
        config = self.store.update(
            CONFIGURATIONS, c.id, account_id, _fields(merged), changed, c.etag
        )
        warnings = (
            _warnings(merged, self.store.account_view(account_id)) if "body" in changed else []
        )
        return pb.UpdateAccessKeyConfigurationResponse(
            configuration=configuration_message(config), warnings=warnings
        )

    @account_rpc
    def DeleteAccessKeyConfiguration(
        self, request: pb.DeleteAccessKeyConfigurationRequest, who: Principal
    ) -> pb.DeleteAccessKeyConfigurationResponse:
        self.store.delete(CONFIGURATIONS, require_id(request.id), who.account(), request.etag)
        return pb.DeleteAccessKeyConfigurationResponse()
