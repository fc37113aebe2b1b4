"""Snapshot benchmarks at the README's target scale; run by `make bench`.

They print each figure beside its target and never assert timings: only correctness
(the snapshot validates, hashes are deterministic, every proxy converges).
"""

from __future__ import annotations

import gc
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from keyway.v1 import access_keys_pb2 as ak
from keyway.v1 import access_keys_pb2_grpc as ak_grpc
from keyway.v1 import snapshot_pb2 as spb

from control_plane.domain.tokens import TokenKind, mint
from control_plane.server import ControlPlane, Settings
from control_plane.snapshots import publisher
from control_plane.snapshots.assembly import Assembly
from control_plane.snapshots.compiler import Compiled, compile_snapshot, serialise
from control_plane.store import postgres
from control_plane.store.port import SnapshotSource
from control_plane.store.records import AccessKeyFields
from control_plane.store.relational.snapshot_reader import SnapshotReader
from control_plane.store.sqlite import open_store
from control_plane.store.sqlite.database import reader_session
from data_plane.routing.apply import Applied, apply
from data_plane.routing.table import build
from data_plane.shared.validate import validate
from tests.integration.control_planes import BackgroundLoop, start_control_plane, stop_control_plane
from tests.integration.proxies import full_state
from tests.integration.stores import BACKENDS
from tests.postgres import fresh_url

from . import report, scale
from .fleet import Fleet
from .report import mib, ms, percentile, us

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 5


def _timed(fn: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def _summary(samples: list[float], fmt: Callable[[float], str] = ms) -> str:
    return f"median {fmt(statistics.median(samples))}, max {fmt(max(samples))}"


@pytest.fixture(scope="session")
def scale_snapshot(scale_dataset: scale.Dataset) -> Compiled:
    reader = SnapshotReader(reader_session(scale_dataset.path), scale_dataset.sealer)
    try:
        return publisher.build(full_state(reader))
    finally:
        reader.close()


# -- control plane: compile ------------------------------------------------------------


@contextmanager
def _scale_reader(
    backend: str, request: pytest.FixtureRequest
) -> Iterator[tuple[SnapshotSource, int]]:
    """A snapshot reader on the scale data set in `backend`, and its revision."""
    if backend == "sqlite":
        dataset: scale.Dataset = request.getfixturevalue("scale_dataset")
        reader = SnapshotReader(reader_session(dataset.path), dataset.sealer)
        try:
            yield reader, dataset.revision
        finally:
            reader.close()
        return
    pg: scale.PostgresDataset = request.getfixturevalue("pg_scale_dataset")
    store = postgres.open_store(pg.url, pg.sealer)
    try:
        yield store.snapshots, pg.revision
    finally:
        store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_compile_at_scale(backend: str, request: pytest.FixtureRequest) -> None:
    with _scale_reader(backend, request) as (reader, revision):
        _compile_at_scale(backend, reader, revision)


def _compile_at_scale(backend: str, reader: SnapshotSource, revision: int) -> None:
    stages: dict[str, list[float]] = {"read": [], "compile": [], "validate": [], "serialise": []}
    totals: list[float] = []
    hashes: set[str] = set()
    size = 0
    for _ in range(ROUNDS):
        gc.collect()
        t_read, state = _timed(partial(full_state, reader))
        t_compile, snapshot = _timed(partial(compile_snapshot, state))
        t_validate, problems = _timed(partial(validate, snapshot))
        assert problems == []
        t_serialise, compiled = _timed(partial(serialise, snapshot))
        for name, seconds in zip(stages, (t_read, t_compile, t_validate, t_serialise), strict=True):
            stages[name].append(seconds)
        totals.append(t_read + t_compile + t_validate + t_serialise)
        hashes.add(compiled.sha256)
        size = len(compiled.payload)
        assert compiled.version == revision
    assert len(hashes) == 1, "same store state must give the same bytes"

    s = scale.FULL
    table = report.Table(
        f"compile: {s.accounts:,} accounts, {s.provider_keys_total:,} provider keys, "
        f"{s.access_keys_total:,} access keys, {s.configurations_total:,} configurations "
        f"on {backend} ({ROUNDS} rounds)"
    )
    table.add(
        "read every account (SQL + unseal 10k keys)", _summary(stages["read"]), note="one read tx"
    )
    table.add("compile_snapshot", _summary(stages["compile"]))
    table.add("validate", _summary(stages["validate"]))
    table.add("serialise (deterministic) + sha256", _summary(stages["serialise"]))
    table.add(
        "compile total",
        _summary(totals),
        "≤ 1 s",
        max(totals) <= 1.0,
    )
    table.add("snapshot size", f"{size:,} bytes ({mib(size)})")
    table.print()


def test_one_account_changed_at_scale(scale_dataset: scale.Dataset, tmp_path: Path) -> None:
    """What a typical write costs: one account recompiled, and a proxy applying the
    result on top of the table it serves (every other account reused as it is)."""
    data_dir = tmp_path / "data"
    shutil.copytree(scale_dataset.path.parent, data_dir)
    db_path = data_dir / "keyway.db"
    reader = SnapshotReader(reader_session(db_path), scale_dataset.sealer)
    assembly = Assembly({}, allow_private_upstreams=False, account_budget=16 << 20)
    try:
        first = assembly.update(reader.read(assembly.known()), now_us=1)
        served = apply(first.version, first.sha256, first.payload)
        assert isinstance(served, Applied)
        table_now = served.table
        store = open_store(db_path, scale_dataset.sealer)
        account_id = next(iter(table_now.accounts))
        compile_times: list[float] = []
        apply_times: list[float] = []
        full_times: list[float] = []
        for i in range(ROUNDS):
            store.create_access_key(
                account_id, fields=AccessKeyFields(name=f"bench-{i}"), token=mint(TokenKind.ACCESS)
            )
            gc.collect()
            t_compile, compiled = _timed(
                lambda: assembly.update(reader.read(assembly.known()), now_us=2)
            )
            envelope = (compiled.version, compiled.sha256, compiled.payload)
            t_apply, result = _timed(partial(apply, *envelope, table_now))
            assert isinstance(result, Applied)
            t_full, fresh = _timed(partial(apply, *envelope))
            assert isinstance(fresh, Applied)
            assert fresh.table == result.table
            table_now = result.table
            compile_times.append(t_compile)
            apply_times.append(t_apply)
            full_times.append(t_full)
        store.close()
    finally:
        reader.close()
    table = report.Table(
        f"one account changed, {scale.FULL.accounts:,} accounts in the snapshot ({ROUNDS} rounds)"
    )
    table.add(
        "control plane: read + compile the changed account + assemble", _summary(compile_times)
    )
    table.add("proxy: apply on top of the served table", _summary(apply_times))
    table.add("proxy: the same snapshot applied from scratch", _summary(full_times))
    table.print()


# -- proxy: apply, memory, request path during a swap ------------------------------------


def test_proxy_apply_at_scale(scale_snapshot: Compiled) -> None:
    c = scale_snapshot
    stages: dict[str, list[float]] = {"hash": [], "parse": [], "validate": [], "build": []}
    totals: list[float] = []
    for _ in range(ROUNDS):
        gc.collect()
        t_hash, digest = _timed(lambda: hashlib.sha256(c.payload).hexdigest())
        assert digest == c.sha256
        snapshot = spb.Snapshot()
        t_parse, _ = _timed(partial(snapshot.ParseFromString, c.payload))
        t_validate, problems = _timed(partial(validate, snapshot))
        assert problems == []
        t_build, _ = _timed(partial(build, snapshot, c.sha256))
        for name, seconds in zip(stages, (t_hash, t_parse, t_validate, t_build), strict=True):
            stages[name].append(seconds)
        gc.collect()
        t_apply, result = _timed(lambda: apply(c.version, c.sha256, c.payload))
        assert isinstance(result, Applied)
        assert len(result.table.callers) == scale.FULL.access_keys_total
        totals.append(t_apply)

    table = report.Table(f"proxy apply of the scale snapshot ({ROUNDS} rounds)")
    table.add("sha256 over the payload", _summary(stages["hash"]))
    table.add("parse (protobuf)", _summary(stages["parse"]))
    table.add("validate", _summary(stages["validate"]))
    table.add("build RoutingTable", _summary(stages["build"]))
    table.add("apply() total", _summary(totals), "≤ 200 ms", max(totals) <= 0.2)
    table.print()


def _proxy_process(mode: str, c: Compiled, tmp_path: Path, *extra: str) -> dict[str, Any]:
    payload = tmp_path / "snapshot.bin"
    payload.write_bytes(c.payload)
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.bench.proxy_process",
            mode,
            str(payload),
            str(c.version),
            c.sha256,
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def test_proxy_memory_at_scale(scale_snapshot: Compiled, tmp_path: Path) -> None:
    c = scale_snapshot
    snapshot = spb.Snapshot()
    snapshot.ParseFromString(c.payload)
    gc.collect()
    tracemalloc.start()
    try:
        routing = build(snapshot, c.sha256)
        gc.collect()
        table_bytes, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(routing.callers) == scale.FULL.access_keys_total
    del routing, snapshot

    rss = _proxy_process("memory", c, tmp_path)
    table = report.Table("proxy memory with the scale snapshot (fresh proxy process)")
    table.add("RoutingTable (tracemalloc, Python objects)", mib(table_bytes))
    table.add("proxy RSS after imports, no snapshot", mib(rss["baseline"]))
    table.add(
        "proxy RSS serving the snapshot",
        mib(rss["serving"]),
        "≤ 100 MB",
        rss["serving"] <= 100e6,
        f"+{mib(rss['serving'] - rss['baseline'])} over baseline",
    )
    table.add(
        "proxy RSS at a swap (old + new table)",
        mib(rss["during_swap"]),
        "≤ 100 MB",
        rss["during_swap"] <= 100e6,
    )
    table.add("proxy RSS after the swap", mib(rss["after_swap"]))
    table.add("proxy peak RSS", mib(rss["peak"]), "≤ 100 MB", rss["peak"] <= 100e6)
    table.print()


def _lookup_row(stats: dict[str, Any]) -> str:
    return (
        f"p50 {us(stats['p50_ns'] / 1e9)}, p99 {us(stats['p99_ns'] / 1e9)}, "
        f"p99.9 {us(stats['p999_ns'] / 1e9)}, max {ms(stats['max_ns'] / 1e9)}; "
        f"{stats['per_second'] / 1e3:,.0f}k/s"
    )


def _pauses(pauses: list[float]) -> str:
    if not pauses:
        return "no full GC"
    return f"{len(pauses)} full GCs, longest {ms(max(pauses))}"


def test_request_lookup_during_swap(
    scale_dataset: scale.Dataset, scale_snapshot: Compiled, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("\n".join(scale_dataset.tokens))
    result = _proxy_process("swap", scale_snapshot, tmp_path, str(tokens))
    before, during = result["before"], result["during"]
    assert result["swaps"] > 0

    table = report.Table(
        "request path in a proxy process: sha256(token) + callers lookup + Caller.key_ids"
    )
    table.add(
        "before (1 s, no swap)",
        _lookup_row(before),
        note=f"{before['over_1ms']} lookups > 1 ms; {_pauses(result['gen2_before'])}",
    )
    table.add(
        f"during {result['swaps']} back-to-back applies + swaps on a worker thread",
        _lookup_row(during),
        "p99 unchanged",
        during["p99_ns"] <= 2 * before["p99_ns"],
        f"{during['over_1ms']} lookups > 1 ms; {_pauses(result['gen2_during'])}; "
        f"apply {_summary(result['apply_seconds'])} while contended",
    )
    table.print()


# -- propagation: admin write -> every proxy serving it ------------------------------------


@dataclass
class _Harness:
    cp: ControlPlane
    address: str
    admin_token: str
    commits: dict[int, float]
    """Store revision -> wall-clock commit time."""


@pytest.fixture
def harness_factory() -> Iterator[Callable[..., _Harness]]:
    started: list[tuple[ControlPlane, BackgroundLoop]] = []

    def start(data_dir: Path, **settings: Any) -> _Harness:
        cp, loop = start_control_plane(
            Settings(listen="127.0.0.1:0", data_dir=data_dir, **settings)
        )
        started.append((cp, loop))
        commits: dict[int, float] = {}

        def committed(revision: int) -> None:
            commits.setdefault(revision, time.time())

        cp.store.on_commit(committed)
        return _Harness(
            cp,
            f"127.0.0.1:{cp.port}",
            _token(data_dir, "admin.token"),
            commits,
        )

    yield start
    for cp, loop in started:
        stop_control_plane(cp, loop)


def _token(data_dir: Path, name: str) -> str:
    # A second replica of a shared database finds the tokens in the first one's directory.
    found = data_dir / name
    if not found.exists():
        found = data_dir.parent / "r1" / name
    return found.read_text().strip()


def _propagate(
    h: _Harness,
    proxies: int,
    writes: int,
    *,
    spacing: float,
    wait_each: bool,
    label: str,
    converge_timeout: float,
    replicas: Sequence[str] = (),
) -> None:
    data_plane_token = _token(h.cp.settings.data_dir, "data-plane.token")
    fleet = Fleet(replicas or h.address, data_plane_token, proxies)
    channel = grpc.insecure_channel(h.address)
    stub = ak_grpc.AccessKeyServiceStub(channel)
    metadata = (("authorization", f"Bearer {h.admin_token}"),)
    try:
        fleet.start()
        initial = h.cp.store.revision()
        assert fleet.wait_for(initial, converge_timeout), fleet.versions()
        published_before = h.cp.publisher.published_count

        revisions: list[int] = []
        last_token = ""
        next_at = time.perf_counter()
        for i in range(writes):
            time.sleep(max(0.0, next_at - time.perf_counter()))
            next_at = time.perf_counter() + spacing
            response = stub.CreateAccessKey(
                ak.CreateAccessKeyRequest(access_key=ak.AccessKey(name=f"bench-{i}")),
                metadata=metadata,
                timeout=30,
            )
            last_token = response.token
            revision = h.cp.store.revision()
            revisions.append(revision)
            if wait_each:
                assert fleet.wait_for(revision, converge_timeout), fleet.versions()
        final = revisions[-1]
        assert fleet.wait_for(final, converge_timeout), fleet.versions()
        last_hash = hashlib.sha256(last_token.encode()).hexdigest()
        for state in fleet.states:
            assert state.table is not None
            assert last_hash in state.table.callers, "every proxy serves the last write"
    finally:
        fleet.close()
        channel.close()

    to_published: list[float] = []
    to_first: list[float] = []
    to_all: list[float] = []
    for revision in revisions:
        committed = h.commits[revision]
        all_at = fleet.all_serving(revision)
        first_at = fleet.first_serving(revision)
        assert all_at is not None
        assert first_at is not None
        generated = min(
            t for v, t in fleet.states[0].generated_at.items() if v >= revision and t > 0
        )
        to_published.append(generated - committed)
        to_first.append(first_at - committed)
        to_all.append(all_at - committed)

    def dist(samples: list[float]) -> str:
        return ", ".join(
            f"{name} {ms(percentile(samples, p))}"
            for name, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))
        )

    snapshots = h.cp.publisher.published_count - published_before
    table = report.Table(label)
    table.add("commit → snapshot compiled", dist(to_published), note="read + compile + publish")
    table.add("commit → first proxy serving", dist(to_first))
    table.add(
        f"commit → all {proxies} proxies serving" if proxies > 1 else "commit → the proxy serving",
        dist(to_all),
        "p99 ≤ 250 ms",
        percentile(to_all, 99) <= 0.25,
        f"{writes} writes, {snapshots} snapshots published",
    )
    table.print()


def test_propagation_20_proxies(
    harness_factory: Callable[[Path], _Harness], tmp_path: Path
) -> None:
    h = harness_factory(tmp_path / "data")
    _propagate(
        h,
        proxies=20,
        writes=50,
        spacing=0.1,
        wait_each=False,
        label="propagation: admin write (CreateAccessKey) → 20 proxies, small store, "
        "writes 100 ms apart",
        converge_timeout=30,
    )


def test_propagation_20_proxies_over_2_replicas(
    harness_factory: Callable[..., _Harness], tmp_path: Path
) -> None:
    url = fresh_url()
    shared = {"database_url": url, "master_key_file": tmp_path / "keys" / "master.keys"}
    first = harness_factory(tmp_path / "r1", **shared)
    second = harness_factory(tmp_path / "r2", **shared)
    _propagate(
        first,
        proxies=20,
        writes=50,
        spacing=0.1,
        wait_each=False,
        label="propagation across replicas: admin write through replica 1 → 20 proxies, "
        "10 on each of 2 replicas (PostgreSQL, small store), writes 100 ms apart",
        converge_timeout=30,
        replicas=(first.address, second.address),
    )


@pytest.mark.parametrize("proxies", [1, 20])
@pytest.mark.parametrize("backend", BACKENDS)
def test_propagation_at_scale(
    harness_factory: Callable[..., _Harness],
    request: pytest.FixtureRequest,
    tmp_path: Path,
    proxies: int,
    backend: str,
) -> None:
    data_dir = tmp_path / "data"
    if backend == "sqlite":
        dataset: scale.Dataset = request.getfixturevalue("scale_dataset")
        shutil.copytree(dataset.path.parent, data_dir)
        h = harness_factory(data_dir)
    else:
        # Each run adds its writes to the one PostgreSQL data set (runs after the compile).
        pg: scale.PostgresDataset = request.getfixturevalue("pg_scale_dataset")
        # One data dir for every run on it: the first start writes the tokens there.
        home = pg.key_file.parent
        h = harness_factory(home, database_url=pg.url, master_key_file=pg.key_file)
    _propagate(
        h,
        proxies=proxies,
        writes=5,
        spacing=0.2,
        wait_each=True,
        label=f"propagation at scale on {backend}: admin write → "
        f"{proxies} prox{'y' if proxies == 1 else 'ies'} in this one process (one GIL), "
        "each write awaited",
        converge_timeout=60,
    )
