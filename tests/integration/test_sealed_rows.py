"""Provider keys sealed to their owner, and rows from before that re-sealed in place.

Rows written before the associated data bound the account and provider only bound the
row id and version. The control plane re-seals them in the background at start: every
value stays readable throughout, the store revision and the snapshot do not move.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from control_plane.secrets.keyring import FileKeyProvider
from control_plane.secrets.sealing import Sealer, legacy_row_aad
from control_plane.secrets.secret import Secret
from control_plane.server import Settings
from control_plane.snapshots.stream import Revision

from .control_planes import RunningControlPlane
from .proxies import caught_up, store_revision, wait_until
from .rpc_helpers import ANTHROPIC_VALUE, OPENAI_VALUE, OPENAI_VALUE_2, Api, running


def settings(data_dir: Path) -> Settings:
    return Settings(listen="127.0.0.1:0", data_dir=data_dir)


def database(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(data_dir / "keyway.db")


def aad_versions(data_dir: Path) -> dict[str, int]:
    with closing(database(data_dir)) as conn:
        return dict(conn.execute("SELECT id, aad_version FROM provider_keys"))


def downgrade_to_legacy(data_dir: Path, values: dict[str, str]) -> None:
    """Seals every provider key the way releases before the owner binding did."""
    sealer = Sealer(FileKeyProvider(data_dir / "master.keys"))
    with closing(database(data_dir)) as conn, conn:
        rows = conn.execute("SELECT id, secret_version FROM provider_keys").fetchall()
        for key_id, version in rows:
            sealed = sealer.seal(Secret(values[key_id]), legacy_row_aad(key_id, version))
            conn.execute(
                "UPDATE provider_keys SET kek_id = ?, wrapped_key = ?, ciphertext = ?, "
                "aad_version = 1 WHERE id = ?",
                [sealed.kek_id, sealed.wrapped_key, sealed.ciphertext, key_id],
            )


def current_snapshot(cp: RunningControlPlane) -> Revision:
    return caught_up(cp).revision


def test_new_rows_are_sealed_to_their_owner(tmp_path: Path) -> None:
    with running(settings(tmp_path / "data")) as cp:
        key = Api(cp.channel, cp.admin).provider_key("openai", OPENAI_VALUE)
    assert aad_versions(tmp_path / "data") == {key.id: 2}


def test_legacy_rows_are_resealed_at_start_without_changing_anything_served(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    with running(settings(data_dir)) as cp:
        a = Api(cp.channel, cp.admin)
        op = Api(cp.channel, cp.operator)
        _, token_b = op.new_account(op.md)
        b = Api(cp.channel, (("authorization", f"Bearer {token_b}"),))
        keys = {
            a.provider_key("openai", OPENAI_VALUE).id: OPENAI_VALUE,
            a.provider_key("anthropic", ANTHROPIC_VALUE).id: ANTHROPIC_VALUE,
            b.provider_key("openai", OPENAI_VALUE_2).id: OPENAI_VALUE_2,
        }
        before = current_snapshot(cp)
    downgrade_to_legacy(data_dir, keys)
    assert set(aad_versions(data_dir).values()) == {1}

    with running(settings(data_dir)) as cp:
        # Served from the legacy rows straight away: the same snapshot, byte for byte.
        assert current_snapshot(cp) == before
        wait_until(lambda: set(aad_versions(data_dir).values()) == {2}, what="re-seal")
        store = cp.server.store
        assert store_revision(data_dir) == before.version
        for key_id, value in keys.items():
            assert store.reveal(key_id).reveal() == value

    # Nothing left to do at the next start, and the values open under the new binding.
    with running(settings(data_dir)) as cp:
        assert current_snapshot(cp) == before
