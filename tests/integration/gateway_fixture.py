"""A whole gateway in one test process: the in-loop mock upstream, a real control plane whose
`openai` and `anthropic` providers point at the mock, and real proxies (port 0) with short
timeouts.

Each part runs on its own `BackgroundLoop`, so tests stay synchronous and talk plain HTTP
(httpx) and gRPC to it. The mock's request log is shared by the whole module: every test uses
provider keys with labels of its own (`Gateway.label`) and looks only at those records.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from keyway.v1 import accounts_pb2 as acc
from keyway.v1 import accounts_pb2_grpc as acc_grpc
from keyway.v1 import admin_api_keys_pb2 as adk
from keyway.v1 import admin_api_keys_pb2_grpc as adk_grpc
from keyway.v1 import provider_keys_pb2 as pk

from control_plane.server import Settings
from data_plane.http.context import ProxyOptions
from data_plane.mock_upstream.app import Outcome, RecordedRequest
from data_plane.mock_upstream.server import MockServer
from data_plane.routing.policy import FailoverPolicy
from data_plane.runner import ProxySettings

from .control_planes import (
    BackgroundLoop,
    RunningControlPlane,
    connected,
    start_control_plane,
    stop_control_plane,
)
from .proxies import (
    Admin,
    RunningProxy,
    data_plane_token,
    proxy_running,
    proxy_settings,
    token_sha256,
    wait_until,
)

# Short enough for a fast suite, long enough for a loaded 2-core machine to answer in time.
SHORT_POLICY = FailoverPolicy(
    attempt_timeout=1.0,
    total_deadline=5.0,
    auth_cooldown=60.0,
    rate_limit_default=10.0,
    max_retry_wait=5.0,
)
SHORT_OPTIONS = ProxyOptions(policy=SHORT_POLICY, stream_idle_timeout=0.5, max_body_bytes=64 * 1024)


class MockThread:
    """`MockServer` served from a loop of its own; `requests` is read from the test thread."""

    def __init__(self) -> None:
        self.background = BackgroundLoop("mock-upstream")

        async def make() -> MockServer:
            # No pacing between SSE events: only `stall` and `hold` should take time.
            server = MockServer(chunk_delay_ms=0)
            await server.start()
            return server

        try:
            self.server = self.background.run(make())
        except BaseException:
            self.background.close()
            raise

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def records(self, label: str) -> list[RecordedRequest]:
        """What the mock received with keys whose label contains `label`, oldest first."""
        return [r for r in list(self.server.app.requests) if r.label and label in r.label]

    def outcomes(self, label: str) -> list[Outcome]:
        return [r.outcome for r in self.records(label)]

    def stop(self) -> None:
        try:
            self.background.run(self.server.stop())
        finally:
            self.background.close()


@dataclass(frozen=True)
class Route:
    token: str
    key_ids: list[str]
    access_key_id: str


@dataclass
class Gateway:
    cp: RunningControlPlane
    admin: Admin
    mock: MockThread
    data_plane_token: str
    _nodes: int = field(default=0)

    def label(self, name: str) -> str:
        """A label no other test uses: `name` plus a random suffix."""
        return f"{name}-{secrets.token_hex(3)}"

    def route(self, provider: str, *values: str) -> Route:
        """Provider keys with these values and an access key routed to them, in this order."""
        key_ids = [self.admin.provider_key(v, provider, name=f"k{i}") for i, v in enumerate(values)]
        configuration = self.admin.configuration(provider, *key_ids)
        access_key_id, token = self.admin.access_key(configuration)
        return Route(token, key_ids, access_key_id)

    def other_tenant(self, name: str = "another tenant") -> Admin:
        """The admin of a new account of its own."""
        operator = self.cp.operator
        account = (
            acc_grpc.AccountServiceStub(self.cp.channel)
            .CreateAccount(
                acc.CreateAccountRequest(account=acc.Account(display_name=name)), metadata=operator
            )
            .account
        )
        token = (
            adk_grpc.AdminApiKeyServiceStub(self.cp.channel)
            .CreateAdminApiKey(
                adk.CreateAdminApiKeyRequest(
                    account_id=account.id, admin_api_key=adk.AdminApiKey(name=f"{name} admin")
                ),
                metadata=operator,
            )
            .token
        )
        tenant = Admin(self.cp)
        tenant.md = (("authorization", f"Bearer {token}"),)
        return tenant

    def provider_key(self, key_id: str) -> pk.ProviderKey:
        request = pk.GetProviderKeyRequest(id=key_id)
        return self.admin.provider_keys.GetProviderKey(request, metadata=self.admin.md).provider_key

    def settings(self, **more: Any) -> ProxySettings:
        self._nodes += 1
        base = proxy_settings(
            self.cp.address,
            self.data_plane_token,
            f"proxy-app-{self._nodes}",
            options=SHORT_OPTIONS,
            usage_interval=0.2,
        )
        return dataclasses.replace(base, **more)

    @contextmanager
    def proxy(self, options: ProxyOptions = SHORT_OPTIONS, **more: Any) -> Iterator[RunningProxy]:
        with proxy_running(self.settings(options=options, **more)) as running:
            yield running


def knows(proxy: RunningProxy, token: str) -> bool:
    table = proxy.state.table
    return table is not None and token_sha256(token) in table.callers


def wait_for_route(proxy: RunningProxy, route: Route) -> None:
    wait_until(lambda: knows(proxy, route.token), what="the proxy to load the access key")


@contextmanager
def running_gateway(data_dir: Path) -> Iterator[Gateway]:
    mock = MockThread()
    try:
        settings = Settings(
            listen="127.0.0.1:0",
            data_dir=data_dir,
            provider_base_urls={"openai": mock.base_url, "anthropic": mock.base_url},
        )
        server, loop = start_control_plane(settings)
        try:
            with connected(server, data_dir) as cp:
                yield Gateway(cp, Admin(cp), mock, data_plane_token(data_dir))
        finally:
            stop_control_plane(server, loop)
    finally:
        mock.stop()


def client(proxy: RunningProxy, timeout: float = 10.0) -> httpx.Client:
    return httpx.Client(base_url=proxy.url, timeout=timeout)
