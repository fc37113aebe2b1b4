"""Admin writes leave an audit line: caller credential id, RPC, resource id, result."""

from __future__ import annotations

import logging
import re

import grpc
import pytest
from keyway.v1 import provider_keys_pb2 as pk

from .control_planes import RunningControlPlane
from .rpc_helpers import Api

SECRET = "sk-proj-AuditTrail0123456789abcdef"


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "keyway.audit"]


def test_writes_are_audited_with_their_result_and_reads_are_not(
    control_plane: RunningControlPlane, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="keyway.audit")
    api = Api(control_plane.channel, control_plane.admin)
    key = api.provider_key(value=SECRET)
    api.provider_keys.ListProviderKeys(pk.ListProviderKeysRequest(), metadata=api.md)
    with pytest.raises(grpc.RpcError):
        api.provider_key(provider_id="no-such-provider", value=SECRET)
    api.provider_keys.DeleteProviderKey(pk.DeleteProviderKeyRequest(id=key.id), metadata=api.md)
    lines = audit_lines(caplog)
    assert len(lines) == 3, lines
    created, refused, deleted = lines
    assert re.fullmatch(
        rf"rpc=CreateProviderKey caller=\S+ kind=admin account=acct_\S+ resource={key.id} "
        r"result=OK",
        created,
    ), created
    assert refused.startswith("rpc=CreateProviderKey ")
    assert refused.endswith("resource=- result=INVALID_ARGUMENT")
    assert "rpc=DeleteProviderKey caller=" in deleted
    assert f"resource={key.id} result=OK" in deleted
    caller = created.split()[1]
    assert caller != f"caller={control_plane.admin_token}"
    for line in lines:
        assert SECRET[8:20] not in line
        assert control_plane.admin_token not in line


def test_an_operator_write_names_the_operator_credential(
    control_plane: RunningControlPlane, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="keyway.audit")
    api = Api(control_plane.channel, control_plane.admin)
    account, _ = api.new_account(control_plane.operator)
    lines = audit_lines(caplog)
    assert any(
        line.startswith("rpc=CreateAccount ")
        and "kind=operator account=- " in line
        and line.endswith(f"resource={account.id} result=OK")
        for line in lines
    ), lines
