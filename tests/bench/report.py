"""Printing benchmark results: one aligned table per benchmark, each figure beside its target.

Benchmarks print and never assert timings; `met` only labels a row against its target.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from google.protobuf.internal import api_implementation


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); with 50 samples p99 is the maximum."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[min(len(ordered), int(rank)) - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.2f} µs"


def mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.1f} MiB"


def machine() -> str:
    cpus = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    return (
        f"machine: {platform.machine()}, nproc={usable} (cpu_count={cpus}), "
        f"Python {platform.python_version()} ({sys.implementation.name}), "
        f"protobuf backend {api_implementation.Type()}, SQLite {sqlite3.sqlite_version}"
    )


@dataclass(frozen=True, slots=True)
class _Row:
    what: str
    value: str
    target: str
    verdict: str
    note: str


@dataclass
class Table:
    title: str
    rows: list[_Row] = field(default_factory=list)

    def add(
        self,
        what: str,
        value: str,
        target: str = "",
        met: bool | None = None,
        note: str = "",
    ) -> None:
        verdict = "" if met is None else ("ok" if met else "MISSED")
        self.rows.append(_Row(what, value, target, verdict, note))

    def render(self) -> str:
        headers = ("what", "measured", "target", "", "note")
        cells = [headers, *((r.what, r.value, r.target, r.verdict, r.note) for r in self.rows)]
        widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in cells
        ]
        rule = "-" * max(len(line) for line in lines)
        return "\n".join([f"\n== {self.title} ==", lines[0], rule, *lines[1:]])

    def print(self) -> None:
        print(self.render(), flush=True)
