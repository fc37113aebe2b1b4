"""`keyway proxy --workers N`: throughput of one proxy with 1 and with 2 workers.

Real processes: the e2e stack (mock upstream, control plane, a one-worker proxy) plus a
second proxy with `--workers 2` following the same control plane. wrk loads each in turn,
interleaved round by round so drifting machine load hits both alike. The machine's cores
are shared by wrk, the mock and the proxies, so the figure shows how far a second worker
takes the proxy here, not the ceiling of a pod with dedicated cores. Only correctness is
asserted (no failed request), never timings.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import Process, Stack, running_stack

from . import report
from .load import WrkResult, ensure_wrk, load_average, route, wrk
from .test_proxy_bench import BODY, CHAT, OK_KEY

ROUNDS = max(2, int(os.environ.get("KEYWAY_BENCH_ROUNDS", "2")))
SECONDS = float(os.environ.get("KEYWAY_BENCH_WRK_SECONDS", "10"))
CLIENTS = 100
LATENCY_MS = 5.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if ensure_wrk() is None:
        pytest.skip("wrk is not installed and could not be (apt-get install wrk)")
    data_dir = Path(tmp_path_factory.mktemp("workers-bench"))
    with running_stack(data_dir, mock_latency_ms=LATENCY_MS) as running:
        yield running


def _workers(stack: Stack) -> Process:
    process = Process(
        "proxy (2 workers)",
        [
            "proxy",
            *("--listen", "127.0.0.1:0", "--workers", "2", "--node-id", "bench-workers"),
            *("--control-plane", stack.control_plane.address),
            *("--data-plane-token-file", str(stack.data_dir / "data-plane.token")),
        ],
    )
    stack.processes.append(process)
    process.wait_listening()
    return process


def test_one_proxy_with_one_and_with_two_workers(stack: Stack) -> None:
    ok = stack.add_provider_key("openai", OK_KEY)
    token = route(stack, [ok], "workers bench route")
    two = _workers(stack)
    stack.wait_synced(timeout=30)
    results: dict[str, list[WrkResult]] = {"1 worker": [], "2 workers": []}
    loads = []
    for _ in range(ROUNDS):
        loads.append(load_average())
        for name, address in (("1 worker", stack.proxy.address), ("2 workers", two.address)):
            result = wrk(
                f"http://{address}{CHAT}", token, BODY, connections=CLIENTS, seconds=SECONDS
            )
            assert result.requests > 0
            assert result.failures == 0, result.errors
            results[name].append(result)
    best = {name: max(runs, key=lambda r: r.rps) for name, runs in results.items()}
    table = report.Table(
        f"one proxy, 1 → 2 workers: {CLIENTS} clients (wrk -t1), non-stream chat, "
        f"{LATENCY_MS:g} ms upstream, best of {ROUNDS} rounds of {SECONDS:g} s"
    )
    for name, result in best.items():
        rounds = ", ".join(f"{r.rps:,.0f}" for r in results[name])
        table.add(
            f"{name}: requests/s",
            f"{result.rps:,.0f}",
            note=f"p50 {result.p50 * 1e3:.1f} ms, p99 {result.p99 * 1e3:.1f} ms; rounds {rounds}",
        )
    gain = best["2 workers"].rps / best["1 worker"].rps
    table.add("2 workers / 1 worker", f"{gain:.2f}x", note=f"load {'; '.join(loads)}")
    table.print()
