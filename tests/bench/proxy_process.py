"""One proxy process holding the scale snapshot, measured from a fresh interpreter.

The pytest process also holds the data set, the store and earlier results, which would
inflate both RSS and garbage-collector pauses; a proxy holds only its own imports and
tables. Run as `python -m tests.bench.proxy_process MODE PAYLOAD VERSION SHA256 [TOKENS]`;
it prints one JSON object.

- `memory`: RSS after importing the whole proxy (baseline), serving the snapshot, at the
  swap moment (old table still served while the new one is built), after it, and peak.
- `swap`: the request path (hash the presented token, one dict lookup, `Caller.key_ids`)
  timed per lookup for 1 s, then again while a worker thread applies and swaps the
  snapshot back to back, as the snapshot client does with `asyncio.to_thread`; plus the
  full (generation 2) collections seen meanwhile, the usual cause of long stalls.
"""

from __future__ import annotations

import gc
import hashlib
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import data_plane.runner  # noqa: F401 - the whole proxy: uvicorn, starlette, aiohttp, grpc
from data_plane.routing.apply import Applied, apply
from data_plane.snapshot.state import SnapshotState

from .report import percentile

SWAPS = 10


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


class _Snapshot:
    def __init__(self, payload: Path, version: int, sha256: str) -> None:
        self._payload = payload
        self._version = version
        self._sha256 = sha256

    def apply(self) -> Applied:
        # A fresh bytes object per update, like one arriving on the stream.
        result = apply(self._version, self._sha256, self._payload.read_bytes())
        assert isinstance(result, Applied), result
        return result


def memory(snapshot: _Snapshot) -> dict[str, Any]:
    gc.collect()
    baseline = _status_bytes("VmRSS")
    state = SnapshotState()
    state.swap(snapshot.apply().table, generated_at=0.0, now=time.time())
    gc.collect()
    serving = _status_bytes("VmRSS")
    next_table = snapshot.apply().table  # built while the first table is still served
    gc.collect()
    during_swap = _status_bytes("VmRSS")
    state.swap(next_table, generated_at=0.0, now=time.time())
    del next_table
    gc.collect()
    after_swap = _status_bytes("VmRSS")
    samples = (baseline, serving, during_swap, after_swap)
    return {
        "baseline": baseline,
        "serving": serving,
        "during_swap": during_swap,
        "after_swap": after_swap,
        "peak": max(_status_bytes("VmHWM"), *samples),
    }


def _lookups(state: SnapshotState, tokens: list[str], until: Callable[[], bool]) -> dict[str, Any]:
    samples: list[int] = []
    clock = time.perf_counter_ns
    started = time.perf_counter()
    i = 0
    n = len(tokens)
    while not until():
        for _ in range(200):
            token = tokens[i % n]
            i += 7919  # a prime stride: spread over accounts
            t0 = clock()
            table = state.table  # a request reads the reference once
            assert table is not None
            caller = table.callers[hashlib.sha256(token.encode()).hexdigest()]
            caller.key_ids("openai", "gpt-4o")
            samples.append(clock() - t0)
    seconds = time.perf_counter() - started
    return {
        "count": len(samples),
        "per_second": len(samples) / seconds,
        "p50_ns": percentile(samples, 50),
        "p99_ns": percentile(samples, 99),
        "p999_ns": percentile(samples, 99.9),
        "max_ns": max(samples),
        "over_1ms": sum(1 for s in samples if s > 1_000_000),
    }


def swap(snapshot: _Snapshot, tokens: list[str]) -> dict[str, Any]:
    state = SnapshotState()
    state.swap(snapshot.apply().table, generated_at=0.0, now=time.time())
    gc.collect()

    pauses: list[float] = []
    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - gc_started[0])

    gc.callbacks.append(on_gc)
    deadline = time.perf_counter() + 1.0
    before = _lookups(state, tokens, lambda: time.perf_counter() > deadline)
    before_pauses = list(pauses)
    pauses.clear()

    done = threading.Event()
    apply_seconds: list[float] = []

    def swapper() -> None:
        try:
            for _ in range(SWAPS):
                started = time.perf_counter()
                state.swap(snapshot.apply().table, generated_at=0.0, now=time.time())
                apply_seconds.append(time.perf_counter() - started)
        finally:
            done.set()

    thread = threading.Thread(target=swapper, name="snapshot-apply")
    thread.start()
    during = _lookups(state, tokens, done.is_set)
    thread.join()
    gc.callbacks.remove(on_gc)
    return {
        "before": before,
        "during": during,
        "swaps": len(apply_seconds),
        "apply_seconds": apply_seconds,
        "gen2_before": before_pauses,
        "gen2_during": pauses,
    }


def main(argv: list[str]) -> int:
    mode, payload, version, sha256 = argv[:4]
    snapshot = _Snapshot(Path(payload), int(version), sha256)
    if mode == "memory":
        result = memory(snapshot)
    elif mode == "swap":
        result = swap(snapshot, Path(argv[4]).read_text().split())
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
