"""Per-account quotas and the snapshot budget: checked in the write that would pass them.

One tenant admin used to be able to grow the snapshot every proxy loads until proxies
refused it, after which nothing (not even a revocation) propagated. Now every count and
size is capped per account and in total; the write that would pass a cap is refused with
RESOURCE_EXHAUSTED naming the quota and its flag, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from keyway.v1 import access_keys_pb2 as ak
from keyway.v1 import accounts_pb2 as acc
from keyway.v1 import admin_api_keys_pb2 as adk
from keyway.v1 import providers_pb2 as prov
from keyway.v1 import snapshot_pb2 as spb

from control_plane.domain.quotas import Quotas
from control_plane.server import Settings
from data_plane.routing.apply import Applied, apply
from data_plane.shared.startup import StartupError

from .control_planes import RunningControlPlane
from .proxies import caught_up, store_revision, token_sha256
from .rpc_helpers import OPENAI_VALUE, Api, auth, running

SMALL = Quotas(
    provider_keys=2,
    access_keys=2,
    configurations=2,
    custom_providers=2,
    models_per_provider=3,
    admin_api_keys=2,
)


@pytest.fixture
def cp(tmp_path: Path) -> Iterator[RunningControlPlane]:
    with running(Settings(listen="127.0.0.1:0", data_dir=tmp_path / "data", quotas=SMALL)) as cp:
        yield cp


def quota_error(cp: RunningControlPlane, call: Callable[[], object], quota: str) -> str:
    """The call fails with RESOURCE_EXHAUSTED naming `quota`, and writes nothing."""
    before = store_revision(cp.data_dir)
    with pytest.raises(grpc.RpcError) as info:
        call()
    error = info.value
    assert isinstance(error, grpc.Call)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
    status = rpc_status.from_call(error)
    assert status is not None
    infos, failures = [], []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            infos.append(error_details_pb2.ErrorInfo())
            detail.Unpack(infos[-1])
        elif detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            failures.append(error_details_pb2.QuotaFailure())
            detail.Unpack(failures[-1])
    [found] = infos
    assert found.reason == "QUOTA_EXCEEDED"
    assert found.metadata["quota"] == quota
    assert found.metadata["flag"] in status.message
    assert [v.subject for f in failures for v in f.violations]
    assert store_revision(cp.data_dir) == before
    return status.message


def test_each_count_quota_stops_the_write_that_would_pass_it(cp: RunningControlPlane) -> None:
    a = Api(cp.channel, cp.admin)
    a.provider_key("openai", OPENAI_VALUE, "1")
    a.provider_key("openai", OPENAI_VALUE, "2")
    message = quota_error(cp, lambda: a.provider_key("openai", OPENAI_VALUE, "3"), "provider_keys")
    assert "has 2 provider keys" in message
    assert "--max-provider-keys" in message

    a.access_key("1")
    a.access_key("2")
    quota_error(cp, lambda: a.access_key("3"), "access_keys")

    a.configuration({"name": "1"})
    a.configuration({"name": "2"})
    quota_error(cp, lambda: a.configuration({"name": "3"}), "configurations")

    a.custom_provider("x-one")
    a.custom_provider("x-two")
    quota_error(cp, lambda: a.custom_provider("x-three"), "custom_providers")

    def admin_key() -> object:
        request = adk.CreateAdminApiKeyRequest(admin_api_key=adk.AdminApiKey(name="k"))
        return a.admin_keys.CreateAdminApiKey(request, metadata=a.md)

    admin_key()  # the first one was created with the account
    quota_error(cp, admin_key, "admin_api_keys")


def test_quotas_are_per_account_and_free_up_on_delete(cp: RunningControlPlane) -> None:
    a = Api(cp.channel, cp.admin)
    op = Api(cp.channel, cp.operator)
    _, token_b = op.new_account(op.md, "B")
    b = Api(cp.channel, auth(token_b))
    first, _ = a.access_key("1")
    a.access_key("2")
    quota_error(cp, lambda: a.access_key("3"), "access_keys")
    b.access_key("b1")  # B has its own allowance
    b.access_key("b2")
    a.access_keys.DeleteAccessKey(ak.DeleteAccessKeyRequest(id=first.id), metadata=a.md)
    a.access_key("3")


def test_models_per_provider_on_create_and_update(cp: RunningControlPlane) -> None:
    a = Api(cp.channel, cp.admin)
    models = [prov.ProviderModel(id=f"m{i}") for i in range(4)]

    def create() -> object:
        provider = prov.CustomProvider(
            provider_id="x-many",
            name="many",
            base_url="https://many.example/v1",
            formats=[prov.API_FORMAT_OPENAI],
            models=models,
        )
        request = prov.CreateCustomProviderRequest(custom_provider=provider)
        return a.providers.CreateCustomProvider(request, metadata=a.md)

    assert "lists 4 models" in quota_error(cp, create, "models_per_provider")
    created = a.custom_provider("x-few")

    def update() -> object:
        request = prov.UpdateCustomProviderRequest(
            custom_provider=prov.CustomProvider(id=created.id, models=models),
            update_mask=field_mask_pb2.FieldMask(paths=["models"]),
        )
        return a.providers.UpdateCustomProvider(request, metadata=a.md)

    quota_error(cp, update, "models_per_provider")


def big_provider(api: Api, provider_id: str) -> prov.CustomProvider:
    """A custom provider of about 20 KB of routing data."""
    request = prov.CreateCustomProviderRequest(
        custom_provider=prov.CustomProvider(
            provider_id=provider_id,
            name=provider_id,
            base_url=f"https://{provider_id}.example/v1",
            formats=[prov.API_FORMAT_OPENAI],
            models=[prov.ProviderModel(id=f"{i:03d}-" + "m" * 90) for i in range(200)],
        )
    )
    return api.providers.CreateCustomProvider(request, metadata=api.md).custom_provider


def test_one_tenant_cannot_grow_the_snapshot_past_its_budget(tmp_path: Path) -> None:
    """The finding: a tenant admin creating custom providers until proxies refuse the
    snapshot. Growth stops at the account's budget; the snapshot stays one proxies apply,
    and a revocation made afterwards still reaches them."""
    budget = Quotas(account_snapshot_bytes=100_000)
    with running(Settings(listen="127.0.0.1:0", data_dir=tmp_path / "data", quotas=budget)) as cp:
        a = Api(cp.channel, cp.admin)
        doomed, doomed_token = a.access_key("doomed")
        created = 0
        refusal: grpc.StatusCode | None = None
        while refusal is None:
            assert created < 10, "the budget never stopped the flood"
            try:
                big_provider(a, f"x-flood-{created}")
                created += 1
            except grpc.RpcError as refused:
                refusal = refused.code()
        assert refusal == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert created >= 3
        message = quota_error(cp, lambda: big_provider(a, "x-more"), "account_snapshot_bytes")
        assert "would be about" in message

        a.access_keys.DeleteAccessKey(ak.DeleteAccessKeyRequest(id=doomed.id), metadata=a.md)
        published = caught_up(cp).compiled
        assert len(published.payload) < 100_000 + 10_000  # the account plus the catalog
        result = apply(published.version, published.sha256, published.payload)
        assert isinstance(result, Applied)
        assert token_sha256(doomed_token) not in result.table.callers

        # Shrinking is always allowed.
        [first, *_] = a.providers.ListCustomProviders(
            prov.ListCustomProvidersRequest(), metadata=a.md
        ).custom_providers
        a.providers.DeleteCustomProvider(
            prov.DeleteCustomProviderRequest(id=first.id), metadata=a.md
        )


def test_the_whole_snapshot_has_a_budget_too(tmp_path: Path) -> None:
    budget = Quotas(account_snapshot_bytes=100_000, snapshot_bytes=130_000)
    with running(Settings(listen="127.0.0.1:0", data_dir=tmp_path / "data", quotas=budget)) as cp:
        a = Api(cp.channel, cp.admin)
        op = Api(cp.channel, cp.operator)
        _, token_b = op.new_account(op.md, "B")
        b = Api(cp.channel, auth(token_b))
        for i in range(4):
            big_provider(a, f"x-a-{i}")
        for i in range(2):
            big_provider(b, f"x-b-{i}")
        message = quota_error(cp, lambda: big_provider(b, "x-b-more"), "snapshot_bytes")
        assert "all accounts" in message
        assert "--max-snapshot-bytes" in message


def test_the_estimate_is_never_below_the_compiled_size(tmp_path: Path) -> None:
    """The budget holds for the snapshot itself only if the estimate is an upper bound:
    for accounts of every shape, the compiled bytes never exceed it."""
    with running(Settings(listen="127.0.0.1:0", data_dir=tmp_path / "data")) as cp:
        op = Api(cp.channel, cp.operator)
        tenants = [Api(cp.channel, cp.admin)]
        tenants += [Api(cp.channel, auth(op.new_account(op.md, f"t{i}")[1])) for i in range(3)]
        for n, api in enumerate(tenants):
            keys = [
                api.provider_key("openai", OPENAI_VALUE + "k" * (i * 37), f"k{i}") for i in range(n)
            ]
            for i in range(n):
                request = prov.CreateCustomProviderRequest(
                    custom_provider=prov.CustomProvider(
                        provider_id=f"x-p{i}",
                        name="p",
                        base_url=f"https://llm{i}.exämple.example/v{i}",
                        formats=[prov.API_FORMAT_OPENAI, prov.API_FORMAT_ANTHROPIC][: i + 1],
                        models=[
                            prov.ProviderModel(id=f"Mödel-{j}-İ", upstream_id="u" * j)
                            for j in range(i * 5)
                        ],
                    )
                )
                api.providers.CreateCustomProvider(request, metadata=api.md)
            configs = [
                api.configuration(
                    {
                        "name": f"c{i}",
                        "access": {"models": {"allow": [f"openai:GPT-{i}-İ", "openai/gpt-4o"]}},
                        "router": {
                            "rules": [
                                {
                                    "provider": "openai",
                                    "model": f"Gpt-{i}-{j}-ẞ",
                                    "steps": [{"type": "user", "keys": [{"id": k.id}]}],
                                }
                                for j, k in enumerate(keys)
                            ]
                        },
                    }
                )
                for i in range(n)
            ]
            for i in range(n * 3):
                api.access_key(f"a{i}", configs[i % len(configs)].id if configs and i % 2 else "")
        compiled = compiled_accounts(cp)
        for api in tenants:
            account = api.accounts.GetAccount(acc.GetAccountRequest(), metadata=api.md).account
            estimate = account.snapshot_status.snapshot_bytes
            assert compiled[account.id] + 8 <= estimate, (account.id, compiled[account.id])


def test_the_flags_reach_the_store(tmp_path: Path) -> None:
    from control_plane.cli.main import _quotas, build_parser

    args = build_parser().parse_args(
        ["control-plane", "--max-provider-keys", "7", "--max-snapshot-bytes", "1000000"]
    )
    assert _quotas(args) == Quotas(provider_keys=7, snapshot_bytes=1_000_000)
    too_big = build_parser().parse_args(["control-plane", "--max-snapshot-bytes", str(1 << 30)])
    with pytest.raises(StartupError, match="at most 268435456"):
        _quotas(too_big)


def compiled_accounts(cp: RunningControlPlane) -> dict[str, int]:
    snapshot = spb.Snapshot.FromString(caught_up(cp).compiled.payload)
    return {a.id: a.ByteSize() for a in snapshot.accounts}
