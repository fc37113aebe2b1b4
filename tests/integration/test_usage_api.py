"""UsageService and `keyway admin usage / requests get` against a real control plane.

Batches arrive as proxies send them (ReportUsage with a data-plane token); tenants see
their own usage only, the operator everyone's; bad queries name the field; a batch sent
twice counts once; the keys' last used / last error come from the same records.
"""

from __future__ import annotations

import re
import time

import grpc
import pytest
from keyway.v1 import accounts_pb2 as acc
from keyway.v1 import discovery_pb2 as dpb
from keyway.v1 import discovery_pb2_grpc, usage_pb2_grpc
from keyway.v1 import provider_keys_pb2 as pk
from keyway.v1 import usage_pb2 as pb

from .cli_runner import Cli, ok, runner
from .control_planes import RunningControlPlane
from .proxies import data_plane_token
from .rpc_helpers import Api, expect_error


def attempt(account_id: str, request_id: str, number: int, key: str, **fields: object) -> object:
    defaults: dict[str, object] = {
        "request_id": request_id,
        "account_id": account_id,
        "access_key_id": "ak_app",
        "surface": "/v1/chat/completions",
        "requested_model": "gpt-4o",
        "provider_id": "openai",
        "upstream_model": "gpt-4o",
        "provider_key_id": key,
        "attempt": number,
        "outcome": "success",
        "reason": "Served",
        "status": 200,
        "headers_ms": 20.0,
        "first_byte_ms": 21.0,
        "duration_ms": 25.0,
        "final": True,
    }
    record = dpb.AttemptRecord(**{**defaults, **fields})  # type: ignore[arg-type]
    # Now: after the keys were made (an error older than a key's value is not shown).
    record.request_time.FromMicroseconds(time.time_ns() // 1000)
    return record


def report(cp: RunningControlPlane, batch_id: str, *records: object) -> None:
    stub = discovery_pb2_grpc.DataPlaneDiscoveryServiceStub(cp.channel)
    stub.ReportUsage(
        dpb.ReportUsageRequest(node_id="node-a", batch_id=batch_id, attempts=records),  # type: ignore[arg-type]
        metadata=cp.auth(data_plane_token(cp.data_dir)),
    )


def own_account(cp: RunningControlPlane) -> str:
    api = Api(cp.channel, cp.admin)
    return api.accounts.GetAccount(acc.GetAccountRequest(), metadata=cp.admin).account.id


@pytest.fixture
def usage(control_plane: RunningControlPlane) -> usage_pb2_grpc.UsageServiceStub:
    return usage_pb2_grpc.UsageServiceStub(control_plane.channel)


def traffic(cp: RunningControlPlane, failing: str, serving: str) -> str:
    """One failover request and one fail-fast request; returns the account id."""
    account_id = own_account(cp)
    failover = [
        attempt(
            account_id,
            "req_failover",
            1,
            failing,
            outcome="rate_limited",
            reason="Rate limited by provider",
            status=429,
            final=False,
        ),
        attempt(
            account_id,
            "req_failover",
            2,
            serving,
            tokens=dpb.TokenCounts(input=1000, output=100, cached_input=400),
        ),
    ]
    report(cp, "batch-1", *failover)
    report(cp, "batch-1", *failover)  # a retry after a lost reply
    report(
        cp,
        "batch-2",
        attempt(account_id, "req_bad", 1, serving, outcome="fail_fast", status=400),
    )
    return account_id


def keys(cp: RunningControlPlane) -> tuple[str, str]:
    api = Api(cp.channel, cp.admin)
    return api.provider_key(value="sk-proj-usageFailing0123456789").id, api.provider_key(
        value="sk-proj-usageServing0123456789"
    ).id


def test_totals_count_a_retried_batch_once_and_price_tokens(
    control_plane: RunningControlPlane, usage: usage_pb2_grpc.UsageServiceStub
) -> None:
    failing, serving = keys(control_plane)
    traffic(control_plane, failing, serving)
    response = usage.ListUsage(
        pb.ListUsageRequest(group_by=[pb.USAGE_DIMENSION_PROVIDER_KEY]),
        metadata=control_plane.admin,
    )
    rows = {r.provider_key_id: r for r in response.rows}
    assert (rows[failing].attempts, rows[failing].failovers, rows[failing].requests) == (1, 1, 0)
    served = rows[serving]
    assert (served.requests, served.attempts) == (2, 2)
    assert dict(served.errors) == {"fail_fast": 1}
    assert (served.input_tokens, served.output_tokens, served.cached_tokens) == (1000, 100, 400)
    # 600 at $2.50/M + 400 cached at $1.25/M + 100 out at $10/M
    assert served.cost_usd == pytest.approx(0.003)


def test_a_request_shows_every_attempt_and_keys_keep_last_used_and_last_error(
    control_plane: RunningControlPlane, usage: usage_pb2_grpc.UsageServiceStub
) -> None:
    failing, serving = keys(control_plane)
    traffic(control_plane, failing, serving)
    got = usage.GetRequest(
        pb.GetRequestRequest(request_id="req_failover"), metadata=control_plane.admin
    ).request
    assert [(a.attempt, a.provider_key_id, a.outcome, a.status) for a in got.attempts] == [
        (1, failing, "rate_limited", 429),
        (2, serving, "success", 200),
    ]
    assert got.node_id == ""  # proxies' names are the operator's
    assert got.attempts[1].cost_known
    assert not got.attempts[0].tokens_known
    operator_view = usage.GetRequest(
        pb.GetRequestRequest(request_id="req_failover"), metadata=control_plane.operator
    ).request
    assert operator_view.node_id == "node-a"
    api = Api(control_plane.channel, control_plane.admin)
    listed = {
        k.id: k
        for k in api.provider_keys.ListProviderKeys(
            pk.ListProviderKeysRequest(), metadata=control_plane.admin
        ).provider_keys
    }
    assert listed[failing].last_error.status == 429
    assert listed[serving].HasField("last_success_time")
    # The client's 400 is not the key's fault.
    assert not listed[serving].HasField("last_error")


def test_tenants_see_only_their_own_usage(
    control_plane: RunningControlPlane, usage: usage_pb2_grpc.UsageServiceStub
) -> None:
    failing, serving = keys(control_plane)
    mine = traffic(control_plane, failing, serving)
    api = Api(control_plane.channel, control_plane.admin)
    other, other_token = api.new_account(control_plane.operator)
    report(control_plane, "batch-other", attempt(other.id, "req_other", 1, "pk_other"))
    theirs = control_plane.auth(other_token)
    (row,) = usage.ListUsage(pb.ListUsageRequest(), metadata=theirs).rows
    assert row.requests == 1
    expect_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: usage.GetRequest(pb.GetRequestRequest(request_id="req_failover"), metadata=theirs),
    )
    expect_error(
        grpc.StatusCode.PERMISSION_DENIED,
        lambda: usage.ListUsage(pb.ListUsageRequest(account_id=mine), metadata=theirs),
    )
    everyone = usage.ListUsage(
        pb.ListUsageRequest(group_by=[pb.USAGE_DIMENSION_ACCOUNT]),
        metadata=control_plane.operator,
    )
    assert {r.account_id: r.requests for r in everyone.rows} == {mine: 2, other.id: 1}


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.ListUsageRequest(group_by=[pb.USAGE_DIMENSION_UNSPECIFIED]), "group_by[0]"),
        (
            pb.ListUsageRequest(group_by=[pb.USAGE_DIMENSION_MODEL, pb.USAGE_DIMENSION_MODEL]),
            "group_by[1]",
        ),
        (pb.ListUsageRequest(bucket=9), "bucket"),  # type: ignore[arg-type]
        (pb.ListUsageRequest(model="m" * 300), "model"),
    ],
)
def test_bad_queries_name_the_field(
    control_plane: RunningControlPlane,
    usage: usage_pb2_grpc.UsageServiceStub,
    request_: pb.ListUsageRequest,
    field: str,
) -> None:
    error = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: usage.ListUsage(request_, metadata=control_plane.admin),
    )
    assert field in error.fields


def test_a_range_ending_before_it_starts_is_refused(
    control_plane: RunningControlPlane, usage: usage_pb2_grpc.UsageServiceStub
) -> None:
    request = pb.ListUsageRequest()
    request.start_time.FromSeconds(2_000_000_000)
    request.end_time.FromSeconds(1_000_000_000)
    error = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: usage.ListUsage(request, metadata=control_plane.admin),
    )
    assert error.fields == ("end_time",)


def test_hourly_rows_over_more_than_a_month_are_refused(
    control_plane: RunningControlPlane, usage: usage_pb2_grpc.UsageServiceStub
) -> None:
    request = pb.ListUsageRequest(bucket=pb.USAGE_BUCKET_HOUR)
    request.start_time.FromSeconds(1_700_000_000)
    request.end_time.FromSeconds(1_700_000_000 + 32 * 86400)
    error = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: usage.ListUsage(request, metadata=control_plane.admin),
    )
    assert error.fields == ("bucket",)
    request.bucket = pb.USAGE_BUCKET_DAY
    assert usage.ListUsage(request, metadata=control_plane.admin).rows == []


def test_a_malformed_batch_is_refused_whole(
    control_plane: RunningControlPlane, usage: usage_pb2_grpc.UsageServiceStub
) -> None:
    account_id = own_account(control_plane)
    with pytest.raises(grpc.RpcError) as refused:
        report(
            control_plane,
            "batch-bad",
            attempt(account_id, "req_ok", 1, "pk_1"),
            attempt(account_id, "req_bad", 1, "k" * 300),
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "attempts[1].provider_key_id" in (refused.value.details() or "")
    assert usage.ListUsage(pb.ListUsageRequest(), metadata=control_plane.admin).rows == []


def test_the_cli_shows_usage_by_key_and_model_and_one_request(
    control_plane: RunningControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    failing, serving = keys(control_plane)
    traffic(control_plane, failing, serving)
    cli: Cli = runner(control_plane, capsys, control_plane.admin_token)
    table = ok(cli("usage", "--since", "2d", "--by", "provider-key", "--by", "model")).out
    assert re.search(
        rf"^{serving}\s+gpt-4o\s+2\s+2\s+0\s+fail_fast:1\s+1000\s+100\s+400\s+\$0\.0030$",
        table,
        re.MULTILINE,
    ), table
    assert re.search(r"^TOTAL\s+2\s+3\s+1\s+fail_fast:1\s", table, re.MULTILINE), table
    as_json = ok(cli("usage", "--by", "provider", "--json")).json()
    assert as_json["rows"][0]["providerId"] == "openai"
    request = ok(cli("requests", "get", "req_failover")).out
    assert re.search(rf"^1\s+openai\s+gpt-4o\s+{failing}\s+rate_limited\s+429\s", request, re.M)
    assert re.search(rf"^2\s+openai\s+gpt-4o\s+{serving}\s+success\s+200\s", request, re.M)
    missing = cli("requests", "get", "req_nope")
    assert missing.code == 1
    assert "req_nope" in missing.err
    bad = cli("usage", "--since", "yesterday-ish")
    assert bad.code == 2
    assert "--since" in bad.err
