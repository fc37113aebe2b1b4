"""ProviderService: the catalog, and an account's custom providers."""

from __future__ import annotations

from keyway.v1 import providers_pb2 as pb
from keyway.v1 import providers_pb2_grpc

from control_plane.domain import catalog, formats, masks, quotas
from control_plane.domain.errors import Violations
from control_plane.domain.fields import require_id
from control_plane.domain.upstreams import check_custom_provider
from control_plane.store.port import CUSTOM_PROVIDERS, pages
from control_plane.store.records import CustomProvider, CustomProviderFields

from .auth import Principal
from .base import Servicer, account_rpc, common, masked, next_token, page_args, rpc

_UPDATABLE = {
    name: name
    for name in ("name", "description", "metadata", "base_url", "formats", "auth_style", "models")
}


def _fields(cp: pb.CustomProvider) -> CustomProviderFields:
    """Of a custom provider that passed `check_custom_provider`."""
    return CustomProviderFields(
        name=cp.name,
        description=cp.description,
        metadata=cp.metadata,
        base_url=cp.base_url,
        formats=tuple(formats.from_api_format(f) for f in cp.formats),
        auth_style=formats.from_api_auth_style(cp.auth_style),
        models=tuple(catalog.Model(m.id, m.upstream_id) for m in cp.models),
    )


def _models(models: tuple[catalog.Model, ...]) -> list[pb.ProviderModel]:
    return [pb.ProviderModel(id=m.id, upstream_id=m.upstream_id) for m in models]


def custom_provider_message(cp: CustomProvider) -> pb.CustomProvider:
    return pb.CustomProvider(
        provider_id=cp.provider_id,
        name=cp.fields.name,
        base_url=cp.fields.base_url,
        formats=[formats.to_api_format(f) for f in cp.fields.formats],
        auth_style=formats.to_api_auth_style(cp.fields.auth_style),
        models=_models(cp.fields.models),
        **common(cp),
    )


def _listed(spec: catalog.ProviderSpec) -> pb.Provider:
    return pb.Provider(
        id=spec.id,
        name=spec.name,
        base_url=spec.base_url,
        formats=[formats.to_api_format(f) for f in spec.formats],
        auth_style=formats.to_api_auth_style(spec.auth_style),
        models=_models(spec.models),
        built_in=spec.built_in,
    )


class ProviderServicer(Servicer, providers_pb2_grpc.ProviderServiceServicer):
    def _check(self, cp: pb.CustomProvider, *, creating: bool) -> None:
        quotas.check_models(self.options.quotas, cp.provider_id or cp.id, len(cp.models))
        v = Violations()
        check_custom_provider(
            v, cp, allow_private=self.options.allow_private_upstreams, creating=creating
        )
        v.raise_if_any("custom provider is invalid")

    @rpc
    def ListProviders(
        self, request: pb.ListProvidersRequest, who: Principal
    ) -> pb.ListProvidersResponse:
        specs = list(catalog.with_overrides(self.options.provider_base_urls))
        if who.account_id is not None:
            account_id = who.account_id
            customs = pages(
                lambda after: self.store.list_custom_providers(account_id, after=after, limit=500)
            )
            specs.extend(
                catalog.custom(
                    cp.provider_id,
                    cp.fields.name,
                    cp.fields.base_url,
                    cp.fields.formats,
                    cp.fields.auth_style,
                    cp.fields.models,
                )
                for cp in customs
            )
        return pb.ListProvidersResponse(providers=[_listed(spec) for spec in specs])

    @account_rpc
    def CreateCustomProvider(
        self, request: pb.CreateCustomProviderRequest, who: Principal
    ) -> pb.CreateCustomProviderResponse:
        account_id = who.account()
        cp = request.custom_provider
        self._check(cp, creating=True)
        created = self.store.create_custom_provider(
            account_id, provider_id=cp.provider_id, fields=_fields(cp)
        )
        return pb.CreateCustomProviderResponse(custom_provider=custom_provider_message(created))

    @account_rpc
    def GetCustomProvider(
        self, request: pb.GetCustomProviderRequest, who: Principal
    ) -> pb.GetCustomProviderResponse:
        found = self.store.get(CUSTOM_PROVIDERS, require_id(request.id), who.account())
        return pb.GetCustomProviderResponse(custom_provider=custom_provider_message(found))

    @account_rpc
    def ListCustomProviders(
        self, request: pb.ListCustomProvidersRequest, who: Principal
    ) -> pb.ListCustomProvidersResponse:
        page = self.store.list_custom_providers(
            who.account(), **page_args(request.page_size, request.page_token)
        )
        return pb.ListCustomProvidersResponse(
            custom_providers=[custom_provider_message(c) for c in page.items],
            next_page_token=next_token(page),
        )

    @account_rpc
    def UpdateCustomProvider(
        self, request: pb.UpdateCustomProviderRequest, who: Principal
    ) -> pb.UpdateCustomProviderResponse:
        account_id = who.account()
        cp = request.custom_provider
        current = self.store.get(
            CUSTOM_PROVIDERS, require_id(cp.id, "custom_provider.id"), account_id
        )
        chosen = masked(cp, request.update_mask, _UPDATABLE)
        merged = masks.merge(custom_provider_message(current), cp, chosen)
        self._check(merged, creating=False)
        updated = self.store.update(
            CUSTOM_PROVIDERS, cp.id, account_id, _fields(merged), chosen.values(), cp.etag
        )
        return pb.UpdateCustomProviderResponse(custom_provider=custom_provider_message(updated))

    @account_rpc
    def DeleteCustomProvider(
        self, request: pb.DeleteCustomProviderRequest, who: Principal
    ) -> pb.DeleteCustomProviderResponse:
        self.store.delete(CUSTOM_PROVIDERS, require_id(request.id), who.account(), request.etag)
        return pb.DeleteCustomProviderResponse()
