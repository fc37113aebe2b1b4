"""What usage records, metrics and the JSON request log cost the proxy; run by `make bench`.

One stack, one mock (20 ms latency), and proxies that differ only in their observability
flags, all following the same control plane: `off` (`--usage-records off --metrics off`,
no request log), `default` (records and metrics, as `keyway proxy` starts) and `on`
(records, metrics and `--request-log json`). They are measured
at the same time, each under its own wrk, for several rounds (the note lists every round).
With two or more CPUs the proxies share one core and everything else (mock, control
plane, wrk, this process) runs on the others: the scheduler gives each proxy the same
share of that core, so their throughput ratio is the ratio of their CPU costs per request,
measured at the same moment (measured one after the other, this machine's speed drifts by
more than the difference). The control plane's CPU for storing the records is reported
beside it; 1-client latency is measured request by request, interleaved. With
KEYWAY_BENCH_BASELINE=<checkout of another commit>, a third proxy runs that commit's code,
for before/after. Only correctness is asserted, never timings.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.stack import Process

from . import report
from .load import (
    BenchStack,
    Connection,
    WrkResult,
    bench_stack,
    ensure_wrk,
    load_average,
    pin,
    request_bytes,
    route,
    split_cpus,
    wrk,
)
from .report import percentile

LATENCY_MS = 20.0
ROUNDS = int(os.environ.get("KEYWAY_BENCH_OBSERVE_ROUNDS", "10"))
WRK_SECONDS = float(os.environ.get("KEYWAY_BENCH_WRK_SECONDS", "3"))
SAMPLES = 200
CLIENTS = 50
CHAT = "/v1/chat/completions"
OK_KEY = "sk-mock-ok-observe"
BODY = (
    b'{"model":"gpt-4o-mini","max_tokens":32,'
    b'"messages":[{"role":"user","content":"Say hello in one short sentence, please."}]}'
)
_FLAGS = {
    "off": ["--usage-records", "off", "--metrics", "off", "--request-log", "off"],
    "default": [],  # records and metrics, no request log
    "on": ["--request-log", "json"],
}


@dataclass
class Proxies:
    run: BenchStack
    token: str
    processes: dict[str, Process]


def _proxy(run: BenchStack, name: str, flags: list[str], env: dict[str, str]) -> Process:
    data_dir = run.stack.data_dir
    process = Process(
        f"proxy ({name})",
        [
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--control-plane",
            run.stack.control_plane.address,
            "--data-plane-token-file",
            str(data_dir / "data-plane.token"),
            "--node-id",
            f"bench-{name}",
            *flags,
        ],
        env=env,
    )
    process.wait_listening()
    return process


@pytest.fixture(scope="module")
def proxies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxies]:
    if ensure_wrk() is None:
        pytest.skip("wrk is not installed and could not be (apt-get install wrk)")
    with bench_stack(Path(tmp_path_factory.mktemp("observe-bench")), LATENCY_MS) as run:
        token = route(run.stack, [run.stack.add_provider_key("openai", OK_KEY)], "observe")
        started: dict[str, Process] = {}
        cpus = os.sched_getaffinity(0)
        try:
            for name, flags in _FLAGS.items():
                started[name] = _proxy(run, name, flags, {})
            baseline = os.environ.get("KEYWAY_BENCH_BASELINE")
            if baseline:
                root = Path(baseline).resolve()
                path = f"{root}{os.pathsep}{root / 'proto'}"
                started["baseline"] = _proxy(run, "baseline", _FLAGS["on"], {"PYTHONPATH": path})
            run.stack.wait_synced()
            split = split_cpus()
            if split is not None:
                for process in started.values():
                    pin(process.proc.pid, split[0])
                others = (run.stack.control_plane, run.stack.mock, run.stack.proxy, run.mock_fast)
                for process in others:
                    pin(process.proc.pid, split[1])
                pin(0, split[1])  # and wrk, which this process starts
            where = f"proxies sharing CPU {split[0]}" if split else "one CPU for all"
            print(f"\nobservability bench: {ROUNDS} rounds, {where}, {load_average()}", flush=True)
            yield Proxies(run, token, started)
        finally:
            pin(0, cpus)
            for process in started.values():
                process.stop()


def _pid(process: Process) -> int:
    return process.proc.pid


def test_throughput_and_latency_with_observability_on_and_off(proxies: Proxies) -> None:
    names = list(proxies.processes)
    runs: dict[str, list[WrkResult]] = {name: [] for name in names}
    p50: dict[str, list[float]] = {name: [] for name in names}
    direct_p50: list[float] = []
    mock = proxies.run.stack.mock.address
    control_plane = _pid(proxies.run.stack.control_plane)
    ingest: list[float] = []
    for _ in range(ROUNDS):
        # All proxies at once, each under its own wrk, sharing one CPU: the scheduler gives
        # each the same share, so the throughput ratio is the ratio of their CPU costs, at
        # the same moment (run one after the other, this machine's speed drifts by more).
        with ThreadPoolExecutor(len(names)) as pool:
            futures = {
                name: pool.submit(
                    wrk,
                    f"http://{process.address}{CHAT}",
                    proxies.token,
                    BODY,
                    connections=CLIENTS,
                    seconds=WRK_SECONDS,
                    watch={"proxy": _pid(process), "control plane": control_plane},
                )
                for name, process in proxies.processes.items()
            }
            for name, future in futures.items():
                result = future.result()
                assert result.failures == 0, result.errors
                runs[name].append(result)
        stored = sum(runs[name][-1].requests for name in names if name != "off")
        ingest.append(runs["off"][-1].cpu["control plane"] / stored if stored else 0.0)
        # One client, interleaved request by request, against the mock directly too.
        raw = {
            name: request_bytes(p.address, CHAT, proxies.token, BODY)
            for name, p in proxies.processes.items()
        }
        raw["direct"] = request_bytes(mock, CHAT, OK_KEY, BODY)
        connections = {name: Connection(p.address) for name, p in proxies.processes.items()} | {
            "direct": Connection(mock)
        }
        samples: dict[str, list[float]] = {name: [] for name in connections}
        try:
            order = list(connections)
            for i in range(50 + SAMPLES):
                shift = i % len(order)
                for name in order[shift:] + order[:shift]:
                    timing = connections[name].send(raw[name])
                    assert timing.status == 200, (name, timing.status)
                    if i >= 50:
                        samples[name].append(timing.total)
        finally:
            for connection in connections.values():
                connection.close()
        direct_p50.append(percentile(samples["direct"], 50))
        for name in names:
            p50[name].append(percentile(samples[name], 50))

    table = report.Table(
        f"observability cost: {CLIENTS} clients per proxy (concurrent {WRK_SECONDS:g} s wrk "
        "runs, the proxies sharing one CPU) and 1 client "
        f"({SAMPLES} requests, interleaved), {LATENCY_MS:g} ms upstream, {ROUNDS} rounds "
        f"({load_average()})"
    )
    off_rps = [r.rps for r in runs["off"]]
    for name in names:
        rps = [r.rps for r in runs[name]]
        cpu = [r.cpu_per_request("proxy") * 1e6 for r in runs[name]]
        added = [p - d for p, d in zip(p50[name], direct_p50, strict=True)]
        table.add(
            f"{name}: throughput",
            f"median {statistics.median(rps):,.0f} rps "
            f"({statistics.median(rps) / statistics.median(off_rps):.1%} of off)",
            note="rounds: " + ", ".join(f"{v:,.0f}" for v in rps),
        )
        table.add(
            f"{name}: proxy CPU per request",
            f"median {statistics.median(cpu):.0f} µs",
            note="rounds: " + ", ".join(f"{v:.0f}" for v in cpu),
        )
        table.add(
            f"{name}: 1 client, added p50",
            f"median {statistics.median(added) * 1e3:+.3f} ms",
            note="rounds: " + ", ".join(f"{v * 1e3:+.3f}" for v in added),
        )
    table.add(
        "control plane CPU per request recorded",
        f"median {statistics.median(ingest) * 1e6:.0f} µs",
        note="storing the records shipped (in batches, so a round's lags a little)",
    )
    for name in names:
        if name != "off":
            pairs = [(a - b) * 1e3 for a, b in zip(p50[name], p50["off"], strict=True)]
            table.add(
                f"{name} minus off: 1-client p50, same round",
                f"median {statistics.median(pairs):+.3f} ms",
                "< 0.05 ms",
                statistics.median(pairs) < 0.05,
                "rounds: " + ", ".join(f"{v:+.3f}" for v in pairs),
            )
            cpu_added = [
                (r.cpu_per_request("proxy") - o.cpu_per_request("proxy")) * 1e6
                for r, o in zip(runs[name], runs["off"], strict=True)
            ]
            table.add(
                f"{name} minus off: proxy CPU per request, same round",
                f"median {statistics.median(cpu_added):+.0f} µs",
                note="rounds: " + ", ".join(f"{v:+.0f}" for v in cpu_added),
            )
            ratios = [r.rps / o.rps for r, o in zip(runs[name], runs["off"], strict=True)]
            table.add(
                f"{name} / off: throughput, same round",
                f"median {statistics.median(ratios):.1%}",
                "> 97 %",
                statistics.median(ratios) > 0.97,
                "rounds: " + ", ".join(f"{v:.1%}" for v in ratios),
            )
    table.print()
