"""The proxy, not only the admin API, keeps tenants' upstreams off internal addresses."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from keyway.v1 import providers_pb2 as ppb
from keyway.v1 import providers_pb2_grpc

from control_plane.server import Settings
from data_plane.mock_upstream.server import MockServer

from .control_planes import BackgroundLoop
from .proxies import (
    Admin,
    ControlPlaneProcess,
    data_plane_token,
    free_port,
    proxy_running,
    proxy_settings,
    wait_until,
)


@pytest.fixture
def mock() -> Iterator[MockServer]:
    background = BackgroundLoop("mock")
    server = MockServer("127.0.0.1:0")
    background.run(server.start())
    try:
        yield server
    finally:
        background.run(server.stop())
        background.close()


def test_a_private_custom_provider_stops_working_when_the_operator_disallows_it(
    tmp_path: Path, mock: MockServer
) -> None:
    allowed = Settings(
        listen=f"127.0.0.1:{free_port()}",
        data_dir=tmp_path / "data",
        allow_private_upstreams=True,
    )
    process = ControlPlaneProcess(allowed)
    try:
        cp = process.start()
        admin = Admin(cp)
        providers_pb2_grpc.ProviderServiceStub(cp.channel).CreateCustomProvider(
            ppb.CreateCustomProviderRequest(
                custom_provider=ppb.CustomProvider(
                    provider_id="x-inhouse",
                    name="in-house",
                    base_url=mock.base_url,
                    formats=[ppb.API_FORMAT_OPENAI],
                    models=[ppb.ProviderModel(id="house-model")],
                )
            ),
            metadata=cp.admin,
        )
        admin.provider_key("sk-mock-ok-inhouse", provider_id="x-inhouse")
        _, token = admin.access_key()
        headers = {"authorization": f"Bearer {token}"}
        body = {"model": "house-model", "messages": [{"role": "user", "content": "hi"}]}
        settings = proxy_settings(cp.address, data_plane_token(cp.data_dir), "guarded")
        with proxy_running(settings) as proxy:
            wait_until(lambda: admin.in_sync("guarded"), what="IN_SYNC")
            served = httpx.post(f"{proxy.url}/v1/chat/completions", headers=headers, json=body)
            assert served.status_code == 200

            # The operator turns the allowance off; the stored provider is not revalidated,
            # but the next snapshot tells the proxy, which refuses to connect.
            process.stop()
            process.settings = replace(allowed, allow_private_upstreams=False)
            cp = process.start()
            admin = Admin(cp)
            wait_until(
                lambda: (
                    (t := proxy.state.table) is not None
                    and any(
                        p.public_only
                        for a in t.accounts.values()
                        for p in a.providers.values()
                        if p.id == "x-inhouse"
                    )
                ),
                what="the stricter snapshot",
            )
            refused = httpx.post(f"{proxy.url}/v1/chat/completions", headers=headers, json=body)
            assert refused.status_code == 502
            error = refused.json()["error"]
            (attempt,) = error["attempts"]
            # Where and why, in the attempt and in the message SDKs print.
            assert attempt["reason"] == (
                "Could not connect to provider at 127.0.0.1: the operator allows no private "
                "upstreams (control plane flag --allow-private-upstreams)"
            )
            assert attempt["reason"] in error["message"]
            # Built-in providers (the operator's own base URLs) are unaffected.
            table = proxy.state.table
            assert table is not None
            built_in = [
                p for a in table.accounts.values() for p in a.providers.values() if p.id == "openai"
            ]
            assert built_in
            assert not any(p.public_only for p in built_in)
    finally:
        process.stop()
