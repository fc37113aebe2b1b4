"""Runs one proxy process: the HTTP server, the snapshot client and the usage reporter.

The entry point the CLI starts (`keyway proxy`, `keyway up`, `keyway demo`): it takes a
`ProxySettings` and the option groups it is made of, all importable from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import resource
import socket
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import uvicorn

from .http.app import create_app
from .http.connections import ConnectionLimits as ConnectionLimits
from .http.connections import protocol_class
from .http.context import ProxyContext
from .http.context import ProxyOptions as ProxyOptions
from .routing.admission import AdmissionLimits as AdmissionLimits
from .routing.policy import FailoverPolicy as FailoverPolicy
from .shared.addresses import is_loopback
from .shared.startup import StartupError, bind, read_file
from .snapshot.cache import SnapshotCache
from .snapshot.client import Identity, SnapshotClient, restore_from_cache
from .snapshot.state import SnapshotState
from .snapshot.targets import parse_targets
from .upstream.client import AiohttpTransport, UpstreamSettings
from .usage import Observer
from .usage import ObserveSettings as ObserveSettings
from .usage.request_log import LogFormat as LogFormat
from .usage.shipping import Shipper, report_forever
from .workers import Supervisor as Supervisor
from .workers import Worker as Worker
from .workers import this_worker as this_worker
from .workers import worker_command as worker_command

log = logging.getLogger("keyway.data_plane")

GC_YOUNG_THRESHOLD = 10_000
"""Net allocations of container objects between young-generation collections."""


@dataclass(frozen=True, slots=True)
class ProxySettings:
    listen: str = "127.0.0.1:8080"
    control_plane: str = "127.0.0.1:50051"
    """HOST:PORT, or several comma-separated (replicas): see `snapshot.targets`."""
    token: str = ""
    cache_dir: Path | None = None
    node_id: str = ""
    pool: str = "default"
    tls_ca: Path | None = None
    tls_client_cert: Path | None = None
    tls_client_key: Path | None = None
    options: ProxyOptions = field(default_factory=ProxyOptions)
    usage_interval: float = 2.0
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    tls_cert: Path | None = None
    """Serve the HTTP listener over TLS with this certificate (and `tls_key`)."""
    tls_key: Path | None = None
    allow_insecure_control_plane: bool = False
    """Follow a non-loopback control plane without TLS (snapshots carry provider keys)."""
    max_snapshot_age: float | None = None
    """Stop serving once the snapshot has gone this many seconds without confirmation."""
    worker: Worker | None = None
    """Set in a worker of `--workers N` (see `workers`): it serves the inherited socket."""
    observe: ObserveSettings = field(default_factory=ObserveSettings)


class InsecureSettingsError(StartupError):
    """Settings that would send or serve secrets in clear, or half a TLS configuration."""


def check_transport(s: ProxySettings) -> None:
    if (s.tls_cert is None) != (s.tls_key is None):
        raise InsecureSettingsError(
            "TLS on the proxy's listener needs both --tls-cert and --tls-key; "
            "refusing to fall back to plaintext"
        )
    if s.tls_cert is not None and s.tls_key is not None:
        # uvicorn reads them only once serving: a missing file is reported now, by its flag.
        read_file(s.tls_cert, "--tls-cert")
        read_file(s.tls_key, "--tls-key")
    remote = [t for t in control_plane_targets(s) if not is_loopback(t)]
    if s.tls_ca is None and remote:
        if not s.allow_insecure_control_plane:
            raise InsecureSettingsError(
                f"refusing to follow the control plane at {remote[0]} without TLS: "
                "snapshots carry provider keys, and usage reports the data-plane token. "
                "Pass --tls-ca (the control plane's CA), or --allow-insecure-control-plane "
                "if a trusted network layer already encrypts the traffic"
            )
        log.warning(
            "following the control plane at %s WITHOUT TLS (--allow-insecure-control-plane): "
            "provider keys and the data-plane token cross the network in clear",
            ", ".join(remote),
        )


def control_plane_targets(s: ProxySettings) -> tuple[str, ...]:
    try:
        return parse_targets(s.control_plane)
    except ValueError as error:
        raise StartupError(str(error)) from None


def raise_open_files_limit(needed: int) -> None:
    """Each connection costs a descriptor, and so does its upstream connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed or soft == resource.RLIM_INFINITY:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        log.warning(
            "open files limit is %d (hard %d); --max-connections wants about %d",
            max(soft, target),
            hard,
            needed,
        )


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The runner owns signals, so a combined `keyway up` stops in order.
        yield


def _credentials(s: ProxySettings) -> grpc.ChannelCredentials | None:
    if s.tls_ca is None:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=read_file(s.tls_ca, "--tls-ca"),
        private_key=read_file(s.tls_client_key, "--tls-client-key") if s.tls_client_key else None,
        certificate_chain=(
            read_file(s.tls_client_cert, "--tls-client-cert") if s.tls_client_cert else None
        ),
    )


class ProxyRunner:
    def __init__(self, settings: ProxySettings) -> None:
        check_transport(settings)
        self.settings = settings
        self.state = SnapshotState(max_age=settings.max_snapshot_age)
        credentials = _credentials(settings)
        worker = settings.worker
        if worker is None:
            self._socket = bind(settings.listen, "proxy")
        else:
            self._socket = socket.socket(fileno=worker.fd)
        self.port: int = self._socket.getsockname()[1]
        node_id = settings.node_id or f"{socket.gethostname()}:{self.port}"
        cache_dir = settings.cache_dir
        if worker is not None:
            node_id, cache_dir = worker.node_id(node_id), worker.cache_dir(cache_dir)
        self.cache = SnapshotCache(cache_dir) if cache_dir else None
        if self.cache is not None:
            restore_from_cache(self.state, self.cache)
        self.node_id = node_id
        self.client = SnapshotClient(
            control_plane_targets(settings),
            settings.token,
            Identity(node_id=node_id, pool=settings.pool),
            self.state,
            cache=self.cache,
            credentials=credentials,
        )
        # The pool never queues a request: in-flight requests are at most the client
        # connections, and each holds one upstream connection at a time. Per-tenant caps
        # (ProxyOptions) keep any one tenant to a share of them.
        limits = settings.limits
        self.upstream = AiohttpTransport(UpstreamSettings(pool_limit=limits.max_connections))
        raise_open_files_limit(3 * limits.max_connections + 256)
        self.observer = Observer.of(settings.observe)
        self.context = ProxyContext(self.state, self.upstream, self.observer, settings.options)
        buffer = self.observer.buffer
        self.shipper = None if buffer is None else Shipper(buffer, node_id)
        config = uvicorn.Config(
            create_app(self.context),
            lifespan="off",
            access_log=False,
            log_config=None,
            timeout_graceful_shutdown=5,
            server_header=False,
            # Model calls never read X-Forwarded-*; parsing them costs every request.
            proxy_headers=False,
            http=protocol_class(limits),
            ws="none",
            timeout_keep_alive=limits.keepalive_timeout,  # type: ignore[arg-type]
            ssl_certfile=settings.tls_cert,
            ssl_keyfile=settings.tls_key,
        )
        self._server = _Server(config)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.upstream.start()
        http = asyncio.create_task(self._server.serve(sockets=[self._socket]), name="http")
        self._tasks = [asyncio.create_task(self.client.run(), name="snapshot-client")]
        if self.shipper is not None:
            reporter = report_forever(
                self.shipper,
                self.client.control_planes.channel,
                self.settings.token,
                self.settings.usage_interval,
                prepare=self.observer.digest,
            )
            self._tasks.append(asyncio.create_task(reporter, name="usage-reporter"))
        self._tasks.append(asyncio.create_task(_digest_forever(self.observer), name="digest"))
        self._tasks.append(http)
        while not self._server.started:
            if http.done():
                http.result()
            await asyncio.sleep(0.01)
        # Everything built so far lives as long as the process: keep it out of
        # the collector's generations so collections scan only request garbage.
        gc.freeze()
        # A young-object collection every 700 net allocations (the default) ran ~40 times a
        # second under load, each scanning the objects of every request in flight: ~6 % of
        # the proxy's CPU, for garbage that reference counting frees anyway. At 10,000 a
        # loaded proxy went 15 s without one (+4-8 % throughput, measured side by side);
        # one still runs whenever 10,000 more objects are alive than at the last, so
        # cyclic garbage stays bounded.
        gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
        scheme = "https" if self.settings.tls_cert else "http"
        host = self.settings.listen.rpartition(":")[0]
        log.info("proxy listening on %s://%s:%d", scheme, host, self.port)

    async def stop(self) -> None:
        self._server.should_exit = True
        for task in self._tasks[:-1]:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.upstream.close()
        await self.client.control_planes.close()
        if self.observer.tracing is not None:
            self.observer.tracing.shutdown()
        self.context.body_worker.shutdown(wait=False, cancel_futures=True)


async def _digest_forever(observer: Observer) -> None:
    # Metrics and request log lines follow within a quarter second: "as they happen".
    try:
        while True:
            await asyncio.sleep(0.25)
            observer.digest()
    finally:
        observer.digest()
