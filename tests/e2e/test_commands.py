"""The commands the README tells a new user to run: `make run` (keyway up) and `make demo`."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from control_plane.cli.main import _build_parser, _connection_limits, _proxy_options
from data_plane.http.connections import ConnectionLimits

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
    assert defaults.max_body_bytes == 64 * 1024 * 1024
    assert defaults.policy.min_attempt_time == 0.25


def test_limit_flags_reach_the_proxy() -> None:
    flags = ["--max-connections", "10", "--max-header-bytes", "2048"]
    flags += ["--header-read-timeout", "3", "--body-read-timeout", "4", "--keepalive-timeout", "2"]
    flags += ["--write-timeout", "5", "--max-stream-duration", "30", "--min-attempt-time", "0.5"]
    flags += ["--max-concurrency-per-access-key", "7", "--max-concurrency-per-account", "9"]
    args = _build_parser().parse_args(["proxy", *flags])
    options = _proxy_options(args)
    assert (options.admission.per_access_key, options.admission.per_account) == (7, 9)
    assert options.max_stream_duration == 30
    assert options.policy.min_attempt_time == 0.5
    limits = _connection_limits(args)
    assert (limits.max_connections, limits.max_header_bytes) == (10, 2048)
    assert (limits.header_read_timeout, limits.body_read_timeout) == (3, 4)
    assert (limits.keepalive_timeout, limits.write_timeout) == (2, 5)
    defaults = _connection_limits(_build_parser().parse_args(["proxy"]))
    assert defaults == ConnectionLimits()


def test_inconsistent_proxy_flags_are_refused_naming_the_setting() -> None:
    args = _build_parser().parse_args(["proxy", "--min-attempt-time", "9", "--total-deadline", "5"])
    with pytest.raises(SystemExit, match="min_attempt_time"):
        _proxy_options(args)
    args = _build_parser().parse_args(["proxy", "--max-header-bytes", "10"])
    with pytest.raises(SystemExit, match="max_header_bytes"):
        _connection_limits(args)


def test_a_proxy_told_to_follow_a_remote_control_plane_in_clear_refuses_to_start(
    tmp_path: Path,
) -> None:
    token = tmp_path / "token"
    token.write_text("dp-token")
    args = ["proxy", "--listen", "127.0.0.1:0", "--control-plane", "10.1.2.3:50051"]
    done = subprocess.run(
        [KEYWAY, *args, "--data-plane-token-file", str(token)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "--allow-insecure-control-plane" in done.stderr
    assert "Traceback" not in done.stderr
