"""Starting the control plane: a lost master key stops it cold, and first start is race-free.

A control plane that cannot open its secrets must not look healthy (it would report
SERVING and never publish), and must not mint a fresh key beside the lost one. Several
processes starting on one empty data directory must agree on one operator credential
and one default account.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path

import pytest

from control_plane.secrets.keyring import ENV_VAR
from control_plane.server import ControlPlane, Settings
from data_plane.shared.startup import StartupError

from .proxies import wait_until
from .rpc_helpers import OPENAI_VALUE, Api, running

ROOT = Path(__file__).resolve().parents[2]


def settings(data_dir: Path) -> Settings:
    return Settings(listen="127.0.0.1:0", data_dir=data_dir)


def with_one_key(data_dir: Path) -> str:
    """A data directory holding one sealed provider key; returns the master key id."""
    with running(settings(data_dir)) as cp:
        Api(cp.channel, cp.admin).provider_key("openai", OPENAI_VALUE)
    return str(json.loads((data_dir / "master.keys").read_text())["current"])


def test_a_lost_key_file_stops_the_start_and_is_not_replaced(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    kek_id = with_one_key(data_dir)
    (data_dir / "master.keys").unlink()
    with pytest.raises(StartupError) as info:
        ControlPlane(settings(data_dir))
    message = str(info.value)
    assert kek_id in message
    assert "master.keys" in message
    assert ENV_VAR in message
    assert not (data_dir / "master.keys").exists(), "no fresh key in place of the lost one"


def test_a_keyring_without_the_sealing_key_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    kek_id = with_one_key(data_dir)
    other = base64.urlsafe_b64encode(b"\x07" * 32).decode()
    monkeypatch.setenv(ENV_VAR, f"kek_other:{other}")
    with pytest.raises(StartupError, match=f"{kek_id}.*{ENV_VAR} does not have"):
        ControlPlane(settings(data_dir))


def test_the_right_id_with_the_wrong_key_material_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    kek_id = with_one_key(data_dir)
    wrong = base64.urlsafe_b64encode(b"\x09" * 32).decode()
    monkeypatch.setenv(ENV_VAR, f"{kek_id}:{wrong}")
    with pytest.raises(StartupError, match=f"{kek_id}.*do not open"):
        ControlPlane(settings(data_dir))


def test_the_command_names_the_missing_key_and_exits_without_a_traceback(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    kek_id = with_one_key(data_dir)
    (data_dir / "master.keys").unlink()
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "control_plane.cli.main",
            "control-plane",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "off",
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert completed.returncode == 1
    assert completed.stderr.startswith("keyway: error: ")
    assert kek_id in completed.stderr
    assert "Traceback" not in completed.stderr
    assert "listening" not in completed.stdout


def test_a_fresh_data_directory_still_gets_its_first_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running(settings(data_dir)):
        pass
    assert (data_dir / "master.keys").exists()


# -- first start by several processes at once ------------------------------------------------

_STARTER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from control_plane.server import ControlPlane, Settings
    go = Path(sys.argv[2])
    Path(sys.argv[3]).touch()  # imported and ready
    while not go.exists():  # every process waits here, then all start at once
        time.sleep(0.001)
    server = ControlPlane(Settings(listen="127.0.0.1:0", data_dir=Path(sys.argv[1])))
    server.store.close()
    print("started")
    """
)


def test_processes_starting_together_create_one_operator_and_one_account(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(4)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _STARTER, str(data_dir), str(go), str(flag)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "proto")])},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flag in ready
    ]
    wait_until(lambda: all(flag.exists() for flag in ready), timeout=60, what="imports")
    go.touch()
    outputs = [p.communicate(timeout=60) for p in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
        assert out.strip().endswith("started")
    assert sum("wrote the operator token" in out for out, _ in outputs) == 1
    with closing(sqlite3.connect(data_dir / "keyway.db")) as conn:
        kinds = dict(conn.execute("SELECT kind, count(*) FROM credentials GROUP BY kind"))
        accounts = conn.execute("SELECT count(*) FROM accounts").fetchone()[0]
    assert kinds == {"operator": 1, "admin": 1, "data_plane": 1}
    assert accounts == 1
    # The token files hold the credentials that exist.
    with running(settings(data_dir)) as cp:
        Api(cp.channel, cp.admin).provider_key("openai", OPENAI_VALUE)
        Api(cp.channel, cp.operator).new_account(cp.operator)
