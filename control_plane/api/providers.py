"""ProviderService: the catalog, and an account's custom providers."""

from __future__ import annotations

import json
from typing import Any

from keyway.v1 import providers_pb2 as pb
from keyway.v1 import providers_pb2_grpc

from control_plane.domain import catalog, formats, masks, quotas
from control_plane.domain.errors import Violations
from control_plane.domain.fields import require_id
from control_plane.domain.upstreams import check_custom_provider
from control_plane.store.store import CUSTOM_PROVIDERS

from .auth import Principal
from .base import Servicer, account_rpc, changes, common, next_token, page_args, rpc

_UPDATABLE = {
    name: name
    for name in ("name", "description", "metadata", "base_url", "formats", "auth_style", "models")
}


def _columns(cp: pb.CustomProvider, fields: frozenset[str] | None = None) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": cp.name,
        "description": cp.description,
        "metadata": cp.metadata,
        "base_url": cp.base_url,
        "formats_json": json.dumps(list(cp.formats)),
        "auth_style": int(cp.auth_style),
        "models_json": json.dumps([[m.id, m.upstream_id] for m in cp.models]),
    }
    if fields is None:
        return values
    column = {"formats": "formats_json", "models": "models_json"}
    return {column.get(f, f): values[column.get(f, f)] for f in fields}


def custom_provider_message(row: dict[str, Any]) -> pb.CustomProvider:
    return pb.CustomProvider(
        provider_id=row["provider_id"],
        name=row["name"],
        base_url=row["base_url"],
        formats=json.loads(row["formats_json"]),
        auth_style=row["auth_style"],
        models=[pb.ProviderModel(id=i, upstream_id=u) for i, u in json.loads(row["models_json"])],
        **common(row),
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
        response = pb.ListProvidersResponse()
        for spec in catalog.with_overrides(self.options.provider_base_urls):
            response.providers.add(
                id=spec.id,
                name=spec.name,
                base_url=spec.base_url,
                formats=[formats.to_api_format(f) for f in spec.formats],
                auth_style=formats.to_api_auth_style(spec.auth_style),
                models=[pb.ProviderModel(id=m.id, upstream_id=m.upstream_id) for m in spec.models],
                built_in=True,
            )
        if who.account_id is not None:
            after = 0
            while True:
                page = self.store.list_custom_providers(who.account_id, after=after, limit=500)
                for row in page.rows:
                    cp = custom_provider_message(row)
                    response.providers.add(
                        id=cp.provider_id,
                        name=cp.name,
                        base_url=cp.base_url,
                        formats=cp.formats,
                        auth_style=formats.to_api_auth_style(
                            formats.effective_auth_style(
                                formats.from_api_auth_style(cp.auth_style),
                                [formats.from_api_format(f) for f in cp.formats],
                            )
                        ),
                        models=cp.models,
                    )
                if page.next_after is None:
                    break
                after = page.next_after
        return response

    @account_rpc
    def CreateCustomProvider(
        self, request: pb.CreateCustomProviderRequest, who: Principal
    ) -> pb.CreateCustomProviderResponse:
        account_id = who.account()
        cp = request.custom_provider
        self._check(cp, creating=True)
        row = self.store.create_custom_provider(
            account_id, {"provider_id": cp.provider_id, **_columns(cp)}
        )
        return pb.CreateCustomProviderResponse(custom_provider=custom_provider_message(row))

    @account_rpc
    def GetCustomProvider(
        self, request: pb.GetCustomProviderRequest, who: Principal
    ) -> pb.GetCustomProviderResponse:
        row = self.store.get(CUSTOM_PROVIDERS, require_id(request.id), who.account())
        return pb.GetCustomProviderResponse(custom_provider=custom_provider_message(row))

    @account_rpc
    def ListCustomProviders(
        self, request: pb.ListCustomProvidersRequest, who: Principal
    ) -> pb.ListCustomProvidersResponse:
        page = self.store.list_custom_providers(
            who.account(), **page_args(request.page_size, request.page_token)
        )
        return pb.ListCustomProvidersResponse(
            custom_providers=[custom_provider_message(r) for r in page.rows],
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
        fields = frozenset(changes(cp, request.update_mask, _UPDATABLE))
        merged = masks.merge(custom_provider_message(current), cp, fields)
        self._check(merged, creating=False)
        row = self.store.update(
            CUSTOM_PROVIDERS, cp.id, account_id, _columns(merged, fields), cp.etag
        )
        return pb.UpdateCustomProviderResponse(custom_provider=custom_provider_message(row))

    @account_rpc
    def DeleteCustomProvider(
        self, request: pb.DeleteCustomProviderRequest, who: Principal
    ) -> pb.DeleteCustomProviderResponse:
        self.store.delete(CUSTOM_PROVIDERS, require_id(request.id), who.account(), request.etag)
        return pb.DeleteCustomProviderResponse()

