"""The snapshot protocol end to end: real control plane, real proxies, hand-driven streams."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from keyway.v1 import accounts_pb2 as acc
from keyway.v1 import accounts_pb2_grpc as acc_grpc
from keyway.v1 import data_planes_pb2 as dp
from keyway.v1 import discovery_pb2 as pb

from control_plane.domain import tokens
from control_plane.secrets.keyring import load_key_provider
from control_plane.secrets.sealing import Sealer
from control_plane.server import Settings
from control_plane.snapshots.compiler import StoreState, compile_snapshot, serialise
from control_plane.snapshots.publisher import build
from control_plane.store import postgres
from control_plane.store.port import SnapshotSource
from control_plane.store.relational.snapshot_reader import SnapshotReader
from control_plane.store.sqlite.database import reader_session
from data_plane.routing.apply import Applied, apply
from data_plane.snapshot.cache import SnapshotCache

from .control_planes import RunningControlPlane
from .proxies import (
    Admin,
    RawDiscovery,
    assert_no_secret,
    caught_up,
    committed_revision,
    control_plane_at,
    data_plane_token,
    full_state,
    proxy_running,
    proxy_settings,
    token_sha256,
    wait_until,
)
from .rpc_helpers import with_last_char_changed
from .stores import BACKENDS, settings_for

# Distinctive values: a 12-character window of one cannot turn up anywhere by accident.
SECRET_A = "sk-proj-Lk3Wq9Zr7Tx1Vb5Nm8Hc2Jf6Gd0Sa4Pe"
SECRET_B = "sk-ant-api03-Yt6Rv2Mx9Qw4Zk8Ub1Nh5Lc3Fj7Gd0"
SECRET_C = "sk-proj-Pe4Sa0Gd6Jf2Hc8Nm5Vb1Tx7Zr9Wq3Lk"


@pytest.fixture(params=BACKENDS)
def control_plane_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The snapshot suite runs on SQLite and on PostgreSQL."""
    return settings_for(str(request.param), tmp_path)


latest = caught_up


# -- 1. a proxy follows the control plane ----------------------------------------------------


def test_proxy_gets_ready_is_in_sync_and_sees_new_keys(control_plane: RunningControlPlane) -> None:
    admin = Admin(control_plane)
    _, access_token = admin.access_key()
    settings = proxy_settings(
        control_plane.address, data_plane_token(control_plane.data_dir), "proxy-a"
    )
    with proxy_running(settings) as proxy:
        wait_until(lambda: proxy.get("/readyz").status_code == 200, what="/readyz")
        node = wait_until(lambda: admin.in_sync("proxy-a"), what="proxy-a IN_SYNC")
        published = latest(control_plane)
        assert node.applied_version == node.latest_version == published.compiled.version
        assert node.applied_hash == published.compiled.sha256 == proxy.table().sha256
        assert node.sent_version == published.compiled.version
        assert node.pool == "default"
        assert not node.HasField("last_rejection")
        assert proxy.metric("keyway_snapshot_connected") == 1

        key_id = admin.provider_key(SECRET_A)
        revision = admin.revision()

        def key_served() -> bool:
            table = proxy.table()
            caller = table.callers.get(token_sha256(access_token))
            return (
                table.version == revision
                and caller is not None
                and key_id in caller.account.keys
                and caller.key_ids("openai", "gpt-4o") == (key_id,)
            )

        wait_until(key_served, what="the new key in the proxy's routing table")
        assert proxy.table().callers[token_sha256(access_token)].account.keys[key_id].value == (
            SECRET_A
        )
        node = wait_until(lambda: admin.in_sync("proxy-a"), what="IN_SYNC on the new version")
        assert node.applied_version == revision
        assert proxy.metric("keyway_snapshot_applied_version") == revision
        assert proxy.get("/readyz").status_code == 200


def test_a_stopped_proxy_is_listed_disconnected(control_plane: RunningControlPlane) -> None:
    admin = Admin(control_plane)
    settings = proxy_settings(
        control_plane.address, data_plane_token(control_plane.data_dir), "proxy-gone"
    )
    with proxy_running(settings):
        wait_until(lambda: admin.in_sync("proxy-gone"), what="IN_SYNC")
    node = wait_until(
        lambda: admin.node_in("proxy-gone", dp.DATA_PLANE_STATE_DISCONNECTED),
        what="DISCONNECTED after the proxy stopped",
    )
    assert node.applied_version == latest(control_plane).compiled.version


# -- 2. resume without resend ----------------------------------------------------------------


def test_hello_with_the_current_version_is_answered_current(
    control_plane: RunningControlPlane,
) -> None:
    admin = Admin(control_plane)
    admin.provider_key(SECRET_A)
    published = latest(control_plane)
    token = data_plane_token(control_plane.data_dir)
    with RawDiscovery(control_plane.address, token) as raw:
        raw.hello("raw-current", published.compiled.version, published.compiled.sha256)
        first = raw.receive()
        assert first.WhichOneof("message") == "current"
        assert not first.HasField("update")
        assert first.current.version == published.compiled.version
        assert first.current.hash == published.compiled.sha256
        node = wait_until(lambda: admin.in_sync("raw-current"), what="IN_SYNC from the Hello")
        assert node.applied_hash == published.compiled.sha256
        raw.assert_silent(0.2)

        # The stream stays live: the next write arrives as an update.
        admin.provider_key(SECRET_B)
        update = raw.update()
        assert update.update.version == admin.revision() > published.compiled.version


@pytest.mark.parametrize(
    ("version_delta", "same_hash"),
    [(0, False), (-1, True), (-1, False)],
    ids=["same-version-other-hash", "older-version", "older-version-other-hash"],
)
def test_hello_that_is_not_current_gets_the_full_snapshot(
    control_plane: RunningControlPlane, version_delta: int, same_hash: bool
) -> None:
    Admin(control_plane).provider_key(SECRET_A)
    published = latest(control_plane)
    sha = published.compiled.sha256 if same_hash else "0" * 64
    token = data_plane_token(control_plane.data_dir)
    with RawDiscovery(control_plane.address, token) as raw:
        raw.hello("raw-stale", published.compiled.version + version_delta, sha)
        response = raw.update()
        assert response.update.version == published.compiled.version
        assert response.update.hash == published.compiled.sha256
        assert response.update.snapshot == published.compiled.payload
        assert response.update.generate_time.ToMicroseconds() == published.generate_time_us


def test_first_message_must_be_a_hello(control_plane: RunningControlPlane) -> None:
    token = data_plane_token(control_plane.data_dir)
    with RawDiscovery(control_plane.address, token) as raw:
        raw.send(pb.StreamSnapshotsRequest(ack=pb.Ack(nonce="1", version=1, hash="x")))
        assert raw.error().code() == grpc.StatusCode.INVALID_ARGUMENT
    with RawDiscovery(control_plane.address, token) as raw:
        raw.hello("")
        assert raw.error().code() == grpc.StatusCode.INVALID_ARGUMENT


# -- 3a. a NACK is recorded, the rejected version is not resent ------------------------------


def test_nack_is_recorded_and_the_version_never_resent(
    control_plane: RunningControlPlane,
) -> None:
    admin = Admin(control_plane)
    token = data_plane_token(control_plane.data_dir)
    with RawDiscovery(control_plane.address, token) as raw:
        raw.hello("raw-nack")
        first = raw.update()
        rejected = first.update.version
        raw.nack(first.nonce, rejected, "accounts[0].id: refused by the test")
        node = wait_until(
            lambda: admin.node_in("raw-nack", dp.DATA_PLANE_STATE_REJECTED),
            what="REJECTED",
        )
        assert node.last_rejection.version == rejected
        assert node.last_rejection.message == "accounts[0].id: refused by the test"
        assert node.last_rejection.time.seconds > 0
        assert node.applied_version == 0
        assert node.sent_version == rejected
        raw.assert_silent(0.3)

        admin.provider_key(SECRET_A)
        second = raw.update()
        assert second.update.version == admin.revision() > rejected
        assert second.nonce != first.nonce
        # A late reply to the superseded nonce is ignored, in either direction.
        raw.nack(first.nonce, rejected, "late reply")
        raw.send(
            pb.StreamSnapshotsRequest(
                ack=pb.Ack(nonce=first.nonce, version=rejected, hash=first.update.hash)
            )
        )
        raw.ack(second)
        node = wait_until(lambda: admin.in_sync("raw-nack"), what="IN_SYNC after the ACK")
        assert node.applied_version == second.update.version
        assert node.applied_hash == second.update.hash
        assert node.last_rejection.message == "accounts[0].id: refused by the test"


def test_ack_with_a_wrong_nonce_is_ignored(control_plane: RunningControlPlane) -> None:
    admin = Admin(control_plane)
    token = data_plane_token(control_plane.data_dir)
    with RawDiscovery(control_plane.address, token) as raw:
        raw.hello("raw-nonce")
        first = raw.update()
        update = first.update
        raw.send(
            pb.StreamSnapshotsRequest(
                ack=pb.Ack(nonce=first.nonce + "0", version=update.version, hash=update.hash)
            )
        )
        # A NACK with the right nonce, sent after, proves the wrong ACK was processed first.
        raw.nack(first.nonce, update.version, "refused")
        node = wait_until(
            lambda: admin.node_in("raw-nonce", dp.DATA_PLANE_STATE_REJECTED),
            what="REJECTED",
        )
        assert node.applied_version == 0


# -- 5. bursts are coalesced -----------------------------------------------------------------


def test_a_burst_of_writes_is_published_as_a_handful_of_snapshots(tmp_path: Path) -> None:
    # A quiet window long enough that a slow CI machine still counts as "quick succession".
    cp_settings = Settings(
        listen="127.0.0.1:0", data_dir=tmp_path / "data", publish_quiet=0.1, publish_cap=0.5
    )
    with control_plane_at(cp_settings) as control_plane:
        admin = Admin(control_plane)
        _, access_token = admin.access_key()
        publisher = control_plane.server.publisher
        settings = proxy_settings(
            control_plane.address, data_plane_token(control_plane.data_dir), "proxy-burst"
        )
        with proxy_running(settings) as proxy:
            wait_until(lambda: admin.in_sync("proxy-burst"), what="IN_SYNC")
            published_before = publisher.published_count
            applies_before = proxy.state.metrics.applies
            key_ids = [admin.provider_key(f"sk-burst-{i:03d}-{SECRET_A}") for i in range(100)]
            revision = admin.revision()
            # IN_SYNC means on the store's revision, the state after the last write.
            node = wait_until(lambda: admin.in_sync("proxy-burst"), what="the final version")
            assert node.applied_version == revision
            published = publisher.published_count - published_before
            assert 1 <= published <= 10, f"100 writes gave {published} snapshots"
            assert proxy.state.metrics.applies - applies_before <= published
            caller = proxy.table().callers[token_sha256(access_token)]
            assert caller.account.default_keys["openai"] == tuple(key_ids)
            assert node.applied_hash == proxy.table().sha256


# -- 8. authentication -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "which", ["unknown-data-plane", "malformed", "admin", "operator", "access-key"]
)
def test_discovery_refuses_anything_but_a_data_plane_token(
    control_plane: RunningControlPlane, which: str
) -> None:
    admin = Admin(control_plane)
    token = {
        "unknown-data-plane": tokens.mint(tokens.TokenKind.DATA_PLANE),
        "malformed": with_last_char_changed(data_plane_token(control_plane.data_dir)),
        "admin": control_plane.admin_token,
        "operator": control_plane.operator_token,
        "access-key": admin.access_key()[1],
    }[which]
    with RawDiscovery(control_plane.address, token) as raw:
        raw.hello(f"raw-{which}")
        error = raw.error()
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert admin.node(f"raw-{which}") is None


def test_deleting_a_data_plane_credential_closes_its_streams(
    control_plane: RunningControlPlane,
) -> None:
    admin = Admin(control_plane)
    created = admin.data_plane.CreateDataPlaneCredential(
        dp.CreateDataPlaneCredentialRequest(credential=dp.DataPlaneCredential(name="edge")),
        metadata=control_plane.operator,
    )
    shared = data_plane_token(control_plane.data_dir)
    with (
        RawDiscovery(control_plane.address, created.token) as doomed,
        RawDiscovery(control_plane.address, shared) as other,
    ):
        doomed.hello("raw-doomed")
        other.hello("raw-other")
        doomed.update()
        other.update()
        admin.data_plane.DeleteDataPlaneCredential(
            dp.DeleteDataPlaneCredentialRequest(id=created.credential.id),
            metadata=control_plane.operator,
        )
        error = doomed.error()
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "revoked" in (error.details() or "")
        wait_until(
            lambda: admin.node_in("raw-doomed", dp.DATA_PLANE_STATE_DISCONNECTED),
            what="the revoked proxy DISCONNECTED",
        )
        # The other credential's stream is untouched and still receives updates.
        admin.provider_key(SECRET_A)
        other.update_to(admin.revision())
    with RawDiscovery(control_plane.address, created.token) as again:
        again.hello("raw-doomed")
        assert again.error().code() == grpc.StatusCode.UNAUTHENTICATED


# -- 10. secrets never leak ------------------------------------------------------------------


def test_provider_key_values_never_leak(
    control_plane: RunningControlPlane, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="keyway")
    admin = Admin(control_plane)
    key_a = admin.provider_key(SECRET_A)
    admin.provider_key(SECRET_B, provider_id="anthropic")
    config_id = admin.configuration("openai", key_a)
    _, access_token = admin.access_key(config_id)
    cache_dir = tmp_path / "cache"
    settings = proxy_settings(
        control_plane.address,
        data_plane_token(control_plane.data_dir),
        "proxy-leak",
        cache_dir=cache_dir,
    )
    with proxy_running(settings) as proxy:
        wait_until(lambda: admin.in_sync("proxy-leak"), what="IN_SYNC")
        admin.rotate(key_a, SECRET_C)
        revision = admin.revision()
        wait_until(lambda: proxy.version() == revision, what="the rotation at the proxy")
        wait_until(lambda: admin.in_sync("proxy-leak"), what="the ACK (written after the cache)")
        table = proxy.table()
        caller = table.callers[token_sha256(access_token)]
        assert caller.account.keys[key_a].value == SECRET_C  # the values did travel
        reprs = [
            repr(table),
            repr(caller),
            repr(caller.account.keys[key_a]),
            repr(proxy.state),
            repr(control_plane.server.publisher.latest),
            repr(list(SnapshotCache(cache_dir).candidates())),
        ]
        published = latest(control_plane)
        applied = apply(
            published.compiled.version, published.compiled.sha256, published.compiled.payload
        )
        assert isinstance(applied, Applied)
        reprs += [repr(applied), repr(published.compiled), str(published)]
        metrics = proxy.get("/metrics").text

        # A raw proxy NACKs, as a real one would after failing validation: the control
        # plane's record of it (and ListDataPlanes) carries only what the proxy said.
        with RawDiscovery(control_plane.address, data_plane_token(control_plane.data_dir)) as raw:
            raw.hello("raw-leak")
            update = raw.update()
            assert SECRET_C.encode() in update.update.snapshot  # values travel in the stream
            raw.nack(update.nonce, update.update.version, "refused")
            wait_until(
                lambda: admin.node_in("raw-leak", dp.DATA_PLANE_STATE_REJECTED),
                what="the rejection",
            )
    listing = admin.data_planes_response().SerializeToString()
    cache_bytes = b"".join(p.read_bytes() for p in sorted(cache_dir.iterdir()))
    assert (cache_dir / "snapshot.bin").exists()
    assert (cache_dir / "snapshot.prev.bin").exists()

    everything = "\n".join(
        [
            *reprs,
            metrics,
            caplog.text,
            *(r.getMessage() for r in caplog.records),
            *(str(r.args) for r in caplog.records),
        ]
    )
    assert "published snapshot" in caplog.text  # the capture did see the control plane
    assert "applied snapshot" in caplog.text  # ... and the proxy
    assert_no_secret(everything, SECRET_A, SECRET_B, SECRET_C)
    assert_no_secret(listing, SECRET_A, SECRET_B, SECRET_C)
    assert_no_secret(cache_bytes, SECRET_A, SECRET_B, SECRET_C)


# -- 11. the compiler is deterministic -------------------------------------------------------


@pytest.fixture
def reader(control_plane: RunningControlPlane) -> Iterator[SnapshotSource]:
    """A snapshot reader of our own on the control plane's database."""
    settings = control_plane.server.settings
    key_path = settings.master_key_file or control_plane.data_dir / "master.keys"
    sealer = Sealer(load_key_provider(control_plane.data_dir, os.environ, key_path))
    if settings.database_url:
        store = postgres.open_store(settings.database_url, sealer)
        try:
            yield store.snapshots
        finally:
            store.close()
        return
    state_reader = SnapshotReader(reader_session(control_plane.data_dir / "keyway.db"), sealer)
    try:
        yield state_reader
    finally:
        state_reader.close()


def _reordered(state: StoreState) -> StoreState:
    """The same data as the store might return it in another order."""
    return dataclasses.replace(
        state,
        accounts=tuple(
            dataclasses.replace(
                a,
                custom_providers=a.custom_providers[::-1],
                configurations=a.configurations[::-1],
                access_keys=a.access_keys[::-1],
            )
            for a in state.accounts[::-1]
        ),
    )


def test_compiling_the_same_store_gives_the_same_bytes_and_hash(
    control_plane: RunningControlPlane, reader: SnapshotSource
) -> None:
    admin = Admin(control_plane)
    key_a = admin.provider_key(SECRET_A)
    key_b = admin.provider_key(SECRET_C)
    admin.provider_key(SECRET_B, provider_id="anthropic")
    for config in (
        admin.configuration("openai", key_b, key_a),
        admin.configuration("openai", key_a),
    ):
        admin.access_key(config)
    admin.access_key()
    acc_grpc.AccountServiceStub(control_plane.channel).CreateAccount(
        acc.CreateAccountRequest(account=acc.Account(display_name="Second")),
        metadata=control_plane.operator,
    )

    published = latest(control_plane)
    first, second = build(full_state(reader)), build(full_state(reader))
    assert first.payload == second.payload
    assert first.sha256 == second.sha256
    assert first.version == committed_revision(control_plane) == reader.revision()
    # What the running control plane published is the same snapshot.
    assert (published.compiled.version, published.compiled.sha256) == (
        first.version,
        first.sha256,
    )
    assert published.compiled.payload == first.payload

    state = full_state(reader)
    assert len(state.accounts) == 2
    assert sum(len(a.configurations) for a in state.accounts) == 2
    assert sum(len(a.access_keys) for a in state.accounts) == 3
    shuffled = serialise(compile_snapshot(_reordered(state)))
    assert shuffled.payload == first.payload
    assert shuffled.sha256 == first.sha256


def test_every_write_moves_the_version_by_the_store_revision(
    control_plane: RunningControlPlane,
) -> None:
    admin = Admin(control_plane)
    before = latest(control_plane).compiled
    admin.provider_key(SECRET_A)
    after = latest(control_plane).compiled
    assert after.version == committed_revision(control_plane) == before.version + 1
    assert after.sha256 != before.sha256


def test_a_new_control_plane_on_the_same_data_publishes_the_same_snapshot(
    control_plane: RunningControlPlane, tmp_path: Path
) -> None:
    admin = Admin(control_plane)
    admin.provider_key(SECRET_A)
    admin.access_key(admin.configuration("openai", admin.provider_key(SECRET_C)))
    published = latest(control_plane).compiled
    # A second process on the same database (read-only use: it never writes).
    settings = dataclasses.replace(control_plane.server.settings, listen="127.0.0.1:0")
    with control_plane_at(settings) as second:
        other = latest(second).compiled
    assert (other.version, other.sha256, other.payload) == (
        published.version,
        published.sha256,
        published.payload,
    )
