"""The control plane's HTTP listener: the admin REST API, its OpenAPI document, health.

`http_app` assembles the app from its parts (see `app.build_app`); the REST routes come
from the `google.api.http` annotations of the services the control plane serves, so a new
annotated RPC is reachable over HTTP with no code here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from google.protobuf import descriptor_pool
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from control_plane.domain import tokens
from control_plane.store.port import Store, call

from .app import Layer, Ready, build_app, health_routes, rest_routes
from .bindings import Router, bindings
from .openapi import openapi_routes
from .rest import RestApi

MAX_BODY_BYTES = 4 * 1024 * 1024
"""The largest request body, as gRPC's default largest received message."""


def admin_router(service_names: list[str]) -> Router:
    pool = descriptor_pool.Default()
    return Router(bindings(pool.FindServiceByName(name) for name in service_names))


def http_app(
    store: Store,
    servicers: Mapping[str, object],
    *,
    ready: Ready,
    parts: Iterable[Iterable[BaseRoute]] = (),
    layers: Iterable[Layer] = (),
) -> ASGIApp:
    """The app of a control plane serving `servicers` (service full name -> servicer).

    `parts` are more routes to serve (metrics, the console), mounted before the REST API's
    catch-all; a path the contract also routes is theirs. `layers` wrap every route (the
    console's session cookie turns into the REST API's `Authorization` there).
    """
    router = admin_router(list(servicers))
    api = RestApi(router, servicers, max_body_bytes=MAX_BODY_BYTES)

    async def caller(authorization: str | None) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or tokens.kind_of(token) is None:
            return "-"
        found = await call(store, store.authenticate, token)
        return "-" if found is None else found.id

    return build_app(
        [health_routes(ready), openapi_routes(router), *parts, rest_routes(api)],
        caller=caller,
        layers=layers,
    )
