"""Where the proxy's CPU goes under load: py-spy samples, summed by layer.

Opt-in (`KEYWAY_BENCH_PROFILE=1 make bench`; needs `.venv/bin/pip install py-spy`). py-spy
samples only while the proxy's threads are on the CPU, and each sample is charged to its
innermost Python frame, so time in C code and system calls lands on the Python function
that called them (the event loop for epoll and socket reads; uvicorn's `send` and aiohttp's
writer for socket writes).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"(?P<function>.*) \((?P<file>.*?):(?P<line>\d+)\)$")


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def layer(function: str, file: str) -> str:
    if file.endswith("asyncio/runners.py"):
        return "event loop: uvloop C code, epoll, socket reads"
    if "uvicorn" in file and function == "RequestResponseCycle.send":
        return "uvicorn send: response head + socket writes"
    if "uvicorn" in file:
        return "uvicorn: request parsing, ASGI task, receive"
    if file.endswith("aiohttp/http_writer.py"):
        return "aiohttp: upstream socket writes"
    if any(name in file for name in ("aiohttp", "yarl", "multidict")):
        return "aiohttp: request building, response parsing"
    if "data_plane/" in file:
        return "keyway " + file.split("data_plane/", 1)[1]
    if "/asyncio/" in file:
        return "asyncio (timeouts, tasks)"
    if "/logging/" in file:
        return "logging"
    if "/json/" in file:
        return "json"
    return "other"


def summarise(raw: Path) -> list[tuple[str, float]]:
    """Share of on-CPU samples per layer, largest first, from py-spy's `--format raw`."""
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        match = _FRAME.match(stack.rsplit(";", 1)[-1])
        name = layer(match["function"], match["file"]) if match else "native"
        counts[name] += int(count)
    total = sum(counts.values()) or 1
    return [(name, n / total) for name, n in counts.most_common()]


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """Starts py-spy on `pid` for `seconds`; None when py-spy is not installed."""
    executable = py_spy()
    if executable is None:
        return None
    return subprocess.Popen(
        [
            executable,
            "record",
            *("--pid", str(pid), "--duration", str(max(1, int(seconds))), "--rate", "250"),
            *("--format", "raw", "--output", str(out), "--nonblocking"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
