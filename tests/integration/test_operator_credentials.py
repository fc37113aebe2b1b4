"""The operator's tokens: rotated and revoked through the API and the CLI, and a local reset.

A leaked operator token used to need database surgery. Now it is replaced in place (same
credential id, new token) or revoked once another exists; the last one is never
deleted, and `keyway reset-operator-token` recovers when every token is lost.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from keyway.v1 import accounts_pb2 as acc
from keyway.v1 import accounts_pb2_grpc as acc_grpc
from keyway.v1 import operator_credentials_pb2 as opc
from keyway.v1 import operator_credentials_pb2_grpc as opc_grpc

from .cli_runner import TOKEN_LINE, Cli, ok, runner
from .control_planes import RunningControlPlane
from .proxies import store_revision
from .rpc_helpers import Metadata, Recorder, auth, expect_error, leaks

ROOT = Path(__file__).resolve().parents[2]


def stub(cp: RunningControlPlane) -> opc_grpc.OperatorCredentialServiceStub:
    return opc_grpc.OperatorCredentialServiceStub(cp.channel)


def credentials(cp: RunningControlPlane, md: Metadata) -> list[opc.OperatorCredential]:
    request = opc.ListOperatorCredentialsRequest()
    return list(stub(cp).ListOperatorCredentials(request, metadata=md).credentials)


def works(cp: RunningControlPlane, token: str) -> bool:
    """Whether `token` may still act as the operator."""
    accounts = acc.ListAccountsRequest()
    try:
        acc_grpc.AccountServiceStub(cp.channel).ListAccounts(accounts, metadata=auth(token))
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.UNAUTHENTICATED:
            raise
        return False
    return True


def test_rotating_replaces_the_token_at_once_and_keeps_the_id(
    control_plane: RunningControlPlane,
) -> None:
    cp = control_plane
    [original] = credentials(cp, cp.operator)
    response = stub(cp).RotateOperatorCredential(
        opc.RotateOperatorCredentialRequest(id=original.id), metadata=cp.operator
    )
    assert response.credential.id == original.id
    assert response.credential.redacted_token != original.redacted_token
    assert response.token.startswith("kwop_")
    assert not works(cp, cp.operator_token)
    assert works(cp, response.token)
    [listed] = credentials(cp, auth(response.token))
    assert listed.redacted_token == response.credential.redacted_token


def test_a_leaked_token_is_revoked_once_another_exists(control_plane: RunningControlPlane) -> None:
    cp = control_plane
    [leaked] = credentials(cp, cp.operator)
    created = stub(cp).CreateOperatorCredential(
        opc.CreateOperatorCredentialRequest(credential=opc.OperatorCredential(name="ops team")),
        metadata=cp.operator,
    )
    assert works(cp, created.token)
    stub(cp).DeleteOperatorCredential(
        opc.DeleteOperatorCredentialRequest(id=leaked.id), metadata=auth(created.token)
    )
    assert not works(cp, cp.operator_token)
    assert [c.id for c in credentials(cp, auth(created.token))] == [created.credential.id]


def test_the_last_operator_credential_cannot_be_deleted(control_plane: RunningControlPlane) -> None:
    cp = control_plane
    [only] = credentials(cp, cp.operator)
    before = store_revision(cp.data_dir)
    error = expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: stub(cp).DeleteOperatorCredential(
            opc.DeleteOperatorCredentialRequest(id=only.id), metadata=cp.operator
        ),
    )
    assert error.reason == "LAST_OPERATOR_CREDENTIAL"
    assert error.subjects == (only.id,)
    assert "rotate it" in error.message
    assert store_revision(cp.data_dir) == before
    assert works(cp, cp.operator_token)


@pytest.mark.parametrize(
    ("rpc", "request_"),
    [
        ("RotateOperatorCredential", opc.RotateOperatorCredentialRequest(id="")),
        ("DeleteOperatorCredential", opc.DeleteOperatorCredentialRequest(id="")),
        ("CreateOperatorCredential", opc.CreateOperatorCredentialRequest()),
    ],
)
def test_bad_input_names_the_field(
    control_plane: RunningControlPlane, rpc: str, request_: object
) -> None:
    cp = control_plane
    before = store_revision(cp.data_dir)
    error = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: getattr(stub(cp), rpc)(request_, metadata=cp.operator),
    )
    assert error.fields in (("id",), ("credential.name",))
    assert store_revision(cp.data_dir) == before


@pytest.mark.parametrize(
    ("rpc", "request_"),
    [
        ("RotateOperatorCredential", opc.RotateOperatorCredentialRequest(id="op_aaaaaaaaaaaaaaaa")),
        ("DeleteOperatorCredential", opc.DeleteOperatorCredentialRequest(id="op_aaaaaaaaaaaaaaaa")),
    ],
)
def test_unknown_ids_are_not_found(
    control_plane: RunningControlPlane, rpc: str, request_: object
) -> None:
    cp = control_plane
    expect_error(
        grpc.StatusCode.NOT_FOUND, lambda: getattr(stub(cp), rpc)(request_, metadata=cp.operator)
    )


def test_tokens_appear_only_in_the_responses_that_mint_them(
    control_plane: RunningControlPlane,
) -> None:
    cp = control_plane
    recorder = Recorder()
    channel = grpc.intercept_channel(grpc.insecure_channel(cp.address), recorder)
    try:
        recorded = opc_grpc.OperatorCredentialServiceStub(channel)
        [original] = credentials(cp, cp.operator)
        minted = recorded.RotateOperatorCredential(
            opc.RotateOperatorCredentialRequest(id=original.id), metadata=cp.operator
        ).token
        recorder.blobs.clear()
        recorded.ListOperatorCredentials(
            opc.ListOperatorCredentialsRequest(), metadata=auth(minted)
        )
        with pytest.raises(grpc.RpcError):
            recorded.ListOperatorCredentials(
                opc.ListOperatorCredentialsRequest(), metadata=cp.operator
            )
    finally:
        channel.close()
    assert leaks(b"".join(recorder.blobs), [minted, cp.operator_token]) == []


# -- the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def cli(control_plane: RunningControlPlane, capsys: pytest.CaptureFixture[str]) -> Cli:
    return runner(control_plane, capsys, control_plane.operator_token)


def test_the_cli_lists_rotates_and_deletes(cli: Cli, control_plane: RunningControlPlane) -> None:
    cp = control_plane
    [original] = credentials(cp, cp.operator)
    listing = ok(cli("operator-credentials", "list")).out
    assert original.id in listing
    assert cp.operator_token not in listing

    created = ok(cli("operator-credentials", "create", "--name", "backup"))
    backup = TOKEN_LINE.search(created.out)
    assert backup is not None

    rotated = ok(cli("operator-credentials", "rotate", original.id))
    match = TOKEN_LINE.search(rotated.out)
    assert match is not None
    assert not works(cp, cp.operator_token)
    assert works(cp, match.group(1))

    ok(cli("operator-credentials", "delete", original.id, token=backup.group(1)))
    assert not works(cp, match.group(1))
    last = cli("operator-credentials", "list", "--json", token=backup.group(1)).json()
    refused = cli("operator-credentials", "delete", last[0]["id"], token=backup.group(1))
    assert refused.code == 1
    assert "LAST_OPERATOR_CREDENTIAL" in refused.err


def test_reset_operator_token_recovers_a_running_control_plane(
    control_plane: RunningControlPlane,
) -> None:
    cp = control_plane
    token_file = cp.data_dir / "operator.token"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "control_plane.cli.main",
            "reset-operator-token",
            "--data-dir",
            str(cp.data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr
    assert str(token_file) in completed.stdout
    new_token = token_file.read_text().strip()
    assert new_token != cp.operator_token
    assert new_token not in completed.stdout
    assert not works(cp, cp.operator_token)
    assert works(cp, new_token)
    assert len(credentials(cp, auth(new_token))) == 1


def test_reset_operator_token_refuses_a_directory_without_data(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            *(sys.executable, "-m", "control_plane.cli.main", "reset-operator-token"),
            *("--data-dir", str(tmp_path / "nothing")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert completed.returncode == 1
    assert "keyway: error: no control plane data" in completed.stderr
    assert not (tmp_path / "nothing").exists()
