"""The control plane's /metrics: RPCs by method and code, snapshot and usage figures."""

from __future__ import annotations

import grpc
import httpx
import pytest
from keyway.v1 import usage_pb2 as pb
from keyway.v1 import usage_pb2_grpc
from prometheus_client import generate_latest
from starlette.applications import Starlette

from control_plane.metrics import metrics_route

from .control_planes import RunningControlPlane
from .proxies import wait_until
from .rpc_helpers import Api


def scrape(cp: RunningControlPlane) -> str:
    return generate_latest(cp.server.metrics).decode()


def test_rpcs_are_counted_by_method_and_code(control_plane: RunningControlPlane) -> None:
    api = Api(control_plane.channel, control_plane.admin)
    api.provider_key()
    usage = usage_pb2_grpc.UsageServiceStub(control_plane.channel)
    with pytest.raises(grpc.RpcError):
        usage.GetRequest(pb.GetRequestRequest(request_id="req_none"), metadata=control_plane.admin)
    with pytest.raises(grpc.RpcError):
        usage.ListUsage(pb.ListUsageRequest(), metadata=control_plane.auth("kwadm_nonsense"))

    # The client has its error as soon as the handler aborts; the server counts just after.
    def counted() -> str | None:
        text = scrape(control_plane)
        refused = (
            'keyway_rpcs_total{code="UNAUTHENTICATED",method="ListUsage"} 1.0',
            'keyway_rpcs_total{code="NOT_FOUND",method="GetRequest"} 1.0',
        )
        return text if all(line in text for line in refused) else None

    text = wait_until(counted, what="the refused calls to be counted")
    assert 'keyway_rpcs_total{code="OK",method="CreateProviderKey"} 1.0' in text
    assert 'keyway_rpc_duration_seconds_count{method="CreateProviderKey"} 1.0' in text
    assert "keyway_snapshot_version " in text
    assert "keyway_snapshot_compile_seconds " in text
    assert "keyway_connected_proxies 0.0" in text
    assert "keyway_usage_records_ingested_total 0.0" in text
    assert control_plane.admin_token not in text


async def test_the_metrics_route_serves_the_exposition_format(
    control_plane: RunningControlPlane,
) -> None:
    transport = httpx.ASGITransport(
        app=Starlette(routes=[metrics_route(control_plane.server.metrics)])
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://cp") as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert "# TYPE keyway_rpcs_total counter" in response.text
