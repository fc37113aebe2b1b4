"""The control plane's record of proxies: bounded input, pagination, forgetting.

A proxy's Hello fields and NACK text land in status rows, logs and the admin API, so
their size is bounded; the list is paginated; disconnected proxies are forgotten after a
configurable age instead of piling up forever.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from keyway.v1 import data_planes_pb2 as dp
from keyway.v1 import data_planes_pb2_grpc as dp_grpc
from keyway.v1 import discovery_pb2 as pb

from control_plane.server import Settings
from control_plane.snapshots.status import STALE_AFTER, StatusBook

from .control_planes import RunningControlPlane
from .proxies import Admin, RawDiscovery, data_plane_token, wait_until
from .rpc_helpers import expect_error, running
from .stores import open_postgres, open_sqlite


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("node_id", "", "hello.node_id: is required"),
        ("node_id", "n" * 256, "hello.node_id: must be at most 255"),
        ("node_id", "node one", "hello.node_id: must be printable"),
        ("node_id", "node\x1b[2J", "hello.node_id: must be printable"),
        ("pool", "p" * 65, "hello.pool: must be at most 64"),
        ("pool", "eu\nwest", "hello.pool: must be printable"),
        ("build_version", "b" * 129, "hello.build_version: must be at most 128"),
    ],
)
def test_hello_fields_are_bounded_and_named(
    control_plane: RunningControlPlane, field: str, value: str, problem: str
) -> None:
    token = data_plane_token(control_plane.data_dir)
    hello = pb.Hello(node_id="ok-node", pool="p", build_version="b")
    setattr(hello, field, value)
    with RawDiscovery(control_plane.address, token) as raw:
        raw.send(pb.StreamSnapshotsRequest(hello=hello))
        error = raw.error()
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert problem in (error.details() or "")
    assert Admin(control_plane).data_planes_response().data_planes == []


def test_an_oversized_nack_is_recorded_shortened_and_the_snapshot_not_offered_again(
    control_plane: RunningControlPlane,
) -> None:
    admin = Admin(control_plane)
    token = data_plane_token(control_plane.data_dir)
    with RawDiscovery(control_plane.address, token) as raw:
        raw.hello("chatty")
        first = raw.update()
        raw.nack(first.nonce, first.update.version, "refused: " + "x" * 2_000_000)
        node = wait_until(lambda: admin.node_in("chatty", dp.DATA_PLANE_STATE_REJECTED))
        assert len(node.last_rejection.message) == 1024
        assert node.last_rejection.message.startswith("refused: xxx")
    with RawDiscovery(control_plane.address, token) as raw:
        raw.hello("chatty")
        raw.assert_silent(0.3)  # the rejection was recorded: it is not offered again


def test_the_list_is_paginated_for_operators_and_admins(control_plane: RunningControlPlane) -> None:
    token = data_plane_token(control_plane.data_dir)
    stub = dp_grpc.DataPlaneServiceStub(control_plane.channel)
    streams = [RawDiscovery(control_plane.address, token) for _ in range(3)]
    try:
        for i, raw in enumerate(streams):
            raw.hello(f"node-{i}")
            raw.update()
        for md, redacted in ((control_plane.operator, False), (control_plane.admin, True)):
            seen: list[dp.DataPlane] = []
            request = dp.ListDataPlanesRequest(page_size=1)
            while True:
                response = stub.ListDataPlanes(request, metadata=md)
                assert len(response.data_planes) == 1
                seen.extend(response.data_planes)
                if not response.next_page_token:
                    break
                request.page_token = response.next_page_token
            ids = [n.node_id for n in seen]
            assert ids == sorted(ids)
            assert len(set(ids)) == 3
            assert all(n.redacted is redacted for n in seen)
            if not redacted:
                assert ids == ["node-0", "node-1", "node-2"]
                operator_token = request.page_token
        # A page token is tied to the view it was issued for.
        expect_error(
            grpc.StatusCode.INVALID_ARGUMENT,
            lambda: stub.ListDataPlanes(
                dp.ListDataPlanesRequest(page_token=operator_token), metadata=control_plane.admin
            ),
        )
    finally:
        for raw in streams:
            raw.close()


def test_disconnected_proxies_are_forgotten_after_the_configured_age(tmp_path: Path) -> None:
    settings = Settings(
        listen="127.0.0.1:0", data_dir=tmp_path / "data", forget_disconnected_after=0.2
    )
    with running(settings) as cp:
        admin = Admin(cp)
        token = data_plane_token(cp.data_dir)
        with RawDiscovery(cp.address, token) as staying:
            staying.hello("staying")
            staying.update()
            with RawDiscovery(cp.address, token) as leaving:
                leaving.hello("leaving")
                leaving.update()
            wait_until(lambda: admin.node_in("leaving", dp.DATA_PLANE_STATE_DISCONNECTED))
            wait_until(lambda: admin.node("leaving") is None, what="the row to be forgotten")
            # A connected proxy is never forgotten, however long it has been up.
            assert admin.node("staying") is not None


def test_forgetting_uses_last_seen_time_and_reaches_the_mirror(tmp_path: Path) -> None:
    store = open_sqlite(tmp_path)
    now = [1_000_000_000]
    book = StatusBook(store, clock=lambda: now[0], forget_after=60.0)
    for node_id in ("old", "recent", "up"):
        book.connected(node_id, "default", "b", None)
    book.disconnected("old", 1)
    now[0] += 30_000_000
    book.disconnected("recent", 1)
    book.flush()
    now[0] += 40_000_000  # "old" has been gone 70 s, "recent" 40 s, "up" is connected
    assert book.forget_disconnected() == ["old"]
    book.flush()
    assert [n.node_id for n in book.nodes()] == ["recent", "up"]
    mirrored = sorted(n.node_id for n in store.data_planes())
    assert mirrored == ["recent", "up"]
    assert [n.node_id for n in StatusBook(store).nodes()] == ["recent", "up"]
    store.close()


def test_replicas_see_each_others_proxies_and_a_dead_replicas_turn_disconnected(
    tmp_path: Path,
) -> None:
    store = open_postgres(tmp_path)
    now = [1_000_000_000]
    one = StatusBook(store, clock=lambda: now[0], shared=True, replica="cp-1:50051")
    two = StatusBook(store, clock=lambda: now[0], shared=True, replica="cp-2:50051")

    def refreshed(book: StatusBook) -> None:
        book.flush()
        book._remote = {n.node_id: n for n in store.data_planes()}

    try:
        one.connected("edge", "default", "b", None)
        refreshed(one)
        refreshed(two)
        [seen] = two.nodes()
        assert (seen.node_id, seen.connected, seen.control_plane) == ("edge", True, "cp-1:50051")
        # The proxy moves to replica 2; replica 1 notices its stream ended afterwards.
        two.connected("edge", "default", "b", None)
        refreshed(two)
        one.disconnected("edge", 1)
        refreshed(one)
        for book in (one, two):
            [node] = book.nodes()
            assert (node.connected, node.control_plane) == (True, "cp-2:50051")
        # Replica 2 dies: its row stops being refreshed, and reads as disconnected.
        now[0] += int(STALE_AFTER * 1e6) + 1
        refreshed(one)
        [node] = one.nodes()
        assert (node.connected, node.control_plane) == (False, "cp-2:50051")
    finally:
        store.close()
