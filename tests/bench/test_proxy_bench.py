"""Proxy hot-path benchmarks against the README's targets; run by `make bench`.

Real processes: the mock upstream (20 ms latency, plus a 0 ms one for its ceiling), a
control plane and ONE `keyway proxy`. Every proxy figure is printed beside the same request
sent straight to the same mock in the same run, interleaved so that drifting machine load
hits both alike. Each measurement runs KEYWAY_BENCH_ROUNDS (2) times, throughput at least
3 times; the table shows the best round and the note lists every round. Only correctness is
asserted (status codes, failover happening), never timings. KEYWAY_BENCH_PROFILE=1 adds a
py-spy profile of the proxy under the 50-client load (tests/bench/profile.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import profile, report
from .load import (
    BenchStack,
    Connection,
    StaticServer,
    Timing,
    WrkResult,
    bench_stack,
    ensure_wrk,
    load_average,
    request_bytes,
    wrk,
)
from .report import percentile

LATENCY_MS = 20.0
ROUNDS = int(os.environ.get("KEYWAY_BENCH_ROUNDS", "2"))
# 50 closed-loop clients settle into bursts more or less by chance, which moves the proxy's
# share by ±10 % from run to run; more rounds make the best one representative.
THROUGHPUT_ROUNDS = max(ROUNDS, int(os.environ.get("KEYWAY_BENCH_THROUGHPUT_ROUNDS", "3")))
WRK_SECONDS = float(os.environ.get("KEYWAY_BENCH_WRK_SECONDS", "10"))
CLIENTS = 50
ONE_CLIENT_SAMPLES = 800
SSE_SAMPLES = 300
FAILOVER_SAMPLES = 250
WARMUP = 50

CHAT = "/v1/chat/completions"
OK_KEY = "sk-mock-ok-bench"
# Retry-After: 0 holds the key for no time, so every request meets the 429 first and fails
# over; with a longer Retry-After the key would be tried last for that long (cooldowns).
LIMITED_KEY = "sk-mock-429-0-bench"
_MESSAGES = [{"role": "user", "content": "Say hello in one short sentence, please."}]
BODY = json.dumps(
    {"model": "gpt-4o-mini", "messages": _MESSAGES, "max_tokens": 32}, separators=(",", ":")
).encode()
STREAM_BODY = json.dumps(
    {"model": "gpt-4o-mini", "messages": _MESSAGES, "max_tokens": 32, "stream": True},
    separators=(",", ":"),
).encode()


@dataclass
class Bench:
    run: BenchStack
    token: str
    """Access key routed to OK_KEY."""
    failover_token: str
    """Access key routed to LIMITED_KEY, then OK_KEY."""


def _route(run: BenchStack, key_ids: list[str], name: str) -> str:
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
    _, token = run.stack.add_access_key(run.stack.add_configuration(doc))
    return token


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    if ensure_wrk() is None:
        pytest.skip("wrk is not installed and could not be (apt-get install wrk)")
    with bench_stack(Path(tmp_path_factory.mktemp("proxy-bench")), LATENCY_MS) as run:
        ok = run.stack.add_provider_key("openai", OK_KEY)
        limited = run.stack.add_provider_key("openai", LIMITED_KEY)
        token = _route(run, [ok], "bench direct route")
        failover_token = _route(run, [limited, ok], "bench failover route")
        run.stack.wait_synced()
        print(
            f"\nproxy bench: mock {run.mock} ({LATENCY_MS:g} ms), proxy {run.proxy} "
            f"(pid {run.proxy_pid}), {ROUNDS} rounds, {load_average()}",
            flush=True,
        )
        yield Bench(run, token, failover_token)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def _added(seconds: float) -> str:
    return f"{seconds * 1e3:+.2f} ms"


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs"


def _samples(
    sources: dict[str, Callable[[], Timing]], count: int, check: Callable[[str, Timing], None]
) -> dict[str, list[Timing]]:
    """`count` timings of each source, interleaved; the first WARMUP of each are dropped."""
    out: dict[str, list[Timing]] = {name: [] for name in sources}
    for i in range(WARMUP + count):
        for name, send in sources.items():
            timing = send()
            check(name, timing)
            if i >= WARMUP:
                out[name].append(timing)
    return out


def _p(timings: list[Timing], p: float, attr: str = "total") -> float:
    return percentile([getattr(t, attr) for t in timings], p)


def _rounds_note(values: list[float], fmt: Callable[[float], str]) -> str:
    return "rounds: " + ", ".join(fmt(v) for v in values)


# -- 1. added latency, one client ----------------------------------------------------------


def test_added_latency_one_client(bench: Bench) -> None:
    run = bench.run
    proxied = request_bytes(run.proxy, CHAT, bench.token, BODY)
    direct = request_bytes(run.mock, CHAT, OK_KEY, BODY)

    def check(name: str, t: Timing) -> None:
        assert t.status == 200, (name, t.status, t.body[:300])

    results = []
    load = load_average()
    for _ in range(ROUNDS):
        with Connection(run.proxy) as pc, Connection(run.mock) as dc:
            got = _samples(
                {"proxy": lambda: pc.send(proxied), "direct": lambda: dc.send(direct)},
                ONE_CLIENT_SAMPLES,
                check,
            )
        results.append(got)
        load = load_average()
    added50 = [_p(r["proxy"], 50) - _p(r["direct"], 50) for r in results]
    added99 = [_p(r["proxy"], 99) - _p(r["direct"], 99) for r in results]
    best = min(range(ROUNDS), key=lambda i: added50[i])
    r = results[best]

    table = report.Table(
        f"added latency: 1 client, non-stream chat, {LATENCY_MS:g} ms upstream "
        f"({ONE_CLIENT_SAMPLES} requests each, interleaved; {load})"
    )
    for p, target, limit, added in (
        (50, "≤ 0.5 ms", 0.0005, added50),
        (99, "≤ 2 ms", 0.002, added99),
    ):
        proxy_p, direct_p = _p(r["proxy"], p), _p(r["direct"], p)
        table.add(
            f"p{p}: proxy vs direct",
            f"{_ms(proxy_p)} vs {_ms(direct_p)}: added {_added(proxy_p - direct_p)}",
            target,
            proxy_p - direct_p <= limit,
            _rounds_note(added, _added),
        )
    table.add(
        "mean added",
        _added(
            sum(t.total for t in r["proxy"]) / len(r["proxy"])
            - sum(t.total for t in r["direct"]) / len(r["direct"])
        ),
    )
    table.print()


# -- 2. throughput, 50 clients ---------------------------------------------------------------


def test_throughput(bench: Bench) -> None:
    run = bench.run
    watch = {"proxy": run.proxy_pid, "mock": run.mock_pid}
    pairs: list[tuple[WrkResult, WrkResult]] = []
    ceilings: list[WrkResult] = []
    generator: list[WrkResult] = []
    loads: list[str] = []
    static = StaticServer()
    try:
        for _ in range(THROUGHPUT_ROUNDS):
            loads.append(load_average())
            direct = wrk(
                f"http://{run.mock}{CHAT}",
                OK_KEY,
                BODY,
                connections=CLIENTS,
                seconds=WRK_SECONDS,
                watch=watch,
            )
            proxied = wrk(
                f"http://{run.proxy}{CHAT}",
                bench.token,
                BODY,
                connections=CLIENTS,
                seconds=WRK_SECONDS,
                watch=watch,
            )
            for result in (direct, proxied):
                assert result.requests > 0
                assert result.failures == 0, result.errors
            pairs.append((proxied, direct))
            ceiling = wrk(
                f"http://{run.mock_fast.address}{CHAT}",
                OK_KEY,
                BODY,
                connections=CLIENTS,
                seconds=WRK_SECONDS,
                watch={"mock": run.mock_fast.proc.pid},
            )
            assert ceiling.failures == 0, ceiling.errors
            ceilings.append(ceiling)
            canned = wrk(
                f"http://{static.address}{CHAT}",
                OK_KEY,
                BODY,
                connections=CLIENTS,
                seconds=min(WRK_SECONDS, 5.0),
                watch={"static": static.proc.pid},
            )
            assert canned.failures == 0, canned.errors
            generator.append(canned)
    finally:
        static.stop()

    ratios = [p.rps / d.rps for p, d in pairs]
    best = max(range(THROUGHPUT_ROUNDS), key=lambda i: ratios[i])
    proxied, direct = pairs[best]
    ceiling = max(ceilings, key=lambda c: c.rps)
    canned = max(generator, key=lambda c: c.rps)

    table = report.Table(
        f"throughput: {CLIENTS} clients (wrk -t1), non-stream chat, {LATENCY_MS:g} ms upstream, "
        f"one proxy process, {WRK_SECONDS:g} s per run ({loads[best]})"
    )
    table.add(
        "rps: proxy vs direct",
        f"{proxied.rps:,.0f} vs {direct.rps:,.0f} rps = {ratios[best]:.1%} of direct",
        "≥ 90 %",
        ratios[best] >= 0.9,
        _rounds_note(ratios, lambda v: f"{v:.1%}"),
    )
    table.add(
        "p50: proxy vs direct",
        f"{_ms(proxied.p50)} vs {_ms(direct.p50)}: added {_added(proxied.p50 - direct.p50)}",
    )
    table.add(
        "p99: proxy vs direct",
        f"{_ms(proxied.p99)} vs {_ms(direct.p99)}: added {_added(proxied.p99 - direct.p99)}",
    )
    table.add("non-2xx / socket errors", f"{proxied.failures} / {direct.failures}", "0", True)
    table.add(
        "CPU per request (proxy run)",
        f"proxy {_us(proxied.cpu_per_request('proxy'))}, "
        f"mock {_us(proxied.cpu_per_request('mock'))}, wrk {_us(proxied.wrk_cpu_per_request)}",
        note=f"proxy busy {proxied.cpu['proxy'] / proxied.seconds:.0%} of a core",
    )
    table.add(
        "CPU per request (direct run)",
        f"mock {_us(direct.cpu_per_request('mock'))}, wrk {_us(direct.wrk_cpu_per_request)}",
        note=f"mock busy {direct.cpu['mock'] / direct.seconds:.0%} of a core",
    )
    ideal = CLIENTS / (LATENCY_MS / 1e3)
    table.add(
        "ideal at this latency", f"{ideal:,.0f} rps", note=f"{CLIENTS} clients / {LATENCY_MS:g} ms"
    )
    table.add(
        "mock ceiling: direct, 0 ms latency",
        f"{ceiling.rps:,.0f} rps (p50 {_ms(ceiling.p50)})",
        "≫ direct",
        ceiling.rps > 2 * direct.rps,
        f"mock {_us(ceiling.cpu_per_request('mock'))} CPU/request, "
        + _rounds_note([c.rps for c in ceilings], lambda v: f"{v:,.0f}"),
    )
    table.add(
        "load generator ceiling: wrk vs canned server",
        f"{canned.rps:,.0f} rps",
        "≫ direct",
        canned.rps > 2 * direct.rps,
        f"wrk {_us(canned.wrk_cpu_per_request)} CPU/request, so one core ≈ "
        f"{1 / max(canned.wrk_cpu_per_request, 1e-9):,.0f} rps",
    )
    table.print()


# -- 3. SSE time to first byte -----------------------------------------------------------------


def test_sse_time_to_first_byte(bench: Bench) -> None:
    run = bench.run
    proxied = request_bytes(
        run.proxy, CHAT, bench.token, STREAM_BODY, (("accept", "text/event-stream"),)
    )
    direct = request_bytes(run.mock, CHAT, OK_KEY, STREAM_BODY, (("accept", "text/event-stream"),))

    def check(name: str, t: Timing) -> None:
        assert t.status == 200, (name, t.status, t.body[:300])
        assert t.headers.get("content-type", "").startswith("text/event-stream"), (name, t.headers)
        assert t.body.rstrip().endswith(b"data: [DONE]"), (name, t.body[-200:])

    results = []
    load = load_average()
    for _ in range(ROUNDS):
        with Connection(run.proxy) as pc, Connection(run.mock) as dc:
            got = _samples(
                {"proxy": lambda: pc.send(proxied), "direct": lambda: dc.send(direct)},
                SSE_SAMPLES,
                check,
            )
        results.append(got)
        load = load_average()
    added = [_p(r["proxy"], 50, "first_body") - _p(r["direct"], 50, "first_body") for r in results]
    best = min(range(ROUNDS), key=lambda i: added[i])
    r = results[best]

    table = report.Table(
        f"SSE time to first event: 1 client, stream=true chat, {LATENCY_MS:g} ms upstream "
        f"({SSE_SAMPLES} streams each, interleaved; {load})"
    )
    for p in (50, 99):
        proxy_p, direct_p = _p(r["proxy"], p, "first_body"), _p(r["direct"], p, "first_body")
        table.add(
            f"first event p{p}: proxy vs direct",
            f"{_ms(proxy_p)} vs {_ms(direct_p)}: added {_added(proxy_p - direct_p)}",
            "≤ 1 ms" if p == 50 else "",
            proxy_p - direct_p <= 0.001 if p == 50 else None,
            _rounds_note(added, _added) if p == 50 else "",
        )
    proxy_end, direct_end = _p(r["proxy"], 50), _p(r["direct"], 50)
    table.add(
        "whole stream p50: proxy vs direct",
        f"{_ms(proxy_end)} vs {_ms(direct_end)}: added {_added(proxy_end - direct_end)}",
    )
    table.print()


# -- 4. failover -----------------------------------------------------------------------------------


def test_failover_cost(bench: Bench) -> None:
    run = bench.run
    failover = request_bytes(run.proxy, CHAT, bench.failover_token, BODY)
    proxied = request_bytes(run.proxy, CHAT, bench.token, BODY)
    direct_429 = request_bytes(run.mock, CHAT, LIMITED_KEY, BODY)
    direct_ok = request_bytes(run.mock, CHAT, OK_KEY, BODY)

    def check(name: str, t: Timing) -> None:
        if name == "direct 429":
            assert t.status == 429, (name, t.status)
            return
        assert t.status == 200, (name, t.status, t.body[:300])
        if name == "proxy failover":
            assert t.headers.get("x-keyway-attempts") == "2", t.headers

    results = []
    load = load_average()
    for _ in range(ROUNDS):
        with Connection(run.proxy) as pc, Connection(run.mock) as dc:
            got = _samples(
                {
                    "proxy failover": lambda: pc.send(failover),
                    "proxy": lambda: pc.send(proxied),
                    "direct 429": lambda: dc.send(direct_429),
                    "direct": lambda: dc.send(direct_ok),
                },
                FAILOVER_SAMPLES,
                check,
            )
        results.append(got)
        load = load_average()

    def beyond(r: dict[str, list[Timing]], p: float) -> float:
        # The failover's extra over a normal proxied request, minus the extra upstream trip.
        return _p(r["proxy failover"], p) - _p(r["proxy"], p) - _p(r["direct 429"], p)

    extra = [beyond(r, 50) for r in results]
    best = min(range(ROUNDS), key=lambda i: extra[i])
    r = results[best]
    fo, px, d429, dok = (_p(r[k], 50) for k in ("proxy failover", "proxy", "direct 429", "direct"))

    table = report.Table(
        f"failover: key 1 answers 429 (Retry-After 0), key 2 serves; 1 client, {LATENCY_MS:g} ms "
        f"upstream ({FAILOVER_SAMPLES} requests of each kind, interleaved; {load})"
    )
    table.add("p50 proxy, failing over", _ms(fo), note="x-keyway-attempts: 2 on every response")
    table.add("p50 proxy, no failover", _ms(px))
    table.add("p50 direct 429 / direct 200", f"{_ms(d429)} / {_ms(dok)}")
    table.add(
        "failover cost beyond the extra upstream trip (p50)",
        f"{_added(fo - px - d429)}",
        "≤ 1 ms",
        fo - px - d429 <= 0.001,
        "failover - no failover - direct 429; " + _rounds_note(extra, _added),
    )
    table.add(
        "same at p99",
        _added(beyond(r, 99)),
        note="p99s do not subtract exactly; indicative",
    )
    table.add(
        "failover vs two direct trips (p50)",
        _added(fo - d429 - dok),
        note="includes the proxy's normal per-request overhead",
    )
    table.print()


# -- optional: where the proxy's CPU goes -------------------------------------------------------


def test_proxy_profile(bench: Bench, tmp_path: Path) -> None:
    if not os.environ.get("KEYWAY_BENCH_PROFILE"):
        pytest.skip("set KEYWAY_BENCH_PROFILE=1 (and pip install py-spy) to profile the proxy")
    run = bench.run
    raw = tmp_path / "proxy.raw"
    sampler = profile.record(run.proxy_pid, WRK_SECONDS - 1, raw)
    if sampler is None:
        pytest.skip("py-spy is not installed: .venv/bin/pip install py-spy")
    result = wrk(
        f"http://{run.proxy}{CHAT}",
        bench.token,
        BODY,
        connections=CLIENTS,
        seconds=WRK_SECONDS,
        watch={"proxy": run.proxy_pid},
    )
    sampler.wait(timeout=30)
    assert result.failures == 0, result.errors
    assert raw.exists(), "py-spy wrote nothing (is ptrace allowed?)"
    per_request = result.cpu_per_request("proxy")
    table = report.Table(
        f"proxy CPU by layer under {CLIENTS} clients: {result.rps:,.0f} rps, "
        f"{_us(per_request)} CPU/request (py-spy, on-CPU samples; {load_average()})"
    )
    for name, share in profile.summarise(raw):
        if share >= 0.005:
            table.add(name, f"{share:.1%}", note=f"≈ {_us(share * per_request)} per request")
    table.print()
