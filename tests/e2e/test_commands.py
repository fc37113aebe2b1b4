"""The commands the README tells a new user to run: `make run` (keyway up) and `make demo`."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from anthropic.types import MessageParam

from control_plane.cli.main import build_parser, connection_limits, proxy_options
from data_plane.http.connections import ConnectionLimits
from tests.sockets import shareable_port

from .stack import HTTP_ANY, KEYWAY, Process, wait_until


@contextmanager
def running(args: list[str], cwd: Path | None = None) -> Iterator[list[str]]:
    """A `keyway` command; yields its output lines as they arrive."""
    process = Process(args[0], args, cwd=cwd)
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
    args = ["up", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0", *HTTP_ANY]
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
        # The commands it prints to administer it work, as printed.
        (export,) = [line.split()[1:] for line in lines if "export KEYWAY_ADDR=" in line]
        env = {**os.environ, **dict(item.split("=", 1) for item in export)}
        commands = [line.split("#")[0].split() for line in lines if line.startswith("  ")]
        printed = [c for c in commands if c and c[0].endswith("keyway") and c[1] == "admin"]
        assert [command[1:] for command in printed] == [
            ["admin", "provider-keys", "list"],
            ["admin", "access-keys", "list"],
            ["admin", "data-planes", "list"],
        ]
        listed = subprocess.run(printed[0], capture_output=True, text=True, env=env, check=True)
        rows = listed.stdout.splitlines()[1:]
        assert [row.split()[1] for row in rows] == ["openai", "openai", "anthropic"]
    assert [re.sub(r"pk_\w+", "KEY", line) for line in served] == [
        "request 1: 200, served by key KEY after 2 attempt(s)",
        "request 2: 200, served by key KEY after 1 attempt(s)",
    ]
    # Both requests were served by the same (backup) key.
    assert len({re.search(r"pk_\w+", line).group(0) for line in served}) == 1  # type: ignore[union-attr]


def test_proxy_flags_reach_the_failover_policy() -> None:
    flags = ["--total-deadline", "7", "--attempt-timeout", "2", "--max-attempts", "3"]
    flags += ["--stream-idle-timeout", "4", "--max-body-bytes", "1024"]
    args = build_parser().parse_args(["proxy", *flags, "--forward-openai-organization"])
    options = proxy_options(args)
    assert (options.policy.total_deadline, options.policy.attempt_timeout) == (7, 2)
    assert options.policy.max_attempts == 3
    assert options.stream_idle_timeout == 4
    assert options.max_body_bytes == 1024
    assert options.forward_organization
    defaults = proxy_options(build_parser().parse_args(["proxy"]))
    assert not defaults.forward_organization
    assert defaults.policy.total_deadline == 120
    assert defaults.max_body_bytes == 64 * 1024 * 1024
    assert defaults.policy.min_attempt_time == 0.25


def keyway(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The console script, to its end: ordinary mistakes must stop it at once."""
    return subprocess.run(
        [KEYWAY, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The `keyway: error: …` line, after checking it is the only thing said (usage aside)."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("keyway: error: ")]
    assert len(errors) == 1, result.stderr
    # Only argparse's usage may come before it (continuation lines are indented).
    assert all(line.startswith(("usage: ", " ")) for line in lines[: lines.index(errors[0])])
    assert lines[-1] == errors[0]
    return errors[0].removeprefix("keyway: error: ")


@pytest.fixture
def held_port() -> Iterator[str]:
    with shareable_port() as address:
        yield address


def test_a_second_control_plane_on_a_used_port_fails_and_the_first_keeps_serving(
    tmp_path: Path,
) -> None:
    first_dir = tmp_path / "first"
    first = ["control-plane", "--listen", "127.0.0.1:0", "--data-dir", str(first_dir), *HTTP_ANY]
    with running(first) as out:
        wait_until(lambda: bool(listening(out, "control plane")), timeout=20, what="first")
        address = listening(out, "control plane")
        second = keyway(
            "control-plane", "--listen", address, "--data-dir", str(tmp_path / "2"), *HTTP_ANY
        )
        assert one_error_line(second).startswith(
            f"cannot listen on {address} for the control plane: address already in use; "
        )
        assert "listening" not in second.stdout
        admin = [KEYWAY, "admin", "--addr", address, "--token-file", str(first_dir / "admin.token")]
        for _ in range(6):  # every call reaches the first process's database
            listed = subprocess.run(
                [*admin, "accounts", "get", "--json"], capture_output=True, text=True, check=False
            )
            assert listed.returncode == 0, listed.stderr


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        (["control-plane"], "--listen"),
        (["control-plane", "--listen", "127.0.0.1:0"], "--http-listen"),
        (["up", "--listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0"], "--http-listen"),
        (["up", "--listen", "127.0.0.1:0"], "--proxy-listen"),
        (["up", "--proxy-listen", "127.0.0.1:0"], "--listen"),
        (["proxy"], "--listen"),
        (["mock-upstream"], "--listen"),
        (["demo"], "--proxy-listen"),
    ],
)
def test_every_listener_refuses_a_port_in_use(
    command: list[str], flag: str, held_port: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    extra = ["--data-dir", str(data_dir)] if command[0] in ("control-plane", "up") else []
    if extra and flag != "--http-listen":
        extra += HTTP_ANY
    env = {"KEYWAY_DATA_PLANE_TOKEN": "kwdp_unused"}
    result = keyway(*command, *extra, flag, held_port, env=env)
    message = one_error_line(result)
    assert f"cannot listen on {held_port}" in message
    assert "address already in use" in message
    assert "choose another port" in message
    what = "proxy" if flag == "--proxy-listen" or command[0] == "proxy" else "control plane"
    if command[0] == "mock-upstream":
        what = "mock upstream"
    if flag == "--http-listen":
        what = "HTTP API"
    assert message.endswith(f"; {flag} HOST:PORT sets the {what}'s address")
    if command[0] != "proxy":
        assert "listening" not in result.stdout  # nothing started on the other port either
    if command[0] == "up":
        assert not data_dir.exists()


def test_ordinary_mistakes_get_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    missing = str(tmp_path / "missing.pem")
    no_token = {"KEYWAY_DATA_PLANE_TOKEN": ""}
    cases: list[tuple[list[str], dict[str, str], int, str]] = [
        (["proxy", "--data-plane-token-file", missing], {}, 1,
         f"cannot read --data-plane-token-file {missing}: no such file or directory; "
         "the control plane writes one to DATA_DIR/data-plane.token on first start"),
        (["proxy"], no_token, 1, "no data-plane token: pass --data-plane-token-file PATH"),
        (["up", "--listen", "notaport"], {}, 2,
         "argument --listen: expected HOST:PORT with a port from 0 to 65535, got 'notaport'"),
        (["proxy", "--listen", "127.0.0.1:99999"], {}, 2, "argument --listen: expected HOST:PORT"),
        (["--log-level", "loud", "up"], {}, 2, "argument --log-level: invalid choice: 'LOUD'"),
        (["control-plane", "--data-dir", data_dir, "--tls-cert", missing, "--tls-key", missing],
         {}, 1, f"cannot read --tls-cert {missing}: no such file or directory"),
        (["control-plane", "--data-dir", data_dir, "--listen", "0.0.0.0:0"], {}, 1,
         "refusing to listen on 0.0.0.0:0 without TLS: snapshots carry provider keys. "
         "Pass --tls-cert/--tls-key, or --allow-insecure-remote"),
        (["proxy", "--tls-ca", missing], {"KEYWAY_DATA_PLANE_TOKEN": "kwdp_x"}, 1,
         f"cannot read --tls-ca {missing}: no such file or directory"),
        (["up", "--bogus"], {}, 2, "unrecognized arguments: --bogus (see `keyway up --help`)"),
    ]  # fmt: skip
    for args, env, status, expected in cases:
        result = keyway(*args, env=env)
        assert result.returncode == status, (args, result.stderr)
        assert expected in one_error_line(result), (args, result.stderr)


def test_version_help_defaults_and_the_subcommands_usage() -> None:
    version = keyway("--version")
    assert re.fullmatch(r"keyway \d+\.\d+\.\d+\S*\n", version.stdout)
    helped = keyway("proxy", "--help").stdout
    assert re.search(
        r"--total-deadline SECONDS\s+per request, all attempts included\s+\(default:\s+120", helped
    )
    assert "{DEBUG,INFO,WARNING,ERROR}" in keyway("--help").stdout
    wrong = keyway("admin", "provider-keys", "list", "--provder", "openai")
    assert wrong.returncode == 2
    assert wrong.stderr.startswith("usage: keyway admin provider-keys list ")
    assert one_error_line(wrong) == (
        "unrecognized arguments: --provder openai (see `keyway admin provider-keys list --help`)"
    )


def test_the_readme_quickstart_succeeds_without_a_provider_account(tmp_path: Path) -> None:
    """The README's steps, as written, on a machine that can reach no provider."""
    up = ["up", "--mock-upstream", "--data-dir", ".keyway", "--listen", "127.0.0.1:0", *HTTP_ANY]
    with running([*up, "--proxy-listen", "127.0.0.1:0"], cwd=tmp_path) as lines:
        wait_until(lambda: bool(listening(lines, "proxy")), timeout=20, what="keyway up")
        proxy = f"http://{listening(lines, 'proxy')}"
        env = {**os.environ, "KEYWAY_ADDR": listening(lines, "control plane")}
        for name in ("KEYWAY_TOKEN", "KEYWAY_DATA_DIR"):
            env.pop(name, None)

        def admin(*args: str, stdin: str | None = None) -> str:
            done = subprocess.run(
                [KEYWAY, "admin", *args], input=stdin, capture_output=True, text=True,
                cwd=tmp_path, env=env, timeout=30, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            return done.stdout

        def new_id(out: str) -> str:
            found: list[str] = re.findall(r"^id\s+(\S+)$", out, re.MULTILINE)
            return found[0]

        first = new_id(
            admin("provider-keys", "create", "--provider", "openai", "--name", "Mock OpenAI key",
                  "--value", "sk-mock-ok-my-first-key")
        )  # fmt: skip
        admin("provider-keys", "create", "--provider", "anthropic", "--name", "Mock Anthropic key",
              "--value", "sk-mock-ok-my-claude-key")  # fmt: skip
        created = admin("access-keys", "create", "--name", "my app")
        access_key, token = new_id(created), created.rsplit(": ", 1)[1].strip()
        wait_until(lambda: _serves(proxy, token), what="the proxy to know the access key")

        client = openai.OpenAI(api_key=token, base_url=f"{proxy}/v1", max_retries=0)
        reply = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Hello"}]
        )
        assert reply.parse().choices[0].message.content == (
            "Hello from mock (model gpt-4o, key ok-my-first-key)"
        )
        assert reply.headers["x-keyway-provider-key-id"] == first
        claude = anthropic.Anthropic(api_key=token, base_url=proxy, max_retries=0)
        hello: list[MessageParam] = [{"role": "user", "content": "Hello"}]
        with claude.messages.stream(
            model="claude-sonnet-4-5", max_tokens=256, messages=hello
        ) as stream:
            text = "".join(stream.text_stream)
        assert text == "Hello from mock (model claude-sonnet-4-5, key ok-my-claude-key)"
        assert (
            claude.messages.count_tokens(model="claude-sonnet-4-5", messages=hello).input_tokens > 0
        )

        busy = new_id(
            admin("provider-keys", "create", "--provider", "openai", "--name", "Busy key",
                  "--value", "sk-mock-429-30-busy-key")
        )  # fmt: skip
        production = {
            "name": "Production",
            "router": {"rules": [{"provider": "openai", "steps": [
                {"type": "user", "keys": [{"id": busy}, {"id": first}]}]}]},
        }  # fmt: skip
        (tmp_path / "production.json").write_text(json.dumps(production))
        configuration = new_id(admin("configurations", "create", "--file", "production.json"))
        admin("access-keys", "update", access_key, "--configuration", configuration)
        wait_until(
            lambda: _attempts(client) == "2", what="the configuration to route via the busy key"
        )
        wait_until(
            lambda: "429: Rate limited by provider" in admin("provider-keys", "list"),
            what="the busy key's last error",
        )
        rows = {row.split()[0]: row for row in admin("provider-keys", "list").splitlines()[1:]}
        assert re.match(rf"{busy}\s+openai\s+Busy key\s+enabled\s", rows[busy])
        rotated = admin("provider-keys", "rotate", busy, "--value", "-", stdin="sk-mock-ok-rot\n")
        assert re.search(r"^last_error\s+-$", rotated, re.MULTILINE)
        wait_until(lambda: _attempts(client) == "1", what="the rotated key to serve")
        admin("provider-keys", "disable", busy)
        wait_until(lambda: _served_by(client) == first, what="the disabled key to be skipped")
        client.close()
        claude.close()


def _serves(proxy: str, token: str) -> bool:
    models = httpx.get(f"{proxy}/v1/models", headers={"authorization": f"Bearer {token}"})
    return models.status_code == 200


def _attempts(client: openai.OpenAI) -> str:
    reply = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Hello"}]
    )
    return str(reply.headers["x-keyway-attempts"])


def _served_by(client: openai.OpenAI) -> str:
    reply = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Hello"}]
    )
    return str(reply.headers["x-keyway-provider-key-id"])


def test_make_run_and_demo_pass_args_through() -> None:
    root = Path(__file__).resolve().parents[2]
    for target, args, expected in (
        ("run", "--mock-upstream --proxy-listen 127.0.0.1:0", "keyway up --data-dir .keyway "),
        ("demo", "--proxy-listen 127.0.0.1:0", "keyway demo "),
    ):
        planned = subprocess.run(
            ["make", "--no-print-directory", "-n", target, f"ARGS={args}"],
            capture_output=True, text=True, check=True, timeout=30, cwd=root,
        ).stdout  # fmt: skip
        assert planned.splitlines()[-1].endswith(expected + args), planned


def test_limit_flags_reach_the_proxy() -> None:
    flags = ["--max-connections", "10", "--max-header-bytes", "2048"]
    flags += ["--header-read-timeout", "3", "--body-read-timeout", "4", "--keepalive-timeout", "2"]
    flags += ["--write-timeout", "5", "--max-stream-duration", "30", "--min-attempt-time", "0.5"]
    flags += ["--max-concurrency-per-access-key", "7", "--max-concurrency-per-account", "9"]
    args = build_parser().parse_args(["proxy", *flags])
    options = proxy_options(args)
    assert (options.admission.per_access_key, options.admission.per_account) == (7, 9)
    assert options.max_stream_duration == 30
    assert options.policy.min_attempt_time == 0.5
    limits = connection_limits(args)
    assert (limits.max_connections, limits.max_header_bytes) == (10, 2048)
    assert (limits.header_read_timeout, limits.body_read_timeout) == (3, 4)
    assert (limits.keepalive_timeout, limits.write_timeout) == (2, 5)
    assert connection_limits(build_parser().parse_args(["proxy"])) == ConnectionLimits()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--min-attempt-time", "9", "--total-deadline", "5"], "--min-attempt-time"),
        (["--max-header-bytes", "10"], "--max-header-bytes"),
    ],
)
def test_inconsistent_proxy_flags_are_refused_naming_the_setting(
    flags: list[str], named: str
) -> None:
    result = keyway("proxy", "--listen", "127.0.0.1:0", *flags, env=TOKEN_ENV)
    assert named in one_error_line(result)


def test_a_proxy_told_to_follow_a_remote_control_plane_in_clear_refuses_to_start() -> None:
    result = keyway(
        "proxy", "--listen", "127.0.0.1:0", "--control-plane", "10.1.2.3:50051", env=TOKEN_ENV
    )
    assert "--allow-insecure-control-plane" in one_error_line(result)


def test_a_proxy_tls_certificate_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    result = keyway(
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        str(missing),
        "--tls-key",
        str(missing),
        env=TOKEN_ENV,
    )
    assert one_error_line(result).startswith(f"cannot read --tls-cert {missing}")


TOKEN_ENV = {"KEYWAY_DATA_PLANE_TOKEN": "kwdp_unused"}
