"""Admin RPCs reach the store on its executor: a busy database never stalls the event loop."""

from __future__ import annotations

import threading

import grpc
from grpc_health.v1 import health_pb2
from keyway.v1 import access_keys_pb2 as ak
from keyway.v1 import access_keys_pb2_grpc as ak_grpc

from .control_planes import RunningControlPlane


def _health(channel: grpc.Channel) -> health_pb2.HealthCheckResponse:
    check = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    response: health_pb2.HealthCheckResponse = check(health_pb2.HealthCheckRequest(), timeout=30)
    return response


def test_the_loop_serves_while_a_store_call_waits(control_plane: RunningControlPlane) -> None:
    access_keys = ak_grpc.AccessKeyServiceStub(control_plane.channel)
    # A long transaction elsewhere holds the database: store calls queue behind it.
    with control_plane.server.store.transaction():
        pending = access_keys.CreateAccessKey.future(
            ak.CreateAccessKeyRequest(access_key=ak.AccessKey(name="queued")),
            metadata=control_plane.admin,
            timeout=60,
        )
        # The loop is free meanwhile: what it serves from memory still answers.
        assert _health(control_plane.channel).status == health_pb2.HealthCheckResponse.SERVING
        assert not pending.done()
    created = pending.result(timeout=60)
    assert created.access_key.name == "queued"
    assert created.token.startswith("kwak_")


def test_writes_commit_on_the_store_thread(control_plane: RunningControlPlane) -> None:
    threads: list[str] = []
    control_plane.server.store.on_commit(lambda _: threads.append(threading.current_thread().name))
    access_keys = ak_grpc.AccessKeyServiceStub(control_plane.channel)
    for name in ("a", "b"):
        access_keys.CreateAccessKey(
            ak.CreateAccessKeyRequest(access_key=ak.AccessKey(name=name)),
            metadata=control_plane.admin,
        )
    assert len(threads) == 2
    assert all(name.startswith("keyway-store") for name in threads), threads
