"""Load and timing tools for the proxy benchmarks, plus the processes they run against.

- `Connection`: a blocking keep-alive HTTP/1.1 client on a raw socket, for one-client
  latency and time-to-first-byte. It measures time, not throughput, and costs the same
  for the proxy and the direct baseline, so its own overhead cancels out of differences.
- `wrk`: the throughput load generator (C, one thread, a Lua script for POST + headers +
  body; the script's `done` hook prints one JSON line with counts and percentiles).
- `bench_stack`: mock upstream(s), control plane and one proxy as real `keyway` processes,
  the way tests/e2e/stack.py starts them, with the mock's `--latency-ms` set.
- `cpu_seconds`: user + system CPU of a process, from /proc, to turn a run into CPU per request.
- `pin` / `split_cpus`: a core of its own for the proxy under test.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.stack import Process, Stack, running_stack

ROOT = Path(__file__).resolve().parents[2]
_CLOCK_TICK = os.sysconf("SC_CLK_TCK")


# -- one-client timing -----------------------------------------------------------------------


def request_bytes(
    address: str, path: str, token: str, body: bytes, extra: tuple[tuple[str, str], ...] = ()
) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"host: {address}",
        f"authorization: Bearer {token}",
        "content-type: application/json",
        "accept: application/json",
        f"content-length: {len(body)}",
        *(f"{name}: {value}" for name, value in extra),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass(frozen=True, slots=True)
class Timing:
    status: int
    headers: dict[str, str]
    body: bytes
    head: float
    """Seconds from sending to the end of the response headers."""
    first_body: float
    """Seconds from sending to the first body bytes (the first SSE event for a stream)."""
    total: float


class Connection:
    """One keep-alive connection; `send` returns when the whole response has arrived."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.address = address
        self._sock = socket.create_connection((host, int(port)), timeout=30)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _more(self) -> None:
        data = self._sock.recv(65536)
        if not data:
            raise ConnectionError(f"{self.address} closed the connection")
        self._buffer += data

    def send(self, raw: bytes) -> Timing:
        started = time.perf_counter()
        self._sock.sendall(raw)
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            self._more()
        head_at = time.perf_counter()
        lines = self._buffer[:end].decode("latin-1").split("\r\n")
        self._buffer = self._buffer[end + 4 :]
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body, first_at = self._chunked()
        else:
            size = int(headers.get("content-length", "0"))
            first_at = 0.0
            while len(self._buffer) < size:
                self._more()
                first_at = first_at or time.perf_counter()
            first_at = first_at or time.perf_counter()
            body, self._buffer = self._buffer[:size], self._buffer[size:]
        done = time.perf_counter()
        return Timing(status, headers, body, head_at - started, first_at - started, done - started)

    def _chunked(self) -> tuple[bytes, float]:
        parts: list[bytes] = []
        first_at = 0.0
        while True:
            while (eol := self._buffer.find(b"\r\n")) < 0:
                self._more()
            size = int(self._buffer[:eol].split(b";", 1)[0], 16)
            while len(self._buffer) < eol + 2 + size + 2:
                self._more()
            if size == 0:
                self._buffer = self._buffer[eol + 4 :]
                return b"".join(parts), first_at
            first_at = first_at or time.perf_counter()
            parts.append(self._buffer[eol + 2 : eol + 2 + size])
            self._buffer = self._buffer[eol + 2 + size + 2 :]


# -- CPU accounting --------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, man proc).
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICK


def pin(pid: int, cpus: set[int]) -> None:
    """Runs every thread of process `pid` (0: this one) on `cpus` only."""
    for tid in os.listdir(f"/proc/{pid or os.getpid()}/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that has just ended
            os.sched_setaffinity(int(tid), cpus)


def split_cpus() -> tuple[set[int], set[int]] | None:
    """(one CPU for the proxies under test, the others for everything else), or None on
    a single CPU. A proxy is one thread on one core: alone there, its throughput is its
    own CPU cost, not how the scheduler shared a core with the mock, wrk and the control
    plane."""
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2:
        return None
    mine = max(cpus)
    return {mine}, cpus - {mine}


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load avg {one:.2f} {five:.2f} {fifteen:.2f}"


# -- wrk -------------------------------------------------------------------------------------

_LUA = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
{extra}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    errors: dict[str, int]
    """connect/read/write/timeout errors and `status`: responses with a status of 400 or more."""
    p50: float
    p90: float
    p99: float
    max: float
    wrk_cpu: float
    """CPU seconds wrk itself used."""
    cpu: dict[str, float]
    """CPU seconds each watched process used during the run."""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def cpu_per_request(self, name: str) -> float:
        return self.cpu[name] / self.requests if self.requests else 0.0

    @property
    def wrk_cpu_per_request(self) -> float:
        return self.wrk_cpu / self.requests if self.requests else 0.0

    @property
    def failures(self) -> int:
        return sum(self.errors.values())


def ensure_wrk() -> str | None:
    """wrk's path, installing the Debian package when it is missing and we may (root)."""
    found = shutil.which("wrk")
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, timeout=300)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"], check=False, env=env, timeout=300
        )
        found = shutil.which("wrk")
    return found


def wrk(
    url: str,
    token: str,
    body: bytes,
    *,
    connections: int,
    seconds: float,
    watch: dict[str, int] | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> WrkResult:
    """One bounded wrk run (one thread); `watch` names processes whose CPU is recorded."""
    executable = shutil.which("wrk")
    assert executable is not None, "wrk is not installed"
    extra = "\n".join(f'wrk.headers["{name}"] = "{value}"' for name, value in headers)
    script = _LUA.format(body=body.decode(), token=token, extra=extra)
    watch = watch or {}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        before = {name: cpu_seconds(pid) for name, pid in watch.items()}
        completed = subprocess.run(
            [
                executable,
                "-t1",
                f"-c{connections}",
                f"-d{seconds:g}s",
                "--timeout",
                "5s",
                "-s",
                handle.name,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=False,
        )
        after = {name: cpu_seconds(pid) for name, pid in watch.items()}
        after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        os.unlink(handle.name)
    line = next(
        (x for x in completed.stdout.splitlines() if x.startswith("WRK_JSON ")),
        None,
    )
    if completed.returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
        )
    data = json.loads(line.removeprefix("WRK_JSON "))
    wrk_cpu = (after_children.ru_utime + after_children.ru_stime) - (
        before_children.ru_utime + before_children.ru_stime
    )
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors={k: data[k] for k in ("connect", "read", "write", "status", "timeout")},
        p50=data["p50_us"] / 1e6,
        p90=data["p90_us"] / 1e6,
        p99=data["p99_us"] / 1e6,
        max=data["max_us"] / 1e6,
        wrk_cpu=wrk_cpu,
        cpu={name: after[name] - before[name] for name in watch},
    )


# -- processes -------------------------------------------------------------------------------


class StaticServer:
    """tests/bench/static_server.py in its own process."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.static_server", "127.0.0.1:0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"static server did not start: {line!r}")
        self.address = line.rsplit(" ", 1)[1].strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def route(stack: Stack, key_ids: list[str], name: str) -> str:
    """An access key whose configuration routes openai to these keys, in order."""
    doc = {
        "name": name,
        "router": {
            "rules": [
                {
                    "provider": "openai",
                    "steps": [{"type": "user", "keys": [{"id": k} for k in key_ids]}],
                }
            ]
        },
    }
    _, token = stack.add_access_key(stack.add_configuration(doc))
    return token


@dataclass
class BenchStack:
    stack: Stack
    mock_fast: Process
    """A second mock with no added latency, for its throughput ceiling."""

    @property
    def mock(self) -> str:
        return self.stack.mock.address

    @property
    def proxy(self) -> str:
        return self.stack.proxy.address

    @property
    def proxy_pid(self) -> int:
        return self.stack.proxy.proc.pid

    @property
    def mock_pid(self) -> int:
        return self.stack.mock.proc.pid


@contextmanager
def bench_stack(data_dir: Path, latency_ms: float) -> Iterator[BenchStack]:
    """The e2e stack with the mock's latency set, and a 0 ms mock beside it."""
    mock_fast = Process(
        "mock upstream (0 ms)", ["mock-upstream", "--listen", "127.0.0.1:0", "--latency-ms", "0"]
    )
    try:
        mock_fast.wait_listening()
        with running_stack(data_dir, mock_latency_ms=latency_ms) as stack:
            yield BenchStack(stack, mock_fast)
    finally:
        mock_fast.stop()
