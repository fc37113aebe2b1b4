"""RotateMasterKey: a new key-encryption key, every data key re-wrapped, old keys retired,
values still readable; resumable; and read-only when the keys come from the environment."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import grpc
import pytest
from keyway.v1 import master_keys_pb2 as mk

from control_plane.secrets.keyring import ENV_VAR, FileKeyProvider
from control_plane.server import Settings
from control_plane.store.store import PROVIDER_KEYS

from .conftest import RunningControlPlane
from .rpc_helpers import ANTHROPIC_VALUE, OPENAI_VALUE, OPENAI_VALUE_2, Api, expect_error, running

VALUES = (OPENAI_VALUE, OPENAI_VALUE_2, ANTHROPIC_VALUE)


def keyring(data_dir: Path) -> tuple[str, list[str]]:
    """(current KEK id, every KEK id) of the key file."""
    doc = json.loads((data_dir / "master.keys").read_text())
    return str(doc["current"]), list(doc["keys"])


def stored(cp: RunningControlPlane) -> dict[str, tuple[str, str]]:
    """Provider key id -> (KEK id, revealed value), straight from the store."""
    store = cp.server.store
    out = {}
    for (key_id,) in store.db.execute("SELECT id FROM provider_keys ORDER BY seq").fetchall():
        row = store.get(PROVIDER_KEYS, key_id, None)
        out[key_id] = (row["kek_id"], store.reveal(row).reveal())
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
