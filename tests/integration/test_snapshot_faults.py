"""Failure modes of the snapshot protocol: bad snapshots, slow proxies, restarts, bad caches."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import os
import queue
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from keyway.v1 import access_key_configurations_pb2 as cpb
from keyway.v1 import data_planes_pb2 as dp
from keyway.v1 import discovery_pb2 as pb
from keyway.v1 import discovery_pb2_grpc

from control_plane.secrets.secret import Secret
from control_plane.server import Settings
from control_plane.snapshots.compiler import (
    AccessKeyRecord,
    AccountRecord,
    Compiled,
    KeyRecord,
    StoreState,
    compile_snapshot,
    serialise,
)
from data_plane.http.app import create_app
from data_plane.http.context import ProxyContext
from data_plane.runner import ProxySettings
from data_plane.snapshot.cache import SnapshotCache
from data_plane.snapshot.client import Backoff, Identity, SnapshotClient
from data_plane.snapshot.state import SnapshotState
from data_plane.upstream.client import AiohttpTransport
from data_plane.usage import Observer, ObserveSettings

from .control_planes import BackgroundLoop, RunningControlPlane
from .proxies import (
    Admin,
    ControlPlaneProcess,
    RawDiscovery,
    asgi_get,
    assert_no_secret,
    data_plane_token,
    free_port,
    proxy_running,
    proxy_settings,
    token_sha256,
    wait_until,
)

SECRET = "sk-proj-Vb5Nm8Hc2Jf6Gd0Sa4PeLk3Wq9Zr7Tx1"
ACCESS_TOKEN = "kwak_test-token-for-the-fake-control-plane"


# -- 3b. a proxy refuses a bad snapshot and keeps serving the good one -----------------------


def _state(version: int, *route_keys: str) -> StoreState:
    """One account, one key, a configuration routing openai to `route_keys`."""
    step = cpb.RouterStep(type="user", keys=[cpb.KeyReference(id=k) for k in route_keys])
    config = cpb.AccessKeyConfiguration(
        router=cpb.Router(rules=[cpb.RouterRule(provider="openai", steps=[step])])
    )
    account = AccountRecord(
        id="acct_1",
        custom_providers=(),
        keys=(KeyRecord("pk_1", "openai", Secret(SECRET)),),
        configurations=(("cfg_1", config),),
        access_keys=(AccessKeyRecord("ak_1", token_sha256(ACCESS_TOKEN), "cfg_1"),),
    )
    return StoreState(version, (account,), {})


def _update(
    nonce: str, version: int, payload: bytes, sha256: str | None = None
) -> pb.StreamSnapshotsResponse:
    return pb.StreamSnapshotsResponse(
        nonce=nonce,
        update=pb.SnapshotUpdate(
            version=version,
            hash=hashlib.sha256(payload).hexdigest() if sha256 is None else sha256,
            snapshot=payload,
        ),
    )


def _good(nonce: str, version: int) -> tuple[pb.StreamSnapshotsResponse, Compiled]:
    compiled = serialise(compile_snapshot(_state(version, "pk_1")))
    return _update(nonce, version, compiled.payload), compiled


class FakeDiscovery(discovery_pb2_grpc.DataPlaneDiscoveryServiceServicer):
    """A control plane that sends exactly what the test queues, and records the replies."""

    def __init__(self) -> None:
        self.outbox: asyncio.Queue[pb.StreamSnapshotsResponse | None] = asyncio.Queue()
        """Responses to send; None ends the stream with UNAVAILABLE."""
        self.replies: queue.Queue[pb.StreamSnapshotsRequest] = queue.Queue()
        self.refuse = 0
        """How many of the next streams to end with UNAVAILABLE at once."""

    async def StreamSnapshots(self, request_iterator: Any, context: Any) -> None:  # type: ignore[override]
        if self.refuse > 0:
            self.refuse -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "refused by the test")

        async def read() -> None:
            async for request in request_iterator:
                self.replies.put(request)

        reader = asyncio.create_task(read())
        try:
            while (response := await self.outbox.get()) is not None:
                await context.write(response)
        finally:
            reader.cancel()
        await context.abort(grpc.StatusCode.UNAVAILABLE, "going away")

    async def ReportUsage(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this fake")


@dataclass
class FakeControlPlane:
    servicer: FakeDiscovery
    server: grpc.aio.Server
    background: BackgroundLoop
    address: str

    def send(self, response: pb.StreamSnapshotsResponse | None) -> None:
        self.background.loop.call_soon_threadsafe(self.servicer.outbox.put_nowait, response)

    def reply(self, kind: str) -> pb.StreamSnapshotsRequest:
        try:
            request = self.servicer.replies.get(timeout=5)
        except queue.Empty:
            raise AssertionError(f"no {kind} from the proxy") from None
        assert request.WhichOneof("message") == kind, request
        return request


@pytest.fixture
def fake_control_plane() -> Iterator[FakeControlPlane]:
    background = BackgroundLoop("fake-control-plane")

    async def start() -> tuple[FakeDiscovery, grpc.aio.Server, int]:
        servicer = FakeDiscovery()
        server = grpc.aio.server()
        discovery_pb2_grpc.add_DataPlaneDiscoveryServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return servicer, server, port

    servicer, server, port = background.run(start())
    try:
        yield FakeControlPlane(servicer, server, background, f"127.0.0.1:{port}")
    finally:
        background.run(server.stop(0))
        background.close()


@dataclass(frozen=True, slots=True)
class RecordingBackoff(Backoff):
    """Records the failure count of every reconnect; waits only a moment."""

    seen: list[int] = field(default_factory=list)

    def delay(self, failures: int, rand: Callable[[], float]) -> float:
        self.seen.append(failures)
        return 0.02


@dataclass
class RunningClient:
    state: SnapshotState
    backoff: RecordingBackoff


@pytest.fixture
def client_of_fake(fake_control_plane: FakeControlPlane) -> Iterator[RunningClient]:
    """A real SnapshotClient (no HTTP surface) following the fake control plane."""
    background = BackgroundLoop("snapshot-client")
    state = SnapshotState()
    backoff = RecordingBackoff()

    async def start() -> asyncio.Task[None]:
        client = SnapshotClient(
            fake_control_plane.address,
            "kwdp_any",
            Identity(node_id="proxy-under-test"),
            state,
            backoff=backoff,
        )
        return asyncio.create_task(client.run())

    task = background.run(start())

    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    try:
        yield RunningClient(state, backoff)
    finally:
        background.run(stop())
        background.close()


def _garbage_with_hash(nonce: str, version: int) -> pb.StreamSnapshotsResponse:
    return _update(nonce, version, b"\xff\xff\xff not a snapshot")


def _unknown_key(nonce: str, version: int) -> pb.StreamSnapshotsResponse:
    compiled = serialise(compile_snapshot(_state(version, "pk_missing")))
    return _update(nonce, version, compiled.payload)


def _hash_mismatch(nonce: str, version: int) -> pb.StreamSnapshotsResponse:
    compiled = serialise(compile_snapshot(_state(version, "pk_1")))
    return _update(nonce, version, compiled.payload, sha256="0" * 64)


def _version_mismatch(nonce: str, version: int) -> pb.StreamSnapshotsResponse:
    compiled = serialise(compile_snapshot(_state(version + 1, "pk_1")))
    return _update(nonce, version, compiled.payload)


def _future_schema(nonce: str, version: int) -> pb.StreamSnapshotsResponse:
    snapshot = compile_snapshot(_state(version, "pk_1"))
    snapshot.schema_version = 2
    return _update(nonce, version, serialise(snapshot).payload)


# (make the bad update, a piece of the NACK message, the violation field paths)
BAD_UPDATES = [
    (_hash_mismatch, "content hash mismatch", []),
    (
        _unknown_key,
        "accounts[0].configurations[0].routes[0].steps[0].key_ids[0]",
        ["accounts[0].configurations[0].routes[0].steps[0].key_ids[0]"],
    ),
    (_garbage_with_hash, "do not parse", []),
    (_version_mismatch, "snapshot says", []),
    (_future_schema, "schema_version", ["schema_version"]),
]


def test_proxy_nacks_bad_snapshots_with_field_paths_and_keeps_the_good_one(
    fake_control_plane: FakeControlPlane,
    client_of_fake: RunningClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="keyway")
    fake, state = fake_control_plane, client_of_fake.state
    hello = fake.reply("hello").hello
    assert (hello.node_id, hello.applied_version) == ("proxy-under-test", 0)

    good, compiled = _good("n1", 1)
    fake.send(good)
    ack = fake.reply("ack").ack
    assert (ack.nonce, ack.version, ack.hash) == ("n1", 1, compiled.sha256)
    served = state.table
    assert served is not None
    assert served.sha256 == compiled.sha256
    assert served.callers[token_sha256(ACCESS_TOKEN)].key_ids("openai", "gpt-4o") == ("pk_1",)

    nacks: list[pb.Nack] = []
    for i, (make, message_part, fields) in enumerate(BAD_UPDATES, start=2):
        fake.send(make(f"n{i}", i))
        nack = fake.reply("nack").nack
        nacks.append(nack)
        assert (nack.nonce, nack.version) == (f"n{i}", i)
        assert message_part in nack.message
        assert [v.field for v in nack.violations] == fields
        assert state.table is served, "a rejected snapshot replaced the served one"
        assert state.metrics.rejections == i - 1
        assert state.ready
    unknown = nacks[1].violations[0]
    assert unknown.description == "unknown provider key 'pk_missing'"

    # The next good snapshot is applied as usual.
    good, compiled = _good("n9", 9)
    fake.send(good)
    assert fake.reply("ack").ack.version == 9
    assert state.table is not None
    assert state.table.version == 9
    assert state.metrics.rejections == len(BAD_UPDATES)

    said = [str(n) for n in nacks] + [r.getMessage() for r in caplog.records]
    assert any("snapshot 3 rejected" in line for line in said)
    assert_no_secret("\n".join(said), SECRET)


def test_a_proxy_that_cannot_apply_updates_says_so_loudly(
    fake_control_plane: FakeControlPlane,
    client_of_fake: RunningClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Rejections used to be logged at WARNING with /readyz still plainly "ready": now
    an ERROR line, a gauge and a counter, and the reason on /readyz."""
    fake, state = fake_control_plane, client_of_fake.state
    fake.reply("hello")
    good, _ = _good("n1", 1)
    fake.send(good)
    fake.reply("ack")
    assert not state.metrics.updates_failing
    assert state.metrics.stale_since is None

    fake.send(_unknown_key("n2", 2))
    fake.reply("nack")
    assert state.metrics.updates_failing
    assert state.metrics.update_failures == 1
    assert "snapshot 2 rejected" in state.metrics.last_update_error
    assert state.metrics.stale_since is not None
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("snapshot 2 rejected" in r.getMessage() for r in errors)

    app = create_app(ProxyContext(state, AiohttpTransport(), Observer.of(ObserveSettings())))
    ready = asgi_get(app, "/readyz")
    assert ready.status_code == 200  # it still serves its previous snapshot
    assert ready.json()["updates"] == "failing"
    assert "snapshot 2 rejected" in ready.json()["last_error"]
    metrics = asgi_get(app, "/metrics").text
    assert "keyway_snapshot_updates_failing 1" in metrics
    assert "keyway_snapshot_update_failures_total 1" in metrics

    # A good snapshot clears the alarm (the counter keeps the history).
    good, _ = _good("n3", 3)
    fake.send(good)
    fake.reply("ack")
    assert not state.metrics.updates_failing
    assert state.metrics.stale_since is None
    assert asgi_get(app, "/readyz").json()["updates"] == "ok"
    assert "keyway_snapshot_update_failures_total 1" in asgi_get(app, "/metrics").text


def test_an_update_larger_than_the_proxy_accepts_is_an_error_not_a_quiet_loop(
    fake_control_plane: FakeControlPlane,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A snapshot past the receive limit made every stream fail at INFO, forever."""
    monkeypatch.setattr(
        "data_plane.snapshot.targets.CHANNEL_OPTIONS",
        [("grpc.max_receive_message_length", 4096)],
    )
    fake = fake_control_plane
    background = BackgroundLoop("snapshot-client")
    state = SnapshotState()

    async def start() -> asyncio.Task[None]:
        client = SnapshotClient(
            fake.address, "kwdp_any", Identity(node_id="small"), state, backoff=RecordingBackoff()
        )
        return asyncio.create_task(client.run())

    task = background.run(start())
    try:
        fake.reply("hello")
        fake.send(_update("big", 5, b"\x00" * 8192, sha256="0" * 64))
        wait_until(lambda: state.metrics.updates_failing, what="the failure to be noticed")
        assert "RESOURCE_EXHAUSTED" in state.metrics.last_update_error
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert any("cannot get snapshot updates" in m and "RESOURCE_EXHAUSTED" in m for m in errors)
    finally:

        async def stop() -> None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        background.run(stop())
        background.close()


def test_a_current_reply_is_not_acknowledged(
    fake_control_plane: FakeControlPlane, client_of_fake: RunningClient
) -> None:
    fake = fake_control_plane
    fake.reply("hello")
    fake.send(pb.StreamSnapshotsResponse(nonce="c1", current=pb.Current(version=7, hash="x")))
    good, _ = _good("n2", 2)
    fake.send(good)
    # The first reply the proxy sends is the ACK for n2: nothing answered "current".
    assert fake.reply("ack").ack.nonce == "n2"


def test_reconnect_backoff_starts_over_after_a_stream_that_worked(
    fake_control_plane: FakeControlPlane, client_of_fake: RunningClient
) -> None:
    fake, seen = fake_control_plane, client_of_fake.backoff.seen
    fake.reply("hello")
    fake.send(_good("n1", 1)[0])
    fake.reply("ack")
    fake.servicer.refuse = 2
    fake.send(None)  # the stream that worked breaks; the next two attempts fail
    hello = fake.reply("hello").hello
    assert hello.applied_version == 1
    fake.send(_good("n2", 2)[0])
    fake.reply("ack")
    fake.send(None)
    wait_until(lambda: len(seen) >= 4, what="four reconnects")
    # A restart after hours of service must not inherit old failures: each stream that
    # got an answer resets the count, however it ended.
    assert seen[:4] == [0, 1, 2, 0]
    assert client_of_fake.state.metrics.applies == 2


# -- 4. a proxy that stops reading does not hold up the others -------------------------------


def test_a_stuck_proxy_does_not_delay_the_others(control_plane: RunningControlPlane) -> None:
    admin = Admin(control_plane)
    token = data_plane_token(control_plane.data_dir)
    big = "x" * 8000  # snapshots of hundreds of KB fill flow-control windows quickly
    with (
        RawDiscovery(control_plane.address, token, read=False) as stuck,
        proxy_running(proxy_settings(control_plane.address, token, "proxy-fast")) as proxy,
    ):
        stuck.hello("raw-stuck")
        wait_until(lambda: admin.node("raw-stuck"), what="the stuck proxy to connect")
        wait_until(lambda: admin.in_sync("proxy-fast"), what="IN_SYNC")
        for i in range(60):
            admin.provider_key(f"sk-{i:03d}-{big}")

        def stuck_behind(revision: int) -> bool:
            # Two versions behind: a stream that still flowed would have sent the previous
            # one a whole write-and-apply cycle ago.
            node = admin.node("raw-stuck")
            return node is not None and node.sent_version < revision - 1

        # Each further write reaches the fast proxy promptly, until the stuck stream's
        # flow-control windows are full and the control plane's writes to it block.
        revision = 0
        for i in range(60):
            admin.provider_key(f"sk-more-{i:03d}-{big}")
            node = wait_until(lambda: admin.in_sync("proxy-fast"), what=f"write {i} at the proxy")
            revision = node.applied_version
            if stuck_behind(revision):
                break
        assert stuck_behind(revision), "the stuck proxy's stream never filled up"

        blocked_at = admin.node("raw-stuck")
        assert blocked_at is not None
        for i in range(3):
            admin.provider_key(f"sk-after-{i}-{big}")
            node = wait_until(lambda: admin.in_sync("proxy-fast"), what="the fast proxy IN_SYNC")
            assert proxy.version() == node.applied_version == admin.revision()
        still = admin.node("raw-stuck")
        assert still is not None
        assert still.sent_version == blocked_at.sent_version
        assert still.state == blocked_at.state


# -- 6. the control plane goes away and comes back --------------------------------------------


def test_proxy_serves_through_a_control_plane_restart(tmp_path: Path) -> None:
    process = ControlPlaneProcess(
        Settings(listen=f"127.0.0.1:{free_port()}", data_dir=tmp_path / "data")
    )
    try:
        cp = process.start()
        admin = Admin(cp)
        _, access_token = admin.access_key()
        key_a = admin.provider_key(SECRET)
        token = data_plane_token(cp.data_dir)
        with proxy_running(proxy_settings(cp.address, token, "proxy-restart")) as proxy:
            wait_until(lambda: admin.in_sync("proxy-restart"), what="IN_SYNC")
            before = proxy.table()
            applies = proxy.state.metrics.applies
            process.stop()

            wait_until(lambda: not proxy.state.metrics.connected, what="the stream to drop")
            assert proxy.get("/readyz").status_code == 200
            assert proxy.metric("keyway_snapshot_connected") == 0
            assert proxy.table() is before
            assert key_a in before.callers[token_sha256(access_token)].account.keys

            cp = process.start()
            admin = Admin(cp)
            node = wait_until(lambda: admin.in_sync("proxy-restart"), what="the reconnect")
            # Same data gives the same version and hash in the new process: the proxy
            # resumed with "current" and nothing was resent.
            assert node.applied_version == before.version
            assert node.applied_hash == before.sha256
            assert proxy.state.metrics.applies == applies
            assert proxy.table() is before

            key_b = admin.provider_key(SECRET[::-1])
            revision = admin.revision()
            wait_until(lambda: proxy.version() == revision, what="a write after the restart")
            assert key_b in proxy.table().callers[token_sha256(access_token)].account.keys
            assert proxy.metric("keyway_snapshot_connected") == 1
    finally:
        process.stop()


def test_max_snapshot_age_stops_serving_a_snapshot_that_can_no_longer_be_confirmed(
    tmp_path: Path,
) -> None:
    """Without the control plane a proxy cannot learn of revocations: with
    --max-snapshot-age it stops serving once that has lasted too long, and serves again
    as soon as the control plane confirms its snapshot."""
    process = ControlPlaneProcess(
        Settings(listen=f"127.0.0.1:{free_port()}", data_dir=tmp_path / "data")
    )
    try:
        cp = process.start()
        admin = Admin(cp)
        _, access_token = admin.access_key()
        admin.provider_key(SECRET)
        settings = proxy_settings(
            cp.address, data_plane_token(cp.data_dir), "aging", max_snapshot_age=0.5
        )
        headers = {"authorization": f"Bearer {access_token}"}
        with proxy_running(settings) as proxy:
            wait_until(lambda: admin.in_sync("aging"), what="IN_SYNC")
            ready = proxy.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["unconfirmed_seconds"] == 0
            assert proxy.metric("keyway_snapshot_unconfirmed_seconds") == 0
            process.stop()

            wait_until(lambda: proxy.get("/readyz").status_code == 503, what="expiry")
            detail = proxy.get("/readyz").json()
            assert detail["status"] == "snapshot too old"
            assert detail["max_snapshot_age"] == 0.5
            assert detail["unconfirmed_seconds"] > 0.5
            refused = httpx.get(f"{proxy.url}/v1/models", headers=headers, timeout=5)
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "snapshot_expired"
            assert proxy.metric("keyway_snapshot_unconfirmed_seconds") > 0.5

            cp = process.start()
            admin = Admin(cp)
            wait_until(lambda: proxy.get("/readyz").status_code == 200, what="confirmation")
            served = httpx.get(f"{proxy.url}/v1/models", headers=headers, timeout=5)
            assert served.status_code == 200
    finally:
        process.stop()


def test_a_cached_snapshot_counts_its_age_from_when_it_was_written(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    process = ControlPlaneProcess(
        Settings(listen=f"127.0.0.1:{free_port()}", data_dir=tmp_path / "data")
    )
    try:
        cp = process.start()
        admin = Admin(cp)
        admin.access_key()
        token = data_plane_token(cp.data_dir)
        with proxy_running(proxy_settings(cp.address, token, "cached", cache_dir=cache_dir)):
            wait_until(lambda: admin.in_sync("cached"), what="IN_SYNC")
        process.stop()
    finally:
        process.stop()
    hour_ago = time.time() - 3600
    os.utime(cache_dir / "snapshot.bin", (hour_ago, hour_ago))
    lenient = proxy_settings(cp.address, token, "lenient", cache_dir=cache_dir)
    with proxy_running(lenient) as proxy:
        assert proxy.get("/readyz").status_code == 200  # no maximum: serves it
        assert proxy.get("/readyz").json()["unconfirmed_seconds"] >= 3600
    strict = dataclasses.replace(lenient, node_id="strict", max_snapshot_age=600.0)
    with proxy_running(strict) as proxy:
        assert proxy.get("/readyz").status_code == 503


# -- 7. a proxy restarted while the control plane is down serves from its cache --------------


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the sealed payload: decryption must fail
    path.write_bytes(bytes(data))


def test_proxy_restarted_without_control_plane_serves_its_cache(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="keyway")
    cache_dir = tmp_path / "cache"
    process = ControlPlaneProcess(
        Settings(listen=f"127.0.0.1:{free_port()}", data_dir=tmp_path / "data")
    )
    try:
        cp = process.start()
        admin = Admin(cp)
        _, access_token = admin.access_key()
        key_a = admin.provider_key(SECRET)
        token = data_plane_token(cp.data_dir)
        caller_sha = token_sha256(access_token)

        def settings(node_id: str) -> ProxySettings:
            return proxy_settings(cp.address, token, node_id, cache_dir=cache_dir)

        with proxy_running(settings("proxy-1")) as proxy:
            older = wait_until(lambda: admin.in_sync("proxy-1"), what="IN_SYNC").applied_version
            key_b = admin.provider_key(SECRET[::-1])
            newer = wait_until(lambda: admin.in_sync("proxy-1"), what="the second version")
            assert newer.applied_version > older
        assert (cache_dir / "snapshot.bin").exists()
        assert (cache_dir / "snapshot.prev.bin").exists()
        process.stop()

        # Control plane down: the restarted proxy is ready at once, from the cache.
        with proxy_running(settings("proxy-2")) as proxy:
            assert proxy.get("/readyz").status_code == 200
            assert proxy.version() == newer.applied_version
            assert proxy.table().sha256 == newer.applied_hash
            assert set(proxy.table().callers[caller_sha].account.keys) == {key_a, key_b}
            assert proxy.metric("keyway_snapshot_from_cache") == 1
            assert proxy.metric("keyway_snapshot_applied_version") == newer.applied_version
            assert proxy.metric("keyway_snapshot_connected") == 0

        # A corrupt current copy is skipped: the previous one is served.
        _flip_a_byte(cache_dir / "snapshot.bin")
        caplog.clear()
        with proxy_running(settings("proxy-3")) as proxy:
            assert proxy.get("/readyz").status_code == 200
            assert proxy.version() == older
            assert set(proxy.table().callers[caller_sha].account.keys) == {key_a}
            assert proxy.metric("keyway_snapshot_from_cache") == 1
        assert "snapshot.bin: cannot decrypt" in caplog.text

        # Both corrupt: not ready, but up (health, metrics) and not crashed.
        _flip_a_byte(cache_dir / "snapshot.prev.bin")
        with proxy_running(settings("proxy-4")) as proxy:
            assert proxy.get("/readyz").status_code == 503
            assert proxy.get("/healthz").status_code == 200
            assert proxy.metric("keyway_snapshot_from_cache") == 0
            assert proxy.state.table is None

            # ... and it recovers as soon as the control plane is back.
            cp = process.start()
            admin = Admin(cp)
            wait_until(lambda: admin.in_sync("proxy-4"), what="proxy-4 IN_SYNC")
            assert proxy.get("/readyz").status_code == 200
            assert proxy.metric("keyway_snapshot_from_cache") == 0
            # The next restart finds a good copy again.
            wait_until(
                lambda: (
                    [c.version for c in SnapshotCache(cache_dir).candidates()][:1]
                    == [proxy.version()]
                ),
                what="a fresh cache file",
            )
    finally:
        process.stop()


def test_a_rejected_snapshot_is_not_offered_again_after_a_reconnect(tmp_path: Path) -> None:
    process = ControlPlaneProcess(
        Settings(listen=f"127.0.0.1:{free_port()}", data_dir=tmp_path / "data")
    )
    try:
        cp = process.start()
        token = data_plane_token(cp.data_dir)
        with RawDiscovery(cp.address, token) as raw:
            raw.hello("refuser")
            offered = raw.update()
            raw.nack(offered.nonce, offered.update.version, "refused by the test")
            wait_until(
                lambda: Admin(cp).node_in("refuser", dp.DATA_PLANE_STATE_REJECTED),
                what="REJECTED",
            )
        # Same control plane, new stream: the Hello is not answered with it again.
        with RawDiscovery(cp.address, token) as raw:
            raw.hello("refuser")
            raw.assert_silent(0.3)
        # Nor after a restart, which reads the rejection back from the database.
        process.stop()
        cp = process.start()
        with RawDiscovery(cp.address, token) as raw:
            raw.hello("refuser")
            raw.assert_silent(0.3)
            Admin(cp).provider_key(SECRET)
            assert raw.update().update.version > offered.update.version
    finally:
        process.stop()


def test_a_corrupt_cache_copy_never_becomes_the_fallback(tmp_path: Path) -> None:
    cache = SnapshotCache(tmp_path / "cache")
    for version, payload in ((1, b"one"), (2, b"two")):
        cache.save(version, hashlib.sha256(payload).hexdigest(), payload)
    current = tmp_path / "cache" / "snapshot.bin"
    current.write_bytes(current.read_bytes()[:-3] + b"xyz")
    assert [c.version for c in cache.candidates()] == [1]
    # The corrupt copy is replaced, not rotated over the good fallback.
    cache.save(3, hashlib.sha256(b"three").hexdigest(), b"three")
    assert [c.version for c in cache.candidates()] == [3, 1]
