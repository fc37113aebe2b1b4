"""Shared fixtures for the benchmarks: the machine banner and the scale data set."""

from __future__ import annotations

import time

import pytest

from tests.postgres import fresh_url

from . import report, scale


@pytest.fixture(scope="session", autouse=True)
def _banner() -> None:
    print(f"\n{report.machine()}", flush=True)


@pytest.fixture(scope="session")
def scale_dataset(tmp_path_factory: pytest.TempPathFactory) -> scale.Dataset:
    """Built once per session; tests that start a control plane on it copy it first."""
    started = time.perf_counter()
    dataset = scale.build(tmp_path_factory.mktemp("scale") / "data")
    elapsed = time.perf_counter() - started
    s = scale.FULL
    print(
        f"\nscale data set: {s.accounts:,} accounts, {s.provider_keys_total:,} provider keys, "
        f"{s.access_keys_total:,} access keys, {s.configurations_total:,} configurations "
        f"(revision {dataset.revision:,}) built through the Store in {elapsed:.1f} s",
        flush=True,
    )
    return dataset


@pytest.fixture(scope="session")
def pg_scale_dataset(tmp_path_factory: pytest.TempPathFactory) -> scale.PostgresDataset:
    """The scale data set on the test session's PostgreSQL server (a schema of its own)."""
    started = time.perf_counter()
    dataset = scale.build_postgres(fresh_url(), tmp_path_factory.mktemp("pg-scale-keys"))
    print(
        f"\nscale data set on PostgreSQL (revision {dataset.revision:,}) built through the "
        f"Store in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return dataset
