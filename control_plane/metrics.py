"""The control plane's Prometheus metrics (`prometheus_client`), and the app serving them.

Unary RPCs are counted and timed by `RpcMetrics`, a gRPC interceptor (method and status
code labels; no caller or resource ids). What is read at scrape time: connected proxies,
each proxy's version lag behind the latest snapshot (labelled by node id: proxies are
few and named by the operator), the latest compile's duration and size, and the usage
records ingested and those proxies report dropping. `metrics_route` is the one
`/metrics` route, mounted on the control plane's HTTP listener (`--http-listen`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import grpc
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client import Histogram as PromHistogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from control_plane.snapshots.discovery import DiscoveryServicer
from control_plane.snapshots.publisher import Publisher
from control_plane.snapshots.status import StatusBook

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class RpcMetrics(grpc.aio.ServerInterceptor):
    """Counts and times every unary RPC by method and status code."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "keyway_rpcs",
            "unary RPCs answered (the admin API, proxies' usage reports), by method and code",
            ["method", "code"],
            registry=registry,
        )
        self.latency = PromHistogram(
            "keyway_rpc_duration_seconds",
            "RPC handling time, by method",
            ["method"],
            buckets=_LATENCY,
            registry=registry,
        )

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler  # streams (snapshots) are measured by their own gauges
        behaviour: Callable[..., Awaitable[Any]] = handler.unary_unary
        method = details.method.rpartition("/")[2]

        async def timed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return await behaviour(request, context)
            except BaseException:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            finally:
                self.latency.labels(method).observe(time.perf_counter() - started)
                self.calls.labels(method, _code_name(code)).inc()

        return grpc.unary_unary_rpc_method_handler(
            timed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _code_name(code: object) -> str:
    if isinstance(code, grpc.StatusCode):
        return code.name
    # grpc.aio reports an aborted call's code as the integer of the C core.
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status.name
    return "UNKNOWN"


class _State(Collector):
    def __init__(
        self, status: StatusBook, publisher: Publisher, discovery: DiscoveryServicer
    ) -> None:
        self._status = status
        self._publisher = publisher
        self._discovery = discovery

    def collect(self) -> Iterator[Metric]:
        latest = self._publisher.latest
        version = latest.compiled.version if latest is not None else 0
        nodes = self._status.nodes()
        connected = [n for n in nodes if n.connected]
        yield GaugeMetricFamily(
            "keyway_connected_proxies", "proxies with an open snapshot stream", len(connected)
        )
        lag = GaugeMetricFamily(
            "keyway_proxy_version_lag",
            "snapshot versions a connected proxy is behind the latest",
            labels=["node_id"],
        )
        for n in connected:
            applied = n.applied.version if n.applied is not None else 0
            lag.add_metric([n.node_id], max(0, version - applied))
        yield lag
        yield GaugeMetricFamily("keyway_snapshot_version", "latest published version", version)
        yield GaugeMetricFamily(
            "keyway_snapshot_bytes",
            "size of the latest published snapshot",
            len(latest.compiled.payload) if latest is not None else 0,
        )
        yield GaugeMetricFamily(
            "keyway_snapshot_compile_seconds",
            "read, compile and serialise time of the latest published snapshot",
            self._publisher.last_compile_seconds,
        )
        yield CounterMetricFamily(
            "keyway_snapshot_compile_failures", "compiles that failed", self._publisher.failed_count
        )
        yield CounterMetricFamily(
            "keyway_usage_records_ingested",
            "attempt records stored from proxies (a retried batch counts once)",
            self._discovery.ingested,
        )
        dropped = GaugeMetricFamily(
            "keyway_usage_records_dropped_by_proxy",
            "records a proxy reports dropping because its buffer was full (since its start)",
            labels=["node_id"],
        )
        for node_id, count in sorted(self._discovery.dropped_by_proxy.items()):
            dropped.add_metric([node_id], count)
        yield dropped


def control_plane_registry(
    status: StatusBook, publisher: Publisher, discovery: DiscoveryServicer
) -> tuple[CollectorRegistry, RpcMetrics]:
    """The registry of one control plane, and the interceptor feeding its RPC metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_State(status, publisher, discovery))
    return registry, RpcMetrics(registry)


def metrics_route(registry: CollectorRegistry) -> Route:
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", metrics, methods=["GET"])
