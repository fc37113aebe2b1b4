from __future__ import annotations

from keyway.v1 import provider_keys_pb2 as pk
from keyway.v1 import provider_keys_pb2_grpc

from .control_planes import RunningControlPlane


def test_create_and_list_provider_key(control_plane: RunningControlPlane) -> None:
    stub = provider_keys_pb2_grpc.ProviderKeyServiceStub(control_plane.channel)
    created = stub.CreateProviderKey(
        pk.CreateProviderKeyRequest(
            provider_key=pk.ProviderKey(provider_id="openai", name="My OpenAI Key"),
            value="sk-proj-abcdefghijklmnopqrstuvwxyz",
        ),
        metadata=control_plane.admin,
    ).provider_key
    assert created.redacted_value == "sk-proj-ab***wxyz"
    listed = stub.ListProviderKeys(pk.ListProviderKeysRequest(), metadata=control_plane.admin)
    assert [k.id for k in listed.provider_keys] == [created.id]
