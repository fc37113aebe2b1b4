"""`keyway admin data-planes` and `data-plane-credentials` against a real control plane."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from control_plane.domain import tokens
from data_plane.snapshot.client import Backoff, Identity, SnapshotClient
from data_plane.snapshot.state import SnapshotState

from .cli_runner import TOKEN_LINE, Cli, ok, runner
from .control_planes import BackgroundLoop, RunningControlPlane

HEADER = (
    "NODE",
    "POOL",
    "STATE",
    "APPLIED",
    "LATEST",
    "LAST SEEN",
    "CONTROL PLANE",
    "LAST REJECTION",
)


@pytest.fixture
def cli(control_plane: RunningControlPlane, capsys: pytest.CaptureFixture[str]) -> Cli:
    """The CLI as the operator."""
    return runner(control_plane, capsys, control_plane.operator_token)


@contextlib.contextmanager
def proxy(address: str, token: str, node_id: str, pool: str = "default") -> Iterator[SnapshotState]:
    """A proxy's snapshot client on its own event loop; stopped (disconnected) on exit."""
    state = SnapshotState()
    client = SnapshotClient(
        address,
        token,
        Identity(node_id=node_id, pool=pool, build_version="test"),
        state,
        backoff=Backoff(initial=0.05, maximum=0.2),
    )
    background = BackgroundLoop(f"proxy-{node_id}")

    async def start() -> asyncio.Task[None]:
        return asyncio.create_task(client.run(), name="snapshot-client")

    task = background.run(start())
    try:
        yield state
    finally:

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await asyncio.get_running_loop().shutdown_default_executor()

        background.run(stop())
        background.close()


def data_plane_token(control_plane: RunningControlPlane) -> str:
    return (control_plane.data_dir / "data-plane.token").read_text().strip()


def wait_for_rows(
    cli: Cli, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 10
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows: list[dict[str, Any]] = ok(cli("data-planes", "list", "--json")).json()
        if predicate(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def table_rows(out: str) -> list[list[str]]:
    """Splits a rendered table on runs of 2+ spaces; the header is row 0."""
    return [re.split(r"\s{2,}", line.strip()) for line in out.strip().splitlines()]


# -- data-planes list ----------------------------------------------------------------------


def test_no_proxies_yet(cli: Cli) -> None:
    assert table_rows(ok(cli("data-planes", "list")).out) == [list(HEADER)]
    assert ok(cli("data-planes", "list", "--json")).json() == []


def test_a_proxy_in_sync_then_disconnected(cli: Cli, control_plane: RunningControlPlane) -> None:
    latest = control_plane.server.store.revision()
    with proxy(control_plane.address, data_plane_token(control_plane), "edge-1", "eu") as state:
        rows = wait_for_rows(cli, lambda rows: bool(rows) and rows[0]["state"] == "IN_SYNC")
        assert state.table is not None
        assert state.table.version == latest
        [row] = rows
        assert row["nodeId"] == "edge-1"
        assert row["pool"] == "eu"
        assert row["buildVersion"] == "test"
        assert row["state"] == "IN_SYNC"
        assert row["appliedVersion"] == str(latest)  # int64 is a string in proto3 JSON
        assert row["latestVersion"] == str(latest)
        assert row["appliedHash"] == state.table.sha256
        assert "lastRejection" not in row

        table = table_rows(ok(cli("data-planes", "list")).out)
        assert table[0] == list(HEADER)
        assert table[1][:5] == ["edge-1", "eu", "IN_SYNC", str(latest), str(latest)]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", table[1][5])
        # The replica holding the stream: this control plane, HOST:PORT by default.
        assert table[1][6] == control_plane.server.replica_id
        assert table[1][6].endswith(f":{control_plane.server.port}")
        assert row["controlPlane"] == control_plane.server.replica_id
        assert table[1][7] == "-"

    rows = wait_for_rows(cli, lambda rows: rows[0]["state"] == "DISCONNECTED")
    assert rows[0]["state"] == "DISCONNECTED"
    assert table_rows(ok(cli("data-planes", "list")).out)[1][2] == "DISCONNECTED"


def test_proxies_are_listed_by_node_id_and_follow_new_versions(
    cli: Cli, control_plane: RunningControlPlane
) -> None:
    token = data_plane_token(control_plane)
    with (
        proxy(control_plane.address, token, "node-b"),
        proxy(control_plane.address, token, "node-a"),
    ):
        rows = wait_for_rows(cli, lambda rows: [r["state"] for r in rows] == ["IN_SYNC"] * 2)
        assert [r["nodeId"] for r in rows] == ["node-a", "node-b"]
        # A write publishes a new version; both proxies follow it.
        ok(
            cli(
                *("provider-keys", "create", "--provider", "openai", "--name", "new"),
                *("--value", "sk-proj-abcdefghijklmnopqrstuvwxyz"),
                token=control_plane.admin_token,
            )
        )
        latest = control_plane.server.store.revision()
        rows = wait_for_rows(
            cli,
            lambda rows: all(
                r["state"] == "IN_SYNC" and r["appliedVersion"] == str(latest) for r in rows
            ),
        )
        assert {r["latestVersion"] for r in rows} == {str(latest)}
        assert {r["state"] for r in rows} == {"IN_SYNC"}


def test_any_admin_may_list_data_planes(cli: Cli, control_plane: RunningControlPlane) -> None:
    assert ok(cli("data-planes", "list", "--json", token=control_plane.admin_token)).json() == []


def test_account_admins_see_a_redacted_view(cli: Cli, control_plane: RunningControlPlane) -> None:
    """Node ids, pools and NACK text reached every tenant: now only the states do."""
    token = data_plane_token(control_plane)
    with proxy(control_plane.address, token, "edge-7.internal.example:8080", pool="eu-secret"):
        operator = wait_for_rows(cli, lambda rows: len(rows) == 1 and rows[0]["state"] == "IN_SYNC")
        assert operator[0]["nodeId"] == "edge-7.internal.example:8080"
        admin = ok(cli("data-planes", "list", "--json", token=control_plane.admin_token)).json()
        [row] = admin
        assert row["state"] == "IN_SYNC"
        assert row["redacted"] is True
        assert row["nodeId"].startswith("proxy-")
        assert row["appliedVersion"] == operator[0]["appliedVersion"]
        assert "controlPlane" not in row  # infrastructure, like node ids
        text = ok(cli("data-planes", "list", token=control_plane.admin_token)).out
        for secret in ("edge-7", "internal.example", "eu-secret"):
            assert secret not in text
        # The same proxy keeps the same label.
        again = ok(cli("data-planes", "list", "--json", token=control_plane.admin_token)).json()
        assert again[0]["nodeId"] == row["nodeId"]


def test_a_disconnected_proxy_can_be_forgotten(
    cli: Cli, control_plane: RunningControlPlane
) -> None:
    token = data_plane_token(control_plane)
    with proxy(control_plane.address, token, "retired-node"):
        wait_for_rows(cli, lambda rows: [r["state"] for r in rows] == ["IN_SYNC"])
        refused = cli("data-planes", "delete", "retired-node")
        assert refused.code == 1
        assert "DATA_PLANE_CONNECTED" in refused.err
    wait_for_rows(cli, lambda rows: [r["state"] for r in rows] == ["DISCONNECTED"])
    denied = cli("data-planes", "delete", "retired-node", token=control_plane.admin_token)
    assert denied.code == 1
    assert "PERMISSION_DENIED" in denied.err
    assert (
        ok(cli("data-planes", "delete", "retired-node")).out == "Forgot data plane retired-node.\n"
    )
    assert ok(cli("data-planes", "list", "--json")).json() == []
    missing = cli("data-planes", "delete", "retired-node")
    assert missing.code == 1
    assert "NOT_FOUND" in missing.err


# -- data-plane-credentials ----------------------------------------------------------------


def test_credential_lifecycle(cli: Cli, control_plane: RunningControlPlane) -> None:
    created = ok(cli("data-plane-credentials", "create", "--name", "edge fleet"))
    match = TOKEN_LINE.search(created.out)
    assert match, created.out
    token = match.group(1)
    assert tokens.is_well_formed(token, tokens.TokenKind.DATA_PLANE)
    credential_id = re.search(r"^id\s+(dpc_\S+)$", created.out, re.MULTILINE)
    assert credential_id, created.out
    credential = credential_id.group(1)
    assert re.search(r"^name\s+edge fleet$", created.out, re.MULTILINE)
    assert token not in created.out.replace(match.group(0), ""), "the token is printed once"

    listed = table_rows(ok(cli("data-plane-credentials", "list")).out)
    assert listed[0] == ["ID", "NAME", "TOKEN", "CREATED"]
    names = {row[0]: row[1] for row in listed[1:]}
    assert names[credential] == "edge fleet"
    assert "local data plane" in names.values()  # the one created on first start
    assert all(token not in " ".join(row) for row in listed)
    listed_json = ok(cli("data-plane-credentials", "list", "--json")).json()
    [as_json] = [c for c in listed_json if c["id"] == credential]
    assert as_json["name"] == "edge fleet"
    assert as_json["redactedToken"] != token
    assert as_json["redactedToken"].startswith("kwdp_")

    # The new credential opens a discovery stream...
    with proxy(control_plane.address, token, "edge-new") as state:
        wait_for_rows(cli, lambda rows: [r["state"] for r in rows] == ["IN_SYNC"])
        assert state.table is not None
        # ...and deleting it closes that stream; reconnects are refused.
        deleted = ok(cli("data-plane-credentials", "delete", credential))
        assert deleted.out.strip() == f"Deleted data-plane credential {credential}."
        rows = wait_for_rows(cli, lambda rows: rows[0]["state"] == "DISCONNECTED")
        assert rows[0]["state"] == "DISCONNECTED"

    remaining = [c["id"] for c in ok(cli("data-plane-credentials", "list", "--json")).json()]
    assert credential not in remaining
    missing = cli("data-plane-credentials", "delete", credential)
    assert missing.code == 1
    assert "NOT_FOUND" in missing.err


def test_create_json_prints_the_token_once(cli: Cli) -> None:
    response = ok(cli("data-plane-credentials", "create", "--name", "ci", "--json")).json()
    assert response["credential"]["name"] == "ci"
    assert response["credential"]["id"].startswith("dpc_")
    assert tokens.is_well_formed(response["token"], tokens.TokenKind.DATA_PLANE)


def test_credentials_need_the_operator_token(cli: Cli, control_plane: RunningControlPlane) -> None:
    for argv in (
        ("data-plane-credentials", "create", "--name", "x"),
        ("data-plane-credentials", "list"),
        ("data-plane-credentials", "delete", "dpc_whatever"),
    ):
        result = cli(*argv, token=control_plane.admin_token)
        assert result.code == 1, argv
        assert "PERMISSION_DENIED" in result.err, result.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("data-plane-credentials", "create"), "--name"),
        (("data-plane-credentials", "get", "dpc_x"), "invalid choice"),
        (("data-plane-credentials", "update", "dpc_x"), "invalid choice"),
        (("data-plane-credentials", "delete", "dpc_x", "--etag", "1"), "unrecognized"),
        (("data-planes", "get"), "invalid choice"),
    ],
)
def test_usage_errors(cli: Cli, argv: tuple[str, ...], message: str) -> None:
    result = cli(*argv)
    assert result.code == 2
    assert message in result.err
