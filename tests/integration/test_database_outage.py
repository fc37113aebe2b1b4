"""PostgreSQL stopping and coming back under a running control plane (its own server).

Proxies keep serving their snapshot; admin calls fail with UNAVAILABLE and a clear
message (no partial write: nothing was acknowledged); the control plane stays up and
recovers by itself once the database is back, and the write made then reaches the proxy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from keyway.v1 import provider_keys_pb2 as pk

from tests.postgres import PostgresServer, own_server

from .control_planes import RunningControlPlane
from .proxies import (
    Admin,
    ControlPlaneProcess,
    data_plane_token,
    proxy_running,
    proxy_settings,
    token_sha256,
    wait_until,
)
from .test_replicas import SECRET, replica_settings


@pytest.fixture
def database() -> Iterator[PostgresServer]:
    with own_server() as server:
        yield server


@pytest.fixture
def replica(database: PostgresServer, tmp_path: Path) -> Iterator[RunningControlPlane]:
    process = ControlPlaneProcess(replica_settings(tmp_path, database.fresh_database(), "r1"))
    try:
        yield process.start()
    finally:
        process.stop()


def test_a_database_restart_fails_writes_cleanly_and_recovers_without_a_restart(
    database: PostgresServer, replica: RunningControlPlane
) -> None:
    admin = Admin(replica)
    _, access_token = admin.access_key()
    first = admin.provider_key(SECRET)
    token = data_plane_token(replica.data_dir)
    with proxy_running(proxy_settings(replica.address, token, "steady")) as proxy:
        wait_until(lambda: admin.in_sync("steady"), what="the proxy in sync")
        version = proxy.version()

        database.stop()
        with pytest.raises(grpc.RpcError) as refused:
            admin.provider_key(SECRET + "-while-down")
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "database is unavailable" in (refused.value.details() or "")
        assert SECRET not in (refused.value.details() or "")
        # The proxy serves what it has meanwhile.
        caller = proxy.table().callers[token_sha256(access_token)]
        assert first in caller.account.keys
        assert proxy.version() == version
        assert proxy.get("/readyz").status_code == 200

        database.start()

        def written() -> str | None:
            try:
                return admin.provider_key(SECRET + "-after", name="after")
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                return None

        second = wait_until(written, timeout=30, what="a write once the database is back")

        def served() -> bool:
            caller = proxy.table().callers.get(token_sha256(access_token))
            return caller is not None and second in caller.account.keys

        wait_until(served, timeout=15, what="the write made after the restart in the proxy")
        listed = admin.provider_keys.ListProviderKeys(
            pk.ListProviderKeysRequest(), metadata=admin.md
        ).provider_keys
        # Nothing from the refused write; both acknowledged ones.
        assert sorted(k.name for k in listed) == sorted(["after", "key"])
