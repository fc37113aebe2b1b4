"""The commands the README tells a new user to run: `make run` (keyway up) and `make demo`."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from control_plane.cli.main import _build_parser, _proxy_options

from .stack import KEYWAY, Process, wait_until


@contextmanager
def running(args: list[str]) -> Iterator[list[str]]:
    """A `keyway` command; yields its output lines as they arrive."""
    process = Process(args[0], args)
    try:
        yield process.lines
    finally:
        process.stop()


def listening(lines: list[str], what: str) -> str:
    for line in lines:
        if match := re.match(rf"keyway: {what} listening on (?:http://)?(\S+)", line):
            return match.group(1)
    return ""


def test_keyway_up_runs_a_control_plane_and_a_proxy_in_sync(tmp_path: Path) -> None:
    data_dir = tmp_path / "keyway"
    args = ["up", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0"]
    with running([*args, "--proxy-listen", "127.0.0.1:0"]) as lines:
        wait_until(lambda: bool(listening(lines, "proxy")), timeout=20, what="keyway up")
        proxy, control_plane = listening(lines, "proxy"), listening(lines, "control plane")
        wait_until(
            lambda: httpx.get(f"http://{proxy}/readyz").status_code == 200, what="the proxy ready"
        )
        token_file = data_dir / "admin.token"
        assert token_file.stat().st_mode & 0o777 == 0o600

        def data_planes() -> list[dict[str, object]]:
            command = [KEYWAY, "admin", "--addr", control_plane, "--token-file", str(token_file)]
            out = subprocess.run(
                [*command, "data-planes", "list", "--json"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            listed: list[dict[str, object]] = json.loads(out)
            return listed

        wait_until(lambda: [p["state"] for p in data_planes()] == ["IN_SYNC"], what="IN_SYNC")


def test_keyway_demo_shows_failover_from_the_rate_limited_key() -> None:
    with running(["demo", "--proxy-listen", "127.0.0.1:0"]) as lines:
        wait_until(lambda: any("Press Ctrl-C" in line for line in lines), timeout=30, what="demo")
        served = [line for line in lines if line.startswith("request ")]
    assert [re.sub(r"pk_\w+", "KEY", line) for line in served] == [
        "request 1: 200, served by key KEY after 2 attempt(s)",
        "request 2: 200, served by key KEY after 1 attempt(s)",
    ]
    # Both requests were served by the same (backup) key.
    assert len({re.search(r"pk_\w+", line).group(0) for line in served}) == 1  # type: ignore[union-attr]


def test_proxy_flags_reach_the_failover_policy() -> None:
    flags = ["--total-deadline", "7", "--attempt-timeout", "2", "--max-attempts", "3"]
    flags += ["--stream-idle-timeout", "4", "--max-body-bytes", "1024"]
    args = _build_parser().parse_args(["proxy", *flags, "--forward-openai-organization"])
    options = _proxy_options(args)
    assert (options.policy.total_deadline, options.policy.attempt_timeout) == (7, 2)
    assert options.policy.max_attempts == 3
    assert options.stream_idle_timeout == 4
    assert options.max_body_bytes == 1024
    assert options.forward_organization
    defaults = _proxy_options(_build_parser().parse_args(["proxy"]))
    assert not defaults.forward_organization
    assert defaults.policy.total_deadline == 120
