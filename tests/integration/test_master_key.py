"""RotateMasterKey: a new key-encryption key, every data key re-wrapped, old keys retired,
values still readable; resumable; and read-only when the keys come from the environment."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2
from keyway.v1 import master_keys_pb2 as mk
from keyway.v1 import provider_keys_pb2 as pk

from control_plane.secrets.keyring import ENV_VAR, FileKeyProvider
from control_plane.server import Settings
from control_plane.store.port import PROVIDER_KEYS

from .control_planes import (
    RunningControlPlane,
    connected,
    start_control_plane,
    stop_control_plane,
)
from .rpc_helpers import ANTHROPIC_VALUE, OPENAI_VALUE, OPENAI_VALUE_2, Api, expect_error, running
from .stores import provider_key_ids

VALUES = (OPENAI_VALUE, OPENAI_VALUE_2, ANTHROPIC_VALUE)


def keyring(data_dir: Path) -> tuple[str, list[str]]:
    """(current KEK id, every KEK id) of the key file."""
    doc = json.loads((data_dir / "master.keys").read_text())
    return str(doc["current"]), list(doc["keys"])


def stored(cp: RunningControlPlane) -> dict[str, tuple[str, str]]:
    """Provider key id -> (KEK id, revealed value), straight from the store."""
    store = cp.server.store
    out = {}
    for key_id in provider_key_ids(cp.data_dir):
        key = store.get(PROVIDER_KEYS, key_id, None)
        out[key_id] = (key.kek_id, store.reveal(key_id).reveal())
    return out


def populate(cp: RunningControlPlane) -> dict[str, str]:
    """Three provider keys in two accounts; returns id -> value."""
    a = Api(cp.channel, cp.admin)
    op = Api(cp.channel, cp.operator)
    _, token_b = op.new_account(op.md)
    b = Api(cp.channel, (("authorization", f"Bearer {token_b}"),))
    keys = [
        a.provider_key("openai", VALUES[0]),
        a.provider_key("anthropic", VALUES[2]),
        b.provider_key("openai", VALUES[1]),
    ]
    return {k.id: v for k, v in zip(keys, (VALUES[0], VALUES[2], VALUES[1]), strict=True)}


def rotate(cp: RunningControlPlane, *, resume_only: bool = False) -> mk.RotateMasterKeyResponse:
    op = Api(cp.channel, cp.operator)
    return op.master_keys.RotateMasterKey(
        mk.RotateMasterKeyRequest(resume_only=resume_only), metadata=op.md
    )


def test_rotation_rewraps_every_data_key_and_retires_the_old_key(
    control_plane: RunningControlPlane,
) -> None:
    values = populate(control_plane)
    first, _ = keyring(control_plane.data_dir)
    assert {kek for kek, _ in stored(control_plane).values()} == {first}
    revision = control_plane.server.store.revision()

    response = rotate(control_plane)
    assert response.key_id != first
    assert response.key_id.startswith("kek_")
    assert response.rewrapped == len(values)
    assert list(response.retired_key_ids) == [first]
    assert keyring(control_plane.data_dir) == (response.key_id, [response.key_id])
    after = stored(control_plane)
    assert after == {key_id: (response.key_id, value) for key_id, value in values.items()}
    # Plaintexts did not change, so neither does the snapshot version.
    assert control_plane.server.store.revision() == revision

    again = rotate(control_plane)
    assert again.key_id not in (first, response.key_id)
    assert again.rewrapped == len(values)
    assert list(again.retired_key_ids) == [response.key_id]

    # New keys are sealed under the current key; nothing is left to do afterwards.
    a = Api(control_plane.channel, control_plane.admin)
    new = a.provider_key("groq", "gsk_" + "Yt5Re3Wq1" * 4)
    assert stored(control_plane)[new.id][0] == again.key_id
    idle = rotate(control_plane, resume_only=True)
    assert (idle.key_id, idle.rewrapped, list(idle.retired_key_ids)) == (again.key_id, 0, [])


def test_resume_only_finishes_an_interrupted_rotation(control_plane_settings: Settings) -> None:
    data_dir = control_plane_settings.data_dir
    with running(control_plane_settings) as cp:
        values = populate(cp)
        old, _ = keyring(data_dir)
    # Interrupted: a new key became current in the keyring, no data key was re-wrapped yet.
    new = FileKeyProvider(data_dir / "master.keys").create()
    with running(control_plane_settings) as cp:
        assert {kek for kek, _ in stored(cp).values()} == {old}
        assert {value for _, value in stored(cp).values()} == set(values.values())
        response = rotate(cp, resume_only=True)
        assert response.key_id == new
        assert response.rewrapped == len(values)
        assert list(response.retired_key_ids) == [old]
        assert stored(cp) == {key_id: (new, value) for key_id, value in values.items()}
    # A restart reads everything with the retired key gone for good.
    assert keyring(data_dir) == (new, [new])
    with running(control_plane_settings) as cp:
        assert stored(cp) == {key_id: (new, value) for key_id, value in values.items()}


def env_keys(*pairs: tuple[str, int]) -> str:
    return ",".join(
        f"{kek_id}:{base64.urlsafe_b64encode(bytes([seed]) * 32).decode()}"
        for kek_id, seed in pairs
    )


def test_environment_keys_are_used_and_rotated_outside_keyway(
    control_plane_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = control_plane_settings.data_dir
    monkeypatch.setenv(ENV_VAR, env_keys(("env-1", 1)))
    with running(control_plane_settings) as cp:
        assert not (data_dir / "master.keys").exists()
        values = populate(cp)
        assert {kek for kek, _ in stored(cp).values()} == {"env-1"}
        revision = cp.server.store.revision()
        error = expect_error(grpc.StatusCode.FAILED_PRECONDITION, lambda: rotate(cp))
        assert error.reason == "KEY_PROVIDER_READ_ONLY"
        assert ENV_VAR in error.message
        assert cp.server.store.revision() == revision
        assert {kek for kek, _ in stored(cp).values()} == {"env-1"}
        idle = rotate(cp, resume_only=True)
        assert (idle.key_id, idle.rewrapped, list(idle.retired_key_ids)) == ("env-1", 0, [])

    # The operator prepends a new key and restarts, then resumes to re-wrap.
    monkeypatch.setenv(ENV_VAR, env_keys(("env-2", 2), ("env-1", 1)))
    with running(control_plane_settings) as cp:
        response = rotate(cp, resume_only=True)
        assert response.key_id == "env-2"
        assert response.rewrapped == len(values)
        assert list(response.retired_key_ids) == []  # the environment is not ours to edit
        assert stored(cp) == {key_id: ("env-2", value) for key_id, value in values.items()}

    # With the old key dropped from the environment, every value is still readable.
    monkeypatch.setenv(ENV_VAR, env_keys(("env-2", 2)))
    with running(control_plane_settings) as cp:
        assert stored(cp) == {key_id: ("env-2", value) for key_id, value in values.items()}
    assert not (data_dir / "master.keys").exists()


class GatedKeys(FileKeyProvider):
    """The key file, except that opening anything sealed by `gated` waits for `release`."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gated = ""
        self.entered = threading.Event()
        self.release = threading.Event()

    def get(self, kek_id: str) -> bytes:
        if kek_id == self.gated:
            self.entered.set()
            assert self.release.wait(timeout=30), "the test never released the gate"
        return super().get(kek_id)


def test_rotation_runs_beside_other_rpcs_and_the_health_check(
    control_plane_settings: Settings,
) -> None:
    data_dir = control_plane_settings.data_dir
    with running(control_plane_settings):
        pass  # creates the data directory and its first master key
    keys = GatedKeys(data_dir / "master.keys")
    server, loop = start_control_plane(control_plane_settings, keys)
    try:
        with connected(server, data_dir) as cp:
            values = populate(cp)
            keys.gated = keyring(data_dir)[0]
            op = Api(cp.channel, cp.operator)
            pending = op.master_keys.RotateMasterKey.future(
                mk.RotateMasterKeyRequest(), metadata=op.md, timeout=60
            )
            assert keys.entered.wait(timeout=30), "the rotation never reached the old key"
            # The rotation is stuck inside the old key, yet everything else is answered.
            check = cp.channel.unary_unary(
                "/grpc.health.v1.Health/Check",
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )
            answer = check(health_pb2.HealthCheckRequest(), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            a = Api(cp.channel, cp.admin)
            listed = a.provider_keys.ListProviderKeys(
                pk.ListProviderKeysRequest(), metadata=a.md, timeout=5
            )
            assert len(listed.provider_keys) == 2
            added = a.provider_key("groq", "gsk_" + "Qa7Ws2Ed4" * 4)
            assert not pending.done()
            keys.release.set()
            response = pending.result(timeout=60)
        assert response.rewrapped == len(values)
        assert list(response.retired_key_ids) == [keys.gated]
        assert list(response.unreadable_key_ids) == []
        with connected(server, data_dir) as cp:
            after = stored(cp)
        assert after[added.id][0] == response.key_id
        assert {kek for kek, _ in after.values()} == {response.key_id}
    finally:
        keys.release.set()
        stop_control_plane(server, loop)


def test_a_row_that_cannot_be_opened_is_reported_and_keeps_its_key(
    control_plane: RunningControlPlane,
) -> None:
    values = populate(control_plane)
    first, _ = keyring(control_plane.data_dir)
    broken = next(iter(values))
    with closing(sqlite3.connect(control_plane.data_dir / "keyway.db")) as conn, conn:
        conn.execute("UPDATE provider_keys SET wrapped_key = zeroblob(60) WHERE id = ?", [broken])
    response = rotate(control_plane)
    assert list(response.unreadable_key_ids) == [broken]
    assert response.rewrapped == len(values) - 1
    # The old key stays: without it the broken row could never be repaired from backup.
    assert list(response.retired_key_ids) == []
    assert set(keyring(control_plane.data_dir)[1]) == {first, response.key_id}
