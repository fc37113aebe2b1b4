"""Hostile inputs (`make bench`): what one request or one tenant costs everyone else.

Real processes, as in test_proxy_bench.py. Two tables:

1. Body size vs the proxy's peak RSS growth and its worst event-loop stall. Each case runs
   on a proxy process of its own (RSS only grows, so a shared one would hide later cases),
   while a second connection polls `/healthz` back to back: the longest of those round
   trips is the stall every other request on that proxy would have seen.
2. Tenant A's latency while tenant B floods: B parks more requests than the old shared
   upstream pool had connections on a slow upstream, then A calls a fast one.

Only correctness is asserted (statuses), never timings. KEYWAY_BENCH_HOSTILE_SIZES_MIB
sets the body sizes (default 1,8,30), KEYWAY_BENCH_FLOOD the size of B's flood (1100).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from keyway.v1 import accounts_pb2 as acc
from keyway.v1 import accounts_pb2_grpc as acc_grpc
from keyway.v1 import admin_api_keys_pb2 as adk
from keyway.v1 import admin_api_keys_pb2_grpc as adk_grpc

from tests.e2e.stack import Process, Stack, running_stack, wait_until

from . import report
from .load import Connection, load_average, request_bytes, route
from .report import percentile

CHAT = "/v1/chat/completions"
SIZES_MIB = [
    float(x) for x in os.environ.get("KEYWAY_BENCH_HOSTILE_SIZES_MIB", "1,8,30").split(",")
]
FLOOD = int(os.environ.get("KEYWAY_BENCH_FLOOD", "1100"))
MIB = 1 << 20


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(Path(tmp_path_factory.mktemp("hostile-bench"))) as s:
        yield s


@contextmanager
def proxy_of_its_own(stack: Stack, name: str, *flags: str) -> Iterator[Process]:
    args = list(stack.proxy.args)
    args[args.index("--node-id") + 1] = f"bench-{name}"
    args[args.index("--cache-dir") + 1] = str(stack.data_dir / f"cache-{name}")
    process = Process(f"proxy {name}", [*args, *flags])
    try:
        process.wait_listening()

        def ready() -> bool:
            return httpx.get(f"http://{process.address}/readyz", timeout=5).status_code == 200

        wait_until(ready, timeout=20, what=f"proxy {name} to load a snapshot")
        stack.wait_synced(timeout=20)
        yield process
    finally:
        process.stop()


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class Watch:
    """Samples a process's RSS, and the round trip of `/healthz` on its own connection."""

    def __init__(self, pid: int, address: str) -> None:
        self.pid = pid
        self.baseline = rss_bytes(pid)
        self.peak = self.baseline
        self.stalls: list[tuple[float, float]] = []
        """(round trip, when it started, in seconds since the watch began)."""
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._probe = Connection(address)
        self._threads = [
            threading.Thread(target=self._sample, daemon=True),
            threading.Thread(target=self._poll, daemon=True),
        ]

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            time.sleep(0.002)

    def _poll(self) -> None:
        request = b"GET /healthz HTTP/1.1\r\nhost: bench\r\n\r\n"
        while not self._stop.is_set():
            at = time.perf_counter() - self.started
            timing = self._probe.send(request)
            assert timing.status == 200
            self.stalls.append((timing.total, at))
            time.sleep(0.002)

    def __enter__(self) -> Watch:
        for thread in self._threads:
            thread.start()
        time.sleep(0.05)  # a few probes before the request starts
        return self

    def __exit__(self, *_: object) -> None:
        time.sleep(0.05)
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        self._probe.close()


# -- bodies ---------------------------------------------------------------------------------


def vision(size: int) -> bytes:
    head = b'{"model":"openai:gpt-4o-mini","messages":[{"role":"user","content":['
    head += b'{"type":"image_url","image_url":{"url":"data:image/png;base64,'
    tail = b'"}}]}]}'
    data = base64.b64encode(os.urandom(max(0, size - len(head) - len(tail)) * 3 // 4))
    return head + data + tail


def brackets(size: int) -> bytes:
    head = b'{"model":"openai:gpt-4o-mini","messages":['
    return head + b"[]," * ((size - len(head)) // 3 - 1) + b"[]]}"


def fallbacks(size: int) -> bytes:
    models = [f"openai:gpt-4o-mini-{i}" for i in range(10)]
    doc = {"model": "openai:gpt-4o-mini", "models": models}
    head = json.dumps(doc)[:-1].encode() + b', "messages": [{"role":"user","content":"'
    tail = b'"}]}'
    return head + b"x" * max(0, size - len(head) - len(tail)) + tail


@dataclass
class Case:
    name: str
    size: int
    status: int
    seconds: float
    growth: int
    stall: float
    stall_at: float
    p99: float
    probes: int


def run_case(stack: Stack, token: str, name: str, body: bytes) -> Case:
    with proxy_of_its_own(stack, name.replace(" ", "-")) as proxy:
        pid = proxy.proc.pid
        with Connection(proxy.address) as client, Watch(pid, proxy.address) as watch:
            started = time.perf_counter()
            timing = client.send(request_bytes(proxy.address, CHAT, token, body))
            seconds = time.perf_counter() - started
            offset = started - watch.started
        worst, at = max(watch.stalls)
        return Case(
            name,
            len(body),
            timing.status,
            seconds,
            watch.peak - watch.baseline,
            worst,
            at - offset,
            percentile([s for s, _ in watch.stalls], 99),
            len(watch.stalls),
        )


def test_hostile_bodies(stack: Stack) -> None:
    ok = route(stack, [stack.add_provider_key("openai", "sk-mock-ok-hostile")], "hostile ok")
    failing = route(stack, [stack.add_provider_key("openai", "sk-mock-500-hostile")], "hostile 500")
    stack.wait_synced()
    cases: list[Case] = []
    for mib in SIZES_MIB:
        size = int(mib * MIB)
        for label, make, token, expected in (
            ("base64 image, provider:model", vision, ok, 200),
            ("[] tokens", brackets, ok, 200),
        ):
            case = run_case(stack, token, f"{label} {mib:g} MiB", make(size))
            assert case.status in (expected, 413), case
            cases.append(case)
    size = int(8 * MIB)
    case = run_case(stack, failing, "10 fallbacks, failing upstream, 8 MiB", fallbacks(size))
    assert case.status in (502, 413), case
    cases.append(case)

    table = report.Table(
        f"hostile bodies: proxy RSS growth and worst /healthz round trip during one request "
        f"(fresh proxy per case; {load_average()})"
    )
    for c in cases:
        table.add(
            c.name,
            f"{c.status} in {c.seconds:.2f} s: RSS +{report.mib(c.growth)} "
            f"({c.growth / c.size:.1f}x the body), worst /healthz {c.stall * 1e3:.0f} ms",
            "≤ small multiple, ≤ ~50 ms",
            note=f"worst at +{c.stall_at:.2f} s; p99 {c.p99 * 1e3:.0f} ms of {c.probes} probes",
        )
    table.print()


# -- a flooding tenant -----------------------------------------------------------------------


def _second_account_token(stack: Stack, value: str) -> str:
    """An access key of a new account, routed to one provider key with `value`."""
    operator = (
        ("authorization", f"Bearer {(stack.data_dir / 'operator.token').read_text().strip()}"),
    )
    account = (
        acc_grpc.AccountServiceStub(stack.channel)
        .CreateAccount(
            acc.CreateAccountRequest(account=acc.Account(display_name="tenant a")),
            metadata=operator,
        )
        .account
    )
    admin_token = (
        adk_grpc.AdminApiKeyServiceStub(stack.channel)
        .CreateAdminApiKey(
            adk.CreateAdminApiKeyRequest(
                account_id=account.id, admin_api_key=adk.AdminApiKey(name="a")
            ),
            metadata=operator,
        )
        .token
    )
    tenant = Stack(
        stack.data_dir, stack.mock, stack.control_plane, stack.proxy, stack.channel, admin_token
    )
    token = route(tenant, [tenant.add_provider_key("openai", value)], "tenant a")
    tenant.wait_synced()  # the tenant's write too, not only the default account's
    return token


def _latencies(address: str, token: str, count: int) -> list[float]:
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    request = request_bytes(address, CHAT, token, body.encode())
    out = []
    with Connection(address) as connection:
        for _ in range(count):
            timing = connection.send(request)
            assert timing.status == 200, timing.body[:300]
            out.append(timing.total)
    return out


def test_tenant_a_while_tenant_b_floods(stack: Stack) -> None:
    slow = stack.add_provider_key("openai", "sk-mock-slow-15000-flood")
    # Spread over five access keys, so that the per-account cap, not the per-key one, binds.
    tokens_b = [route(stack, [slow], f"b{i}") for i in range(5)]
    token_a = _second_account_token(stack, "sk-mock-ok-tenant-a")
    stack.wait_synced()
    with proxy_of_its_own(stack, "flood") as proxy:
        host, _, port = proxy.address.rpartition(":")
        alone = _latencies(proxy.address, token_a, 30)
        body = json.dumps({"model": "gpt-4o-mini", "messages": []}).encode()
        requests = [request_bytes(proxy.address, CHAT, token, body) for token in tokens_b]
        flood: list[socket.socket] = []
        try:
            for i in range(FLOOD):
                sock = socket.create_connection((host, int(port)), timeout=30)
                sock.sendall(requests[i % len(requests)])
                flood.append(sock)
            time.sleep(1.0)  # the flood reaches the upstream (or its caps)
            first = time.perf_counter()
            during = _latencies(proxy.address, token_a, 1)
            first_latency = time.perf_counter() - first
            during += _latencies(proxy.address, token_a, 29)
            refused = 0
            for sock in flood:
                sock.settimeout(0.001)
                with suppress(OSError):
                    refused += sock.recv(64).startswith(b"HTTP/1.1 429")
        finally:
            for sock in flood:
                sock.close()
    table = report.Table(
        f"tenant A's latency while tenant B parks {FLOOD} requests (5 access keys) on a slow "
        f"upstream (one proxy process; {load_average()})"
    )
    table.add(
        "A alone, p50 / max", f"{percentile(alone, 50) * 1e3:.1f} / {max(alone) * 1e3:.1f} ms"
    )
    table.add(
        "A during B's flood: first request",
        f"{first_latency * 1e3:.1f} ms",
        "unchanged",
        note=f"then p50 {percentile(during, 50) * 1e3:.1f} ms, max {max(during) * 1e3:.1f} ms",
    )
    table.add("B's requests refused at once (429)", f"{refused} of {FLOOD}")
    table.print()
