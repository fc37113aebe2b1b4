"""Helpers for the snapshot-protocol integration tests.

- `wait_until`: polls a condition against a deadline (never a sleep-then-assert).
- `control_plane_at`: a real control plane outside the function fixture, e.g. on a fixed
  port so a test can stop it and start it again where proxies expect it.
- `start_proxy`: a real `ProxyRunner` (HTTP surface + snapshot client) on its own event loop.
- `RawDiscovery`: speaks the discovery protocol by hand on a synchronous channel, so a test
  decides exactly what the "proxy" sends, and whether it reads at all.
- `Admin`: the few admin calls these tests make.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import queue
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx
import psycopg
from keyway.v1 import access_key_configurations_pb2 as cfg
from keyway.v1 import access_key_configurations_pb2_grpc as cfg_grpc
from keyway.v1 import access_keys_pb2 as ak
from keyway.v1 import access_keys_pb2_grpc as ak_grpc
from keyway.v1 import data_planes_pb2 as dp
from keyway.v1 import data_planes_pb2_grpc as dp_grpc
from keyway.v1 import discovery_pb2 as pb
from keyway.v1 import discovery_pb2_grpc
from keyway.v1 import provider_keys_pb2 as pk
from keyway.v1 import provider_keys_pb2_grpc as pk_grpc
from starlette.types import ASGIApp

from control_plane.bootstrap import DATA_PLANE_FILE
from control_plane.server import Settings
from control_plane.snapshots.compiler import StoreState
from control_plane.snapshots.publisher import Published
from control_plane.store.port import SnapshotSource
from data_plane.routing.table import RoutingTable
from data_plane.runner import ProxyRunner, ProxySettings
from data_plane.snapshot.state import SnapshotState

from .control_planes import (
    BackgroundLoop,
    RunningControlPlane,
    start_control_plane,
    stop_control_plane,
)

T = TypeVar("T")
Metadata = tuple[tuple[str, str], ...]

DEADLINE = 5.0


def wait_until(predicate: Callable[[], T | None], timeout: float = DEADLINE, what: str = "") -> T:
    """Returns the first truthy value of `predicate()`; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.01)


def asgi_get(app: ASGIApp, path: str) -> httpx.Response:
    """One GET through the app in-process (no socket), from a synchronous test."""

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            return await client.get(path)

    return asyncio.run(get())


def free_port() -> int:
    """A port nothing listens on now (for a server that must come back on the same port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def auth(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def store_revision(data_dir: Path) -> int:
    """The committed store revision, read on a connection of our own.

    (The server's connection belongs to its event loop thread; reading through it from the
    test thread could see a write transaction that is still open.)
    """
    uri = f"file:{data_dir / 'keyway.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        return int(conn.execute("SELECT value FROM revision WHERE id = 1").fetchone()[0])


def committed_revision(cp: RunningControlPlane) -> int:
    """The committed store revision of a control plane's database, whichever it is."""
    url = cp.server.settings.database_url
    if not url:
        return store_revision(cp.data_dir)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT value FROM revision WHERE id = 1").fetchone()
        assert row is not None
        return int(row[0])


def caught_up(cp: RunningControlPlane) -> Published:
    """The latest published snapshot, once it covers every committed write."""

    def published() -> Published | None:
        latest = cp.server.publisher.latest
        if latest is not None and latest.compiled.version == committed_revision(cp):
            return latest
        return None

    return wait_until(published, what="the publisher to catch up with the store")


def full_state(reader: SnapshotSource) -> StoreState:
    """Every account as one StoreState (no overrides), for compiling the whole snapshot."""
    delta = reader.read({})
    for account in delta.changed:
        assert account.record is not None, account.problem
    return StoreState(delta.revision, tuple(a.record for a in delta.changed if a.record), {})


def data_plane_token(data_dir: Path) -> str:
    return (data_dir / DATA_PLANE_FILE).read_text().strip()


def assert_no_secret(haystack: str | bytes, *secrets: str, width: int = 12) -> None:
    """No `width`-character window of any of `secrets` appears in `haystack`."""
    data = haystack.encode() if isinstance(haystack, str) else haystack
    for secret in secrets:
        for i in range(len(secret) - width + 1):
            window = secret[i : i + width]
            assert window.encode() not in data, f"a provider key value leaked: ...{window}..."


# -- control plane -------------------------------------------------------------------------


class ControlPlaneProcess:
    """A control plane that a test can stop and start again (same data dir, same port)."""

    def __init__(
        self,
        settings: Settings,
        credentials: grpc.ChannelCredentials | None = None,
        token_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.token_dir = token_dir or settings.data_dir
        """Where the tokens are (a replica of a shared database finds them in the data
        directory of the one that started first)."""
        self.credentials = credentials
        """For the admin channel, when the control plane serves TLS."""
        self.running: RunningControlPlane | None = None
        self._background: BackgroundLoop | None = None

    def start(self) -> RunningControlPlane:
        assert self.running is None, "already running"
        server, self._background = start_control_plane(self.settings)
        address = f"127.0.0.1:{server.port}"
        self.running = RunningControlPlane(
            address=address,
            operator_token=(self.token_dir / "operator.token").read_text().strip(),
            admin_token=(self.token_dir / "admin.token").read_text().strip(),
            data_dir=self.token_dir,
            server=server,
            channel=(
                grpc.secure_channel(address, self.credentials)
                if self.credentials is not None
                else grpc.insecure_channel(address)
            ),
        )
        return self.running

    def stop(self) -> None:
        running, background = self.running, self._background
        self.running = self._background = None
        if running is not None and background is not None:
            running.channel.close()
            stop_control_plane(running.server, background)


@contextmanager
def control_plane_at(
    settings: Settings, credentials: grpc.ChannelCredentials | None = None
) -> Iterator[RunningControlPlane]:
    """A running control plane for `settings`, stopped on exit."""
    process = ControlPlaneProcess(settings, credentials)
    try:
        yield process.start()
    finally:
        process.stop()


class Admin:
    """The admin calls these tests need, as the default account's admin."""

    def __init__(self, cp: RunningControlPlane, channel: grpc.Channel | None = None) -> None:
        channel = channel or cp.channel
        self.cp = cp
        self.md = cp.admin
        self.provider_keys = pk_grpc.ProviderKeyServiceStub(channel)
        self.access_keys = ak_grpc.AccessKeyServiceStub(channel)
        self.configurations = cfg_grpc.AccessKeyConfigurationServiceStub(channel)
        self.data_plane = dp_grpc.DataPlaneServiceStub(channel)

    def revision(self) -> int:
        return committed_revision(self.cp)

    def provider_key(self, value: str, provider_id: str = "openai", name: str = "key") -> str:
        request = pk.CreateProviderKeyRequest(
            provider_key=pk.ProviderKey(provider_id=provider_id, name=name), value=value
        )
        return self.provider_keys.CreateProviderKey(request, metadata=self.md).provider_key.id

    def rotate(self, key_id: str, value: str) -> None:
        request = pk.RotateProviderKeyRequest(id=key_id, value=value)
        self.provider_keys.RotateProviderKey(request, metadata=self.md)

    def access_key(self, configuration_id: str = "") -> tuple[str, str]:
        request = ak.CreateAccessKeyRequest(
            access_key=ak.AccessKey(name="app", configuration_id=configuration_id)
        )
        response = self.access_keys.CreateAccessKey(request, metadata=self.md)
        return response.access_key.id, response.token

    def configuration(self, provider_id: str, *key_ids: str) -> str:
        """A configuration routing `provider_id` to `key_ids` in that order."""
        step = cfg.RouterStep(type="user", keys=[cfg.KeyReference(id=k) for k in key_ids])
        config = cfg.AccessKeyConfiguration(
            name="routes",
            router=cfg.Router(rules=[cfg.RouterRule(provider=provider_id, steps=[step])]),
        )
        request = cfg.CreateAccessKeyConfigurationRequest(configuration=config)
        return self.configurations.CreateAccessKeyConfiguration(
            request, metadata=self.md
        ).configuration.id

    def data_planes_response(self) -> dp.ListDataPlanesResponse:
        # As the operator: account admins only get a redacted view without node ids.
        request = dp.ListDataPlanesRequest(page_size=1000)
        return self.data_plane.ListDataPlanes(request, metadata=self.cp.operator)

    def node(self, node_id: str) -> dp.DataPlane | None:
        for node in self.data_planes_response().data_planes:
            if node.node_id == node_id:
                return node
        return None

    def node_in(self, node_id: str, state: dp.DataPlaneState.ValueType) -> dp.DataPlane | None:
        """The node's row once it is in `state`, else None."""
        node = self.node(node_id)
        return node if node is not None and node.state == state else None

    def in_sync(self, node_id: str) -> dp.DataPlane | None:
        """The node's row once it is IN_SYNC on the store's revision, else None."""
        node = self.node(node_id)
        if (
            node is None
            or node.state != dp.DATA_PLANE_STATE_IN_SYNC
            or node.applied_version != node.latest_version
            or node.applied_version != self.revision()
        ):
            return None
        return node


# -- proxies -------------------------------------------------------------------------------


@dataclass
class RunningProxy:
    proxy: ProxyRunner
    background: BackgroundLoop

    @property
    def state(self) -> SnapshotState:
        return self.proxy.state

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy.port}"

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5)

    def table(self) -> RoutingTable:
        table = self.state.table
        assert table is not None, "the proxy serves no snapshot"
        return table

    def version(self) -> int:
        table = self.state.table
        return table.version if table else 0

    def metric(self, name: str) -> float:
        """One value from the proxy's /metrics page."""
        for line in self.get("/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{name} is not on /metrics")

    def stop(self) -> None:
        try:
            self.background.run(self.proxy.stop())
        finally:
            self.background.close()


def start_proxy(settings: ProxySettings) -> RunningProxy:
    background = BackgroundLoop("proxy")

    async def make() -> ProxyRunner:
        proxy = ProxyRunner(settings)
        await proxy.start()
        return proxy

    try:
        return RunningProxy(background.run(make()), background)
    except BaseException:
        background.close()
        raise


@contextmanager
def proxy_running(settings: ProxySettings) -> Iterator[RunningProxy]:
    running = start_proxy(settings)
    try:
        yield running
    finally:
        running.stop()


def proxy_settings(cp_address: str, token: str, node_id: str, **more: Any) -> ProxySettings:
    """A proxy on a free port following `cp_address`; `more` sets other ProxySettings fields."""
    settings = ProxySettings(
        listen="127.0.0.1:0", control_plane=cp_address, token=token, node_id=node_id
    )
    return dataclasses.replace(settings, **more)


# -- a hand-driven discovery stream ----------------------------------------------------------


class StreamEnded(Exception):
    """The server closed the stream without an error status."""


_Inbound = pb.StreamSnapshotsResponse | grpc.RpcError | StreamEnded


class RawDiscovery:
    """One discovery stream whose every message the test writes by hand.

    With `read=False` nothing ever reads the responses: HTTP/2 flow control then stops
    the server's writes to this stream, which is what a stuck proxy looks like.
    """

    def __init__(
        self,
        address: str,
        token: str,
        *,
        read: bool = True,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.channel = (
            grpc.secure_channel(address, credentials)
            if credentials is not None
            else grpc.insecure_channel(address)
        )
        self._outbox: queue.Queue[pb.StreamSnapshotsRequest | None] = queue.Queue()
        self.inbox: queue.Queue[_Inbound] = queue.Queue()
        stub = discovery_pb2_grpc.DataPlaneDiscoveryServiceStub(self.channel)
        self._call = stub.StreamSnapshots(self._requests(), metadata=auth(token))
        self._reader: threading.Thread | None = None
        if read:
            self._reader = threading.Thread(target=self._read, name="raw-discovery", daemon=True)
            self._reader.start()

    def _requests(self) -> Iterator[pb.StreamSnapshotsRequest]:
        while (item := self._outbox.get()) is not None:
            yield item

    def _read(self) -> None:
        try:
            for response in self._call:
                self.inbox.put(response)
        except grpc.RpcError as error:
            self.inbox.put(error)
        else:
            self.inbox.put(StreamEnded())

    def send(self, request: pb.StreamSnapshotsRequest) -> None:
        self._outbox.put(request)

    def hello(self, node_id: str, version: int = 0, sha256: str = "") -> None:
        self.send(
            pb.StreamSnapshotsRequest(
                hello=pb.Hello(
                    node_id=node_id,
                    pool="raw",
                    build_version="test",
                    applied_version=version,
                    applied_hash=sha256,
                )
            )
        )

    def ack(self, response: pb.StreamSnapshotsResponse) -> None:
        update = response.update
        self.send(
            pb.StreamSnapshotsRequest(
                ack=pb.Ack(nonce=response.nonce, version=update.version, hash=update.hash)
            )
        )

    def nack(self, nonce: str, version: int, message: str) -> None:
        self.send(
            pb.StreamSnapshotsRequest(
                nack=pb.Nack(
                    nonce=nonce,
                    version=version,
                    message=message,
                    violations=[pb.SnapshotViolation(field="accounts[0].id", description="test")],
                )
            )
        )

    def receive(self, timeout: float = DEADLINE) -> pb.StreamSnapshotsResponse:
        try:
            item = self.inbox.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no response within {timeout}s") from None
        if not isinstance(item, pb.StreamSnapshotsResponse):
            raise AssertionError(f"expected a response, the stream ended: {item!r}")
        return item

    def update(self, timeout: float = DEADLINE) -> pb.StreamSnapshotsResponse:
        response = self.receive(timeout)
        assert response.WhichOneof("message") == "update", response
        return response

    def update_to(self, version: int, timeout: float = DEADLINE) -> pb.StreamSnapshotsResponse:
        """The update to `version`, skipping older ones (publishes still on their way)."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.update(max(0.0, deadline - time.monotonic()))
            if response.update.version >= version:
                assert response.update.version == version, response.update.version
                return response

    def assert_silent(self, seconds: float) -> None:
        """Nothing arrives for `seconds` (the only way to observe an absence)."""
        try:
            item = self.inbox.get(timeout=seconds)
        except queue.Empty:
            return
        raise AssertionError(f"expected nothing, got {item!r}")

    def error(self, timeout: float = DEADLINE) -> grpc.RpcError:
        """Skips responses until the stream fails; returns the error."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = self.inbox.get(timeout=left)
            except queue.Empty:
                break
            if isinstance(item, grpc.RpcError):
                return item
            if isinstance(item, StreamEnded):
                raise AssertionError("the stream ended without an error")
        raise AssertionError(f"the stream did not fail within {timeout}s")

    def close(self) -> None:
        self._outbox.put(None)
        self._call.cancel()
        if self._reader is not None:
            self._reader.join(timeout=DEADLINE)
        self.channel.close()

    def __enter__(self) -> RawDiscovery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
