"""Assembles the control plane: store, secrets, servicers, health, reflection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from keyway.v1 import (
    access_key_configurations_pb2,
    access_key_configurations_pb2_grpc,
    access_keys_pb2,
    access_keys_pb2_grpc,
    accounts_pb2,
    accounts_pb2_grpc,
    admin_api_keys_pb2,
    admin_api_keys_pb2_grpc,
    data_planes_pb2,
    data_planes_pb2_grpc,
    discovery_pb2,
    discovery_pb2_grpc,
    master_keys_pb2,
    master_keys_pb2_grpc,
    operator_credentials_pb2,
    operator_credentials_pb2_grpc,
    provider_keys_pb2,
    provider_keys_pb2_grpc,
    providers_pb2,
    providers_pb2_grpc,
    usage_pb2,
    usage_pb2_grpc,
)

from control_plane.api.access_keys import AccessKeyServicer
from control_plane.api.accounts import AccountServicer, AdminApiKeyServicer
from control_plane.api.auth import ReflectionGate
from control_plane.api.base import Options
from control_plane.api.configurations import ConfigurationServicer
from control_plane.api.data_planes import DataPlaneServicer
from control_plane.api.master_keys import MasterKeyServicer
from control_plane.api.operator_credentials import OperatorCredentialServicer
from control_plane.api.provider_keys import ProviderKeyServicer
from control_plane.api.providers import ProviderServicer
from control_plane.api.usage import UsageServicer
from control_plane.bootstrap import bootstrap
from control_plane.console import Console
from control_plane.console.sessions import Sessions
from control_plane.domain import catalog
from control_plane.domain.errors import Unavailable
from control_plane.domain.pricing import Price
from control_plane.domain.quotas import DEFAULT_QUOTAS, Quotas
from control_plane.domain.tokens import TokenKind
from control_plane.http import http_app
from control_plane.http.listener import WHAT as HTTP_WHAT
from control_plane.http.listener import HttpListener, Tls
from control_plane.key_checks import check_keyring
from control_plane.metrics import control_plane_registry, metrics_route
from control_plane.secrets.errors import SealError
from control_plane.secrets.keyring import ENV_VAR, KeyProvider, key_file, load_key_provider
from control_plane.secrets.sealing import Sealer
from control_plane.snapshots.assembly import Assembly
from control_plane.snapshots.discovery import DiscoveryServicer
from control_plane.snapshots.publisher import Publisher
from control_plane.snapshots.status import StatusBook
from control_plane.store import urls
from control_plane.store.port import Store, call
from control_plane.store.records import PassResult
from data_plane.shared.addresses import is_loopback
from data_plane.shared.private_files import UnsafePathError, ensure_private_dir, locked
from data_plane.shared.startup import ListenError, StartupError, check_free, read_file

log = logging.getLogger("keyway.control_plane")

_WHAT = "control plane"

_SERVICES = (
    accounts_pb2.DESCRIPTOR.services_by_name["AccountService"],
    admin_api_keys_pb2.DESCRIPTOR.services_by_name["AdminApiKeyService"],
    provider_keys_pb2.DESCRIPTOR.services_by_name["ProviderKeyService"],
    access_keys_pb2.DESCRIPTOR.services_by_name["AccessKeyService"],
    access_key_configurations_pb2.DESCRIPTOR.services_by_name["AccessKeyConfigurationService"],
    providers_pb2.DESCRIPTOR.services_by_name["ProviderService"],
    master_keys_pb2.DESCRIPTOR.services_by_name["MasterKeyService"],
    operator_credentials_pb2.DESCRIPTOR.services_by_name["OperatorCredentialService"],
    data_planes_pb2.DESCRIPTOR.services_by_name["DataPlaneService"],
    discovery_pb2.DESCRIPTOR.services_by_name["DataPlaneDiscoveryService"],
    usage_pb2.DESCRIPTOR.services_by_name["UsageService"],
)
_DAY = 24 * 3600.0


_ADD_TO_SERVER: dict[str, Callable[[Any, grpc.aio.Server], None]] = {
    "keyway.v1.AccountService": accounts_pb2_grpc.add_AccountServiceServicer_to_server,
    "keyway.v1.AdminApiKeyService": (
        admin_api_keys_pb2_grpc.add_AdminApiKeyServiceServicer_to_server
    ),
    "keyway.v1.ProviderKeyService": provider_keys_pb2_grpc.add_ProviderKeyServiceServicer_to_server,
    "keyway.v1.AccessKeyService": access_keys_pb2_grpc.add_AccessKeyServiceServicer_to_server,
    "keyway.v1.AccessKeyConfigurationService": (
        access_key_configurations_pb2_grpc.add_AccessKeyConfigurationServiceServicer_to_server
    ),
    "keyway.v1.ProviderService": providers_pb2_grpc.add_ProviderServiceServicer_to_server,
    "keyway.v1.MasterKeyService": master_keys_pb2_grpc.add_MasterKeyServiceServicer_to_server,
    "keyway.v1.OperatorCredentialService": (
        operator_credentials_pb2_grpc.add_OperatorCredentialServiceServicer_to_server
    ),
    "keyway.v1.UsageService": usage_pb2_grpc.add_UsageServiceServicer_to_server,
    "keyway.v1.DataPlaneDiscoveryService": (
        discovery_pb2_grpc.add_DataPlaneDiscoveryServiceServicer_to_server
    ),
    "keyway.v1.DataPlaneService": data_planes_pb2_grpc.add_DataPlaneServiceServicer_to_server,
}


ADMIN_SERVICES = tuple(_ADD_TO_SERVER)
"""Full names of the services the control plane serves (REST routes: the annotated ones)."""


class InsecureListenError(StartupError):
    """Snapshots carry provider keys: refuse to serve them in clear off this host."""


def _key_source(key_path: Path, environ: Mapping[str, str]) -> str:
    if ENV_VAR in environ:
        return ENV_VAR
    return f"the key file {key_path}"


def _check_master_keys(
    store: Store, provider: KeyProvider, key_path: Path, environ: Mapping[str, str]
) -> None:
    """Refuses to run with a keyring that cannot open what the database holds.

    Serving would look healthy while no snapshot could ever be compiled, and a key
    quietly generated in place of the lost one would seal new secrets beside
    unreadable old ones. On a shared database this is also what stops a replica
    started with another deployment's key.
    """
    source = _key_source(key_path, environ)
    known = set(provider.ids())
    missing = [kek_id for kek_id in store.sealed_kek_ids() if kek_id not in known]
    if missing:
        listed = ", ".join(missing)
        raise StartupError(
            f"the database holds provider keys sealed with master key(s) {listed}, which "
            f"{source} does not have. Start with the keyring that sealed them (restore "
            f"{key_path} from your backup), or set {ENV_VAR}="
            f"'<id>:<base64 key>,…' including {listed}"
        )
    wrong = [kek_id for kek_id in store.sealed_kek_ids() if not store.kek_opens(kek_id)]
    if wrong:
        raise StartupError(
            f"master key(s) {', '.join(wrong)} in {source} do not open the provider keys "
            "sealed with them: the key material under that id is not the one that sealed "
            "them (restore the right keyring)"
        )


@dataclass(frozen=True, slots=True)
class Storage:
    """Where a control plane keeps its state: the data directory (tokens written on first
    start, the start-up lock), the database, and the master key file."""

    data_dir: Path
    database_url: str = field(default="", repr=False)  # it may hold a password
    """Empty: SQLite in the data directory (see `control_plane.store.urls`)."""
    master_key_file: Path | None = None
    """Default: `<data_dir>/master.keys`. Replicas of a shared database must all use the
    same keyring: this file (on a shared volume or secret), or KEYWAY_MASTER_KEYS."""

    @property
    def shared(self) -> bool:
        """Whether other replicas may use the same database."""
        return urls.parse(self.database_url, self.data_dir).shared

    @property
    def key_path(self) -> Path:
        return self.master_key_file or key_file(self.data_dir)


def _open_store(
    storage: Storage, environ: Mapping[str, str], given: KeyProvider | None, quotas: Quotas
) -> tuple[Store, Sealer]:
    database = urls.parse(storage.database_url, storage.data_dir)
    key_path = storage.key_path
    if (
        database.shared
        and given is None
        and ENV_VAR not in environ
        and storage.master_key_file is None
    ):
        raise StartupError(
            f"{database.describe()} is shared by every replica, so the master key must be "
            f"too: set {ENV_VAR} (the same on every replica) or --master-key-file to a key "
            "file every replica reads; a key made here would seal secrets the other "
            "replicas cannot open"
        )
    chosen: list[Sealer] = []

    def sealer(sealed_kek_ids: list[str]) -> Sealer:
        provider: KeyProvider
        if given is not None:
            provider = given
        elif sealed_kek_ids and ENV_VAR not in environ and not key_path.exists():
            # Never a fresh key in place of a lost one: it could not open what is there.
            provider = _EmptyKeyring()
        else:
            provider = load_key_provider(storage.data_dir, environ, key_path)
        chosen.append(Sealer(provider))
        return chosen[0]

    try:
        store = urls.open_database_store(database, sealer, quotas)
    except Unavailable:
        raise StartupError(
            f"cannot reach {database.describe()} (check --database-url, that the server "
            "is up and accepts this user)"
        ) from None
    try:
        _check_master_keys(store, chosen[0].provider, key_path, environ)
        check_keyring(store, chosen[0], _key_source(key_path, environ))
    except BaseException:
        store.close()
        raise
    return store, chosen[0]


@contextlib.contextmanager
def open_data_dir(
    data_dir: Path | Storage,
    key_provider: KeyProvider | None = None,
    quotas: Quotas = DEFAULT_QUOTAS,
) -> Iterator[tuple[Store, Sealer]]:
    """The store of a data directory, with its keyring checked, under the start-up lock.

    The lock serialises first start across processes sharing the directory: one
    migrates the schema and creates the operator credential, the others find them
    (replicas of a shared database each have a directory of their own; the database's
    own locks order them: see `bootstrap`).
    """
    storage = data_dir if isinstance(data_dir, Storage) else Storage(data_dir)
    try:
        ensure_private_dir(storage.data_dir)
        with locked(storage.data_dir / "keyway.lock"):
            yield _open_store(storage, os.environ, key_provider, quotas)
    except (UnsafePathError, SealError, urls.DatabaseUrlError) as error:
        raise StartupError(str(error)) from None


class _EmptyKeyring:
    """Stands in for a key file that is missing; `_check_master_keys` then says so."""

    def current(self) -> tuple[str, bytes]:
        raise SealError("no master key")

    def get(self, kek_id: str) -> bytes:
        raise SealError("no master key")

    def create(self) -> None:
        return None

    def ids(self) -> list[str]:
        return []


@dataclass(frozen=True, slots=True)
class Settings:
    listen: str = "127.0.0.1:50051"
    data_dir: Path = Path(".keyway")
    database_url: str = field(default="", repr=False)  # it may hold a password
    """See `Storage`."""
    master_key_file: Path | None = None
    """See `Storage`."""
    provider_base_urls: dict[str, str] = field(default_factory=dict)
    allow_private_upstreams: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    """When set, proxies (and admin clients) must present a certificate it signed."""
    allow_insecure_remote: bool = False
    publish_quiet: float = 0.02
    publish_cap: float = 0.2
    quotas: Quotas = DEFAULT_QUOTAS
    forget_disconnected_after: float = 7 * 24 * 3600.0
    """Seconds after which a disconnected proxy's status row is dropped."""
    reflection: bool = True
    """Serve gRPC reflection (to callers with an admin or operator token only)."""
    http_listen: str | None = None
    """Where the HTTP listener (admin REST API, /openapi.json, /healthz, /readyz) listens;
    None: no HTTP listener. The CLI's default is 127.0.0.1:8081."""
    replica_id: str = ""
    """How `data-planes list` names this control plane (default: HOST:PORT)."""
    model_prices: Mapping[str, Price] = field(default_factory=lambda: dict(catalog.PRICES))
    """`provider/model` -> price: the catalog's, with the operator's on top."""
    usage_retention: float = 30 * _DAY
    """Seconds raw attempt records (`admin requests get`) are kept."""
    rollup_retention: float = 400 * _DAY
    """Seconds hourly usage totals (`admin usage`) are kept."""


class ControlPlane:
    """A running control plane; `start()` binds, `stop()` drains and closes.

    `key_provider` replaces the keyring chosen from the environment and data directory
    (the `KeyProvider` protocol is the seam for other key stores).
    """

    def __init__(self, settings: Settings, key_provider: KeyProvider | None = None) -> None:
        if (settings.tls_cert is None) != (settings.tls_key is None) or (
            settings.tls_client_ca is not None and settings.tls_cert is None
        ):
            raise InsecureListenError(
                "TLS needs both --tls-cert and --tls-key (and --tls-client-ca only with them); "
                "refusing to fall back to plaintext"
            )
        if settings.tls_cert is None and not (
            settings.allow_insecure_remote or is_loopback(settings.listen)
        ):
            raise InsecureListenError(
                f"refusing to listen on {settings.listen} without TLS: snapshots carry provider "
                "keys. Pass --tls-cert/--tls-key, or --allow-insecure-remote if a trusted "
                "network layer already encrypts the traffic"
            )
        if (
            settings.http_listen is not None
            and settings.tls_cert is None
            and not (settings.allow_insecure_remote or is_loopback(settings.http_listen))
        ):
            raise InsecureListenError(
                f"refusing to serve the HTTP API on {settings.http_listen} without TLS: its "
                "requests carry provider keys and tokens. Pass --tls-cert/--tls-key, or "
                "--allow-insecure-remote if a trusted network layer already encrypts the traffic"
            )
        # Before anything touches the data dir: a second process on a used port stops here.
        check_free(settings.listen, _WHAT)
        if settings.http_listen is not None:
            check_free(settings.http_listen, HTTP_WHAT)
        self.settings = settings
        self.port = 0
        # Read now, so that a missing file stops the start before the data dir is touched.
        self._tls = (
            None
            if settings.tls_cert is None or settings.tls_key is None
            else (
                read_file(settings.tls_cert, "--tls-cert"),
                read_file(settings.tls_key, "--tls-key"),
                read_file(settings.tls_client_ca, "--tls-client-ca")
                if settings.tls_client_ca
                else None,
            )
        )
        storage = Storage(settings.data_dir, settings.database_url, settings.master_key_file)
        with open_data_dir(storage, key_provider, settings.quotas) as (
            self.store,
            sealer,
        ):
            self.tokens = bootstrap(self.store, settings.data_dir)
        self.publisher = Publisher(
            self.store.snapshots,
            Assembly(
                settings.provider_base_urls,
                settings.allow_private_upstreams,
                settings.quotas.account_snapshot_bytes,
            ),
            quiet=settings.publish_quiet,
            cap=settings.publish_cap,
        )
        self.replica_id = settings.replica_id
        self.status = StatusBook(
            self.store,
            forget_after=settings.forget_disconnected_after,
            shared=storage.shared,
            replica=settings.replica_id,
        )
        self._publishing: asyncio.Task[None] | None = None
        self._status_flush: asyncio.Task[None] | None = None
        self._resealing: asyncio.Task[None] | None = None
        self._serving = False
        self._pruning: asyncio.Task[None] | None = None
        options = Options(
            provider_base_urls=dict(settings.provider_base_urls),
            allow_private_upstreams=settings.allow_private_upstreams,
            quotas=settings.quotas,
        )
        self.discovery = DiscoveryServicer(
            self.store, self.publisher, self.status, settings.model_prices
        )
        self.metrics, rpc_metrics = control_plane_registry(
            self.status, self.publisher, self.discovery
        )
        self._server = grpc.aio.server(
            interceptors=[rpc_metrics, ReflectionGate(self.store)],
            options=[
                # Never share the port (see data_plane.shared.startup).
                ("grpc.so_reuseport", 0),
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.keepalive_timeout_ms", 10_000),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.keepalive_permit_without_calls", 1),
            ],
        )
        self._health = health.aio.HealthServicer()
        s, st = self._server, self.store
        discovery = self.discovery
        # Service full name -> servicer: gRPC and the REST API serve the same objects.
        self.servicers: dict[str, object] = {
            "keyway.v1.AccountService": AccountServicer(st, options, lambda: self.publisher.latest),
            "keyway.v1.AdminApiKeyService": AdminApiKeyServicer(st, options),
            "keyway.v1.ProviderKeyService": ProviderKeyServicer(st, options),
            "keyway.v1.AccessKeyService": AccessKeyServicer(st, options),
            "keyway.v1.AccessKeyConfigurationService": ConfigurationServicer(st, options),
            "keyway.v1.ProviderService": ProviderServicer(st, options),
            "keyway.v1.MasterKeyService": MasterKeyServicer(st, options, sealer),
            "keyway.v1.OperatorCredentialService": OperatorCredentialServicer(st, options),
            "keyway.v1.UsageService": UsageServicer(st, options),
            "keyway.v1.DataPlaneDiscoveryService": discovery,
            "keyway.v1.DataPlaneService": DataPlaneServicer(
                st, options, self.status, self.publisher, discovery.revoke
            ),
        }
        for name, servicer in self.servicers.items():
            _ADD_TO_SERVER[name](servicer, s)
        self.http = None if settings.http_listen is None else self._http(settings.http_listen)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, s)
        if settings.reflection:
            names = [svc.full_name for svc in _SERVICES]
            reflection.enable_server_reflection(
                [
                    *names,
                    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                    reflection.SERVICE_NAME,
                ],
                s,
            )

    def _http(self, listen: str) -> HttpListener:
        s = self.settings
        tls = None
        if s.tls_cert is not None and s.tls_key is not None:
            tls = Tls(s.tls_cert, s.tls_key, s.tls_client_ca)
        console = Console(self._console_token, Sessions(time.time))
        app = http_app(
            self.store,
            self.servicers,
            ready=self._ready,
            parts=[[metrics_route(self.metrics)], console.routes],
            layers=[console.guard],
        )
        return HttpListener(app, listen, tls)

    async def _console_token(self, token: str) -> tuple[TokenKind, str | None] | None:
        found = await call(self.store, self.store.authenticate, token)
        return None if found is None else (found.kind, found.account_id)

    async def _ready(self) -> str | None:
        if not self._serving:
            return "starting or stopping"
        if self.publisher.latest is None:
            return "no snapshot published yet"
        try:
            await call(self.store, self.store.revision)
        except Exception as error:  # readiness reports any store failure, never raises
            return f"the store does not answer ({type(error).__name__})"
        return None

    def _bind(self) -> int:
        listen = self.settings.listen
        # gRPC only says "failed to bind" (and logs it): probing first names the reason.
        check_free(listen, _WHAT)
        try:
            if self._tls is None:
                port = self._server.add_insecure_port(listen)
            else:
                cert, key, client_ca = self._tls
                credentials = grpc.ssl_server_credentials(
                    [(key, cert)],
                    root_certificates=client_ca,
                    require_client_auth=client_ca is not None,
                )
                port = self._server.add_secure_port(listen, credentials)
        except RuntimeError:
            port = 0
        if port == 0:
            check_free(listen, _WHAT)  # taken meanwhile: this raises with the reason
            raise ListenError(listen, _WHAT, "gRPC could not bind it", "choose another address")
        return port

    async def start(self) -> int:
        self.port = self._bind()
        self.replica_id = self.settings.replica_id or f"{socket.gethostname()}:{self.port}"
        self.status.replica = self.replica_id
        loop = asyncio.get_running_loop()

        def committed(revision: int) -> None:
            # Writes commit on the store's executor; the publisher lives on the loop.
            loop.call_soon_threadsafe(self.publisher.notify, revision)

        self.store.on_commit(committed)
        await self.publisher.publish_now()
        self._publishing = asyncio.create_task(self.publisher.run(), name="snapshot-publisher")
        self._status_flush = asyncio.create_task(self.status.flush_forever(), name="status-flush")
        self._resealing = asyncio.create_task(self._reseal_legacy_rows(), name="reseal")
        self._pruning = asyncio.create_task(self._prune_usage_forever(), name="usage-prune")
        await self._server.start()
        for svc in _SERVICES:
            await self._health.set(svc.full_name, health_pb2.HealthCheckResponse.SERVING)
        await self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        host = self.settings.listen.rsplit(":", 1)[0]
        log.info("control plane listening on %s:%d", host, self.port)
        if self.http is not None:
            await self.http.start()
            http_host = cast(str, self.settings.http_listen).rsplit(":", 1)[0]
            log.info("HTTP API on %s://%s:%d", self.http.scheme, http_host, self.http.port)
        self._serving = True
        return self.port

    async def _reseal_legacy_rows(self) -> None:
        """Binds rows sealed before owners were part of the associated data to theirs.

        Beside normal service: rows of either kind open until every one is moved, and
        an interrupted run continues at the next start.
        """
        result = await asyncio.to_thread(self._reseal_if_first)
        if result is not None:
            log.info("re-sealed %d provider key(s) bound to their account", result.done)

    def _reseal_if_first(self) -> PassResult | None:
        # One replica at a time: the others leave it to the one holding the lock.
        with self.store.exclusive("reseal-legacy") as mine:
            if not mine or not self.store.sealed.legacy_rows():
                return None
            return self.store.sealed.reseal_legacy()

    async def _prune_usage_forever(self, every: float = 3600.0) -> None:
        """Drops usage past its retention: at start, then hourly."""
        while True:
            dropped = await asyncio.to_thread(self._prune_if_first, time.time())
            if dropped:
                log.info("dropped %d usage row(s) past their retention", dropped)
            await asyncio.sleep(every)

    def _prune_if_first(self, now: float) -> int:
        # One replica at a time, like the re-seal: the deletes would only collide.
        with self.store.exclusive("usage-prune") as mine:
            if not mine:
                return 0
            return self.store.usage.prune(
                attempts_before_us=int((now - self.settings.usage_retention) * 1e6),
                rollups_before_us=int((now - self.settings.rollup_retention) * 1e6),
            )

    async def stop(self, grace: float = 5.0) -> None:
        self._serving = False
        if self.http is not None:
            await self.http.stop()
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace)
        self.store.sealed.close()
        self.publisher.close()
        for task in (self._publishing, self._status_flush, self._resealing, self._pruning):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.status.flush()
        self.store.close()

    async def wait(self) -> None:
        await self._server.wait_for_termination()
