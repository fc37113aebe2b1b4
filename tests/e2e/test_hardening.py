"""Processes that hold provider keys in memory never write a core dump."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .stack import HTTP_ANY, Process

ROOT = Path(__file__).resolve().parents[2]


def core_limit(pid: int) -> str:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            return " ".join(line.split()[4:6])
    raise AssertionError("no core limit in /proc/<pid>/limits")


@pytest.mark.parametrize("command", ["control-plane", "up", "proxy"])
def test_the_long_running_commands_disable_core_dumps(command: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    token = tmp_path / "dp.token"
    token.write_text("kwdp_" + "a" * 40)
    args = {
        "control-plane": ["--listen", "127.0.0.1:0", "--data-dir", str(data_dir), *HTTP_ANY],
        "up": [
            *("--listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0"),
            *("--data-dir", str(data_dir), *HTTP_ANY),
        ],
        "proxy": ["--listen", "127.0.0.1:0", "--data-plane-token-file", str(token)],
    }[command]
    process = Process(command, [command, *args])
    try:
        process.wait_listening()
        assert core_limit(process.proc.pid) == "0 0"
    finally:
        process.stop()


def test_the_process_is_not_dumpable() -> None:
    probe = textwrap.dedent(
        """
        import ctypes, ctypes.util
        from data_plane.shared.hardening import disable_core_dumps
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        before = libc.prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
        disable_core_dumps()
        print(before, libc.prctl(3, 0, 0, 0, 0))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["1", "0"]
