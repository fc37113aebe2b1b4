"""A provider key's last error is shown while it is news: until the key serves again or is
rotated. The reports themselves come from proxies (ReportUsage), in any order."""

from __future__ import annotations

from keyway.v1 import provider_keys_pb2 as pk
from keyway.v1 import provider_keys_pb2_grpc as pk_grpc

from control_plane.store.records import KeyUsage

from .control_planes import RunningControlPlane

SECOND = 1_000_000  # store times are microseconds


def _create(cp: RunningControlPlane) -> pk.ProviderKey:
    stub = pk_grpc.ProviderKeyServiceStub(cp.channel)
    return stub.CreateProviderKey(
        pk.CreateProviderKeyRequest(
            provider_key=pk.ProviderKey(provider_id="openai", name="k"),
            value="sk-proj-abcdefghijklmnopqrstuvwxyz",
        ),
        metadata=cp.admin,
    ).provider_key


def _key(cp: RunningControlPlane, key_id: str) -> pk.ProviderKey:
    stub = pk_grpc.ProviderKeyServiceStub(cp.channel)
    return stub.GetProviderKey(pk.GetProviderKeyRequest(id=key_id), metadata=cp.admin).provider_key


def test_an_error_is_hidden_once_the_key_served_again_and_shown_when_it_fails_anew(
    control_plane: RunningControlPlane,
) -> None:
    stub = pk_grpc.ProviderKeyServiceStub(control_plane.channel)
    created = _create(control_plane)
    store = control_plane.server.store
    start = created.rotate_time.ToMicroseconds()

    def report(at: int, *, error: bool) -> None:
        if error:
            store.record_usage(
                [KeyUsage(created.id, at, 401, "Provider returns an auth error", at, None)], []
            )
        else:
            store.record_usage([KeyUsage(created.id, at, 0, "", None, at)], [])

    report(start + 1 * SECOND, error=True)
    failed = _key(control_plane, created.id)
    assert failed.last_error.status == 401
    assert not failed.HasField("last_success_time")

    report(start + 2 * SECOND, error=False)
    recovered = _key(control_plane, created.id)
    assert not recovered.HasField("last_error")
    assert recovered.last_success_time.ToMicroseconds() == start + 2 * SECOND
    assert recovered.last_used_time.ToMicroseconds() == start + 2 * SECOND

    # A late report of an older success from another proxy changes nothing.
    report(start + 3 * SECOND, error=True)
    report(start + 2 * SECOND - 1, error=False)
    again = _key(control_plane, created.id)
    assert again.last_error.time.ToMicroseconds() == start + 3 * SECOND
    listed = stub.ListProviderKeys(pk.ListProviderKeysRequest(), metadata=control_plane.admin)
    assert [k.last_error.status for k in listed.provider_keys] == [401]


def test_a_rotation_retires_the_old_values_error(control_plane: RunningControlPlane) -> None:
    stub = pk_grpc.ProviderKeyServiceStub(control_plane.channel)
    created = _create(control_plane)
    at = created.rotate_time.ToMicroseconds() + 1  # after the creation, before the rotation
    control_plane.server.store.record_usage([KeyUsage(created.id, at, 401, "auth", at, None)], [])
    assert _key(control_plane, created.id).last_error.status == 401
    rotated = stub.RotateProviderKey(
        pk.RotateProviderKeyRequest(id=created.id, value="sk-proj-ZYXWVUTSRQPONMLKJIHGFEDCBA"),
        metadata=control_plane.admin,
    ).provider_key
    assert rotated.rotate_time.ToMicroseconds() > at
    assert not rotated.HasField("last_error")
    assert not _key(control_plane, created.id).HasField("last_error")
