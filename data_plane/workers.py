"""`keyway proxy --workers N`: N proxy processes serving one listening port.

One Python process serves on one core; a pod with several gets all of them this way. The
supervisor binds the port once (exclusively, as every Keyway listener) and starts N
copies of the same command, each inheriting the listening socket (`KEYWAY_WORKER` in
their environment says which descriptor and which worker they are): the kernel hands
each new connection to whichever worker accepts it first. Every worker is a full
data-plane node of its own, with its own snapshot stream, usage reports and cache
directory; its node id is the proxy's with `/w<i>` appended (`edge-1/w2`).

The supervisor forwards SIGTERM/SIGINT to the workers and waits for them to drain. A
worker that dies after it got going (`SETTLED` seconds) is started again; one that dies
sooner (a configuration error it will hit again) stops the whole proxy with its status.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .shared.startup import StartupError, bind

log = logging.getLogger("keyway.data_plane.workers")

ENV_VAR = "KEYWAY_WORKER"
SETTLED = 10.0
"""Seconds after which a worker that dies is restarted rather than taken as a failure."""


@dataclass(frozen=True, slots=True)
class Worker:
    """What a worker process was told: where the socket is, and which one it is."""

    fd: int
    index: int

    def node_id(self, base: str) -> str:
        return f"{base}/w{self.index}"

    def cache_dir(self, base: Path | None) -> Path | None:
        return None if base is None else base / f"w{self.index}"


def this_worker(environ: Mapping[str, str] = os.environ) -> Worker | None:
    """The worker this process is (None outside `--workers`)."""
    value = environ.get(ENV_VAR)
    if not value:
        return None
    fd, _, index = value.partition(":")
    if not (fd.isdigit() and index.isdigit()):
        raise StartupError(f"{ENV_VAR} must be FD:INDEX (set by `keyway proxy --workers`)")
    return Worker(int(fd), int(index))


@dataclass
class _Running:
    index: int
    process: subprocess.Popen[bytes]
    started: float


class Supervisor:
    def __init__(self, listen: str, count: int, command: Sequence[str]) -> None:
        self._socket = bind(listen, "proxy")
        self.port: int = self._socket.getsockname()[1]
        self._count = count
        self._command = list(command)
        self._workers: dict[int, _Running] = {}
        self._stopping = False

    def _start(self, index: int) -> None:
        fd = self._socket.fileno()
        env = {**os.environ, ENV_VAR: f"{fd}:{index}"}
        # Our own command line again (`worker_command`), never outside input.
        process = subprocess.Popen(self._command, env=env, pass_fds=(fd,))  # noqa: S603
        self._workers[index] = _Running(index, process, time.monotonic())

    def _stop(self, *_: object) -> None:
        self._stopping = True
        for running in self._workers.values():
            if running.process.poll() is None:
                running.process.send_signal(signal.SIGTERM)

    def run(self) -> int:
        """Starts the workers and watches them until told to stop; the exit status."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._stop)
        for index in range(1, self._count + 1):
            self._start(index)
        status = 0
        while self._workers:
            time.sleep(0.2)
            for index, running in list(self._workers.items()):
                code = running.process.poll()
                if code is None:
                    continue
                del self._workers[index]
                if self._stopping:
                    continue
                if time.monotonic() - running.started < SETTLED:
                    log.error("proxy worker %d failed to start (status %d)", index, code)
                    status = code or 1
                    self._stop()
                    continue
                log.error("proxy worker %d exited (status %d); starting it again", index, code)
                self._start(index)
        self._socket.close()
        return status


def worker_command(argv: Sequence[str]) -> list[str]:
    """The command a worker runs: this very `keyway …` invocation."""
    return [sys.executable, "-m", "control_plane.cli.main", *argv]
