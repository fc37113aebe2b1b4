"""Assembles the control plane: store, secrets, servicers, health, reflection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

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
    provider_keys_pb2,
    provider_keys_pb2_grpc,
    providers_pb2,
    providers_pb2_grpc,
)

from control_plane.api.access_keys import AccessKeyServicer
from control_plane.api.accounts import AccountServicer, AdminApiKeyServicer
from control_plane.api.base import Options
from control_plane.api.configurations import ConfigurationServicer
from control_plane.api.data_planes import DataPlaneServicer
from control_plane.api.master_keys import MasterKeyServicer
from control_plane.api.provider_keys import ProviderKeyServicer
from control_plane.api.providers import ProviderServicer
from control_plane.bootstrap import bootstrap
from control_plane.secrets.keyring import load_key_provider
from control_plane.secrets.sealing import Sealer
from control_plane.snapshots.discovery import DiscoveryServicer
from control_plane.snapshots.publisher import Publisher
from control_plane.snapshots.source import StateReader
from control_plane.snapshots.status import StatusBook
from control_plane.store.database import open_database
from control_plane.store.store import Store
from data_plane.shared.addresses import is_loopback
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
    data_planes_pb2.DESCRIPTOR.services_by_name["DataPlaneService"],
    discovery_pb2.DESCRIPTOR.services_by_name["DataPlaneDiscoveryService"],
)


class InsecureListenError(StartupError):
    """Snapshots carry provider keys: refuse to serve them in clear off this host."""


@dataclass(frozen=True, slots=True)
class Settings:
    listen: str = "127.0.0.1:50051"
    data_dir: Path = Path(".keyway")
    provider_base_urls: dict[str, str] = field(default_factory=dict)
    allow_private_upstreams: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    """When set, proxies (and admin clients) must present a certificate it signed."""
    allow_insecure_remote: bool = False
    publish_quiet: float = 0.02
    publish_cap: float = 0.2


class ControlPlane:
    """A running control plane; `start()` binds, `stop()` drains and closes."""

    def __init__(self, settings: Settings) -> None:
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
        # Before anything touches the data dir: a second process on a used port stops here.
        check_free(settings.listen, _WHAT)
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
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        sealer = Sealer(load_key_provider(settings.data_dir, os.environ))
        db_path = settings.data_dir / "keyway.db"
        self.store = Store(open_database(db_path), sealer)
        self.tokens = bootstrap(self.store, settings.data_dir)
        self._reader = StateReader(
            db_path, sealer, settings.provider_base_urls, settings.allow_private_upstreams
        )
        self.publisher = Publisher(
            self._reader.read,
            self._reader.revision,
            quiet=settings.publish_quiet,
            cap=settings.publish_cap,
        )
        self.store.on_commit(self.publisher.notify)
        self.status = StatusBook(self.store.db)
        self._publishing: asyncio.Task[None] | None = None
        self._status_flush: asyncio.Task[None] | None = None
        options = Options(
            provider_base_urls=dict(settings.provider_base_urls),
            allow_private_upstreams=settings.allow_private_upstreams,
        )
        self._server = grpc.aio.server(
            options=[
                # Never share the port (see data_plane.shared.startup).
                ("grpc.so_reuseport", 0),
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.keepalive_timeout_ms", 10_000),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.keepalive_permit_without_calls", 1),
            ]
        )
        self._health = health.aio.HealthServicer()
        s, st = self._server, self.store
        accounts_pb2_grpc.add_AccountServiceServicer_to_server(AccountServicer(st, options), s)
        admin_api_keys_pb2_grpc.add_AdminApiKeyServiceServicer_to_server(
            AdminApiKeyServicer(st, options), s
        )
        provider_keys_pb2_grpc.add_ProviderKeyServiceServicer_to_server(
            ProviderKeyServicer(st, options), s
        )
        access_keys_pb2_grpc.add_AccessKeyServiceServicer_to_server(
            AccessKeyServicer(st, options), s
        )
        access_key_configurations_pb2_grpc.add_AccessKeyConfigurationServiceServicer_to_server(
            ConfigurationServicer(st, options), s
        )
        providers_pb2_grpc.add_ProviderServiceServicer_to_server(ProviderServicer(st, options), s)
        master_keys_pb2_grpc.add_MasterKeyServiceServicer_to_server(
            MasterKeyServicer(st, options, sealer), s
        )
        discovery = DiscoveryServicer(st, self.publisher, self.status)
        discovery_pb2_grpc.add_DataPlaneDiscoveryServiceServicer_to_server(discovery, s)
        data_planes_pb2_grpc.add_DataPlaneServiceServicer_to_server(
            DataPlaneServicer(st, options, self.status, self.publisher, discovery.revoke), s
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, s)
        names = [svc.full_name for svc in _SERVICES]
        reflection.enable_server_reflection(
            [
                *names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            s,
        )

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
        await self.publisher.publish_now()
        self._publishing = asyncio.create_task(self.publisher.run(), name="snapshot-publisher")
        self._status_flush = asyncio.create_task(self.status.flush_forever(), name="status-flush")
        await self._server.start()
        for svc in _SERVICES:
            await self._health.set(svc.full_name, health_pb2.HealthCheckResponse.SERVING)
        await self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        host = self.settings.listen.rsplit(":", 1)[0]
        log.info("control plane listening on %s:%d", host, self.port)
        return self.port

    async def stop(self, grace: float = 5.0) -> None:
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace)
        for task in (self._publishing, self._status_flush):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._reader.close()
        self.store.db.close()

    async def wait(self) -> None:
        await self._server.wait_for_termination()
