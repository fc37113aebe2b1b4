"""Every annotated RPC over HTTP answers as it does over gRPC: the same message, or the same
error code, message and details.

Each case is one request message; the HTTP request is derived from it through the RPC's
binding (alternately the unversioned and the /v1 path), so the table also proves that every
route reaches its RPC. Reads are compared on success; writes on a refusal, so that running
them twice changes nothing (their successes are in test_rest_api)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, json_format
from google.protobuf.message import Message
from google.rpc import status_pb2
from grpc_status import rpc_status
from keyway.v1 import access_key_configurations_pb2 as cfg
from keyway.v1 import access_keys_pb2 as ak
from keyway.v1 import accounts_pb2 as acc
from keyway.v1 import admin_api_keys_pb2 as adk
from keyway.v1 import data_planes_pb2 as dp
from keyway.v1 import master_keys_pb2 as mk
from keyway.v1 import operator_credentials_pb2 as oc
from keyway.v1 import provider_keys_pb2 as pk
from keyway.v1 import providers_pb2 as prov
from keyway.v1 import usage_pb2 as us

from control_plane.http.errors import code_name, http_status

from .rest_client import ROUTER, RestPlane, grpc_call, http_call, method_types, rest_plane
from .rpc_helpers import Api, auth

Ids = dict[str, str]


@dataclass(frozen=True)
class Case:
    rpc: str
    request: Callable[[Ids], Message]
    token: str = "admin"  # admin | operator | other (another account's admin key) | none


def _c(service: str, method: str, request: Callable[[Ids], Message], token: str = "admin") -> Case:
    return Case(f"/keyway.v1.{service}/{method}", request, token)


PK = "ProviderKeyService"
AK = "AccessKeyService"
CF = "AccessKeyConfigurationService"
CP = "ProviderService"
ACC = "AccountService"
ADK = "AdminApiKeyService"
OC = "OperatorCredentialService"
DP = "DataPlaneService"
MK = "MasterKeyService"
US = "UsageService"


def _usage(**fields: Any) -> us.ListUsageRequest:
    # Fixed times: a default end ("now") would differ between the two calls.
    request = us.ListUsageRequest(**fields)
    request.start_time.FromJsonString("2026-11-30T00:00:00Z")
    request.end_time.FromJsonString("2026-12-01T00:00:00Z")
    return request


CASES = [
    # Reads: the same message both ways.
    _c(PK, "GetProviderKey", lambda i: pk.GetProviderKeyRequest(id=i["pk"])),
    _c(PK, "ListProviderKeys", lambda i: pk.ListProviderKeysRequest(page_size=1)),
    _c(PK, "ListProviderKeys", lambda i: pk.ListProviderKeysRequest(provider_id="anthropic")),
    _c(AK, "GetAccessKey", lambda i: ak.GetAccessKeyRequest(id=i["ak"])),
    _c(AK, "ListAccessKeys", lambda i: ak.ListAccessKeysRequest(configuration_id=i["cf"])),
    _c(CF, "GetAccessKeyConfiguration", lambda i: cfg.GetAccessKeyConfigurationRequest(id=i["cf"])),
    _c(CF, "ListAccessKeyConfigurations", lambda i: cfg.ListAccessKeyConfigurationsRequest()),
    _c(CP, "ListProviders", lambda i: prov.ListProvidersRequest()),
    _c(CP, "GetCustomProvider", lambda i: prov.GetCustomProviderRequest(id=i["cp"])),
    _c(CP, "ListCustomProviders", lambda i: prov.ListCustomProvidersRequest()),
    _c(ACC, "GetAccount", lambda i: acc.GetAccountRequest(id=i["account"]), "operator"),
    _c(ACC, "ListAccounts", lambda i: acc.ListAccountsRequest(page_size=2), "operator"),
    _c(ADK, "GetAdminApiKey", lambda i: adk.GetAdminApiKeyRequest(id=i["adk"]), "operator"),
    _c(
        ADK,
        "ListAdminApiKeys",
        lambda i: adk.ListAdminApiKeysRequest(account_id=i["account"]),
        "operator",
    ),
    _c(OC, "ListOperatorCredentials", lambda i: oc.ListOperatorCredentialsRequest(), "operator"),
    _c(DP, "ListDataPlanes", lambda i: dp.ListDataPlanesRequest(), "operator"),
    _c(DP, "ListDataPlaneCredentials", lambda i: dp.ListDataPlaneCredentialsRequest(), "operator"),
    _c(
        US,
        "ListUsage",
        lambda i: _usage(
            bucket=us.USAGE_BUCKET_HOUR,
            group_by=[us.USAGE_DIMENSION_MODEL, us.USAGE_DIMENSION_PROVIDER_KEY],
            provider_id="openai",
        ),
    ),
    _c(US, "ListUsage", lambda i: _usage(account_id=i["account"]), "operator"),
    # Refusals: the same code, message and details both ways.
    _c(PK, "GetProviderKey", lambda i: pk.GetProviderKeyRequest(id="pk_missing")),
    _c(US, "GetRequest", lambda i: us.GetRequestRequest(request_id="req_missing")),
    _c(US, "ListUsage", lambda i: _usage(group_by=[us.USAGE_DIMENSION_UNSPECIFIED])),
    _c(US, "ListUsage", lambda i: _usage(account_id=i["account"]), "other"),
    _c(PK, "GetProviderKey", lambda i: pk.GetProviderKeyRequest(id=i["pk"]), "other"),
    _c(PK, "GetProviderKey", lambda i: pk.GetProviderKeyRequest(id=i["pk"]), "none"),
    _c(PK, "ListProviderKeys", lambda i: pk.ListProviderKeysRequest(page_size=-1)),
    _c(PK, "ListProviderKeys", lambda i: pk.ListProviderKeysRequest(page_token="bogus")),
    _c(
        PK,
        "CreateProviderKey",
        lambda i: pk.CreateProviderKeyRequest(
            provider_key=pk.ProviderKey(provider_id="nope", name=""), value=""
        ),
    ),
    _c(
        PK,
        "UpdateProviderKey",
        lambda i: pk.UpdateProviderKeyRequest(
            provider_key=pk.ProviderKey(id=i["pk"], provider_id="anthropic"),
            update_mask=field_mask_pb2.FieldMask(paths=["provider_id"]),
        ),
    ),
    _c(PK, "DeleteProviderKey", lambda i: pk.DeleteProviderKeyRequest(id=i["pk"], etag="stale")),
    _c(PK, "DeleteProviderKey", lambda i: pk.DeleteProviderKeyRequest(id=i["pk_used"])),
    _c(PK, "RotateProviderKey", lambda i: pk.RotateProviderKeyRequest(id=i["pk"], value="")),
    _c(PK, "RotateProviderKey", lambda i: pk.RotateProviderKeyRequest(id="pk_missing", value="v")),
    _c(AK, "CreateAccessKey", lambda i: ak.CreateAccessKeyRequest(access_key=ak.AccessKey())),
    _c(
        AK,
        "UpdateAccessKey",
        lambda i: ak.UpdateAccessKeyRequest(
            access_key=ak.AccessKey(id=i["ak"], name="x"),
            update_mask=field_mask_pb2.FieldMask(paths=["redacted_token"]),
        ),
    ),
    _c(AK, "DeleteAccessKey", lambda i: ak.DeleteAccessKeyRequest(id="ak_missing")),
    _c(
        CF,
        "CreateAccessKeyConfiguration",
        lambda i: cfg.CreateAccessKeyConfigurationRequest(
            configuration=json_format.ParseDict(
                {
                    "name": "bad",
                    "router": {
                        "rules": [
                            {
                                "provider": "openai",
                                "steps": [{"type": "user", "keys": [{"id": "pk_missing"}]}],
                            }
                        ]
                    },
                },
                cfg.AccessKeyConfiguration(),
            )
        ),
    ),
    _c(
        CF,
        "UpdateAccessKeyConfiguration",
        lambda i: cfg.UpdateAccessKeyConfigurationRequest(
            configuration=cfg.AccessKeyConfiguration(id="akc_missing", name="x")
        ),
    ),
    _c(
        CF,
        "DeleteAccessKeyConfiguration",
        lambda i: cfg.DeleteAccessKeyConfigurationRequest(id=i["cf"], etag="stale"),
    ),
    _c(
        CP,
        "CreateCustomProvider",
        lambda i: prov.CreateCustomProviderRequest(
            custom_provider=prov.CustomProvider(provider_id="openai", name="dup")
        ),
    ),
    _c(
        CP,
        "UpdateCustomProvider",
        lambda i: prov.UpdateCustomProviderRequest(
            custom_provider=prov.CustomProvider(id=i["cp"], base_url="ftp://nope"),
            update_mask=field_mask_pb2.FieldMask(paths=["base_url"]),
        ),
    ),
    _c(CP, "DeleteCustomProvider", lambda i: prov.DeleteCustomProviderRequest(id="cp_missing")),
    _c(ACC, "CreateAccount", lambda i: acc.CreateAccountRequest(account=acc.Account()), "operator"),
    _c(
        ACC,
        "CreateAccount",
        lambda i: acc.CreateAccountRequest(account=acc.Account(display_name="x")),
    ),
    _c(
        ACC,
        "UpdateAccount",
        lambda i: acc.UpdateAccountRequest(
            account=acc.Account(id=i["account"], display_name="y", etag="stale"),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        ),
        "operator",
    ),
    _c(
        ACC,
        "DeleteAccount",
        lambda i: acc.DeleteAccountRequest(id=i["account"], etag="stale"),
        "operator",
    ),
    _c(
        ADK,
        "CreateAdminApiKey",
        lambda i: adk.CreateAdminApiKeyRequest(
            account_id="acct_missing", admin_api_key=adk.AdminApiKey(name="k")
        ),
        "operator",
    ),
    _c(
        ADK,
        "UpdateAdminApiKey",
        lambda i: adk.UpdateAdminApiKeyRequest(
            admin_api_key=adk.AdminApiKey(id="adk_missing", name="k")
        ),
        "operator",
    ),
    _c(
        ADK,
        "DeleteAdminApiKey",
        lambda i: adk.DeleteAdminApiKeyRequest(id="adk_missing"),
        "operator",
    ),
    _c(MK, "RotateMasterKey", lambda i: mk.RotateMasterKeyRequest(), "admin"),
    _c(
        OC,
        "CreateOperatorCredential",
        lambda i: oc.CreateOperatorCredentialRequest(credential=oc.OperatorCredential()),
        "operator",
    ),
    _c(
        OC,
        "RotateOperatorCredential",
        lambda i: oc.RotateOperatorCredentialRequest(id="opc_x"),
        "operator",
    ),
    _c(
        OC,
        "DeleteOperatorCredential",
        lambda i: oc.DeleteOperatorCredentialRequest(id="opc_x"),
        "operator",
    ),
    _c(
        DP,
        "DeleteDataPlane",
        lambda i: dp.DeleteDataPlaneRequest(node_id="no-such-node"),
        "operator",
    ),
    _c(
        DP,
        "CreateDataPlaneCredential",
        lambda i: dp.CreateDataPlaneCredentialRequest(credential=dp.DataPlaneCredential()),
        "operator",
    ),
    _c(
        DP,
        "DeleteDataPlaneCredential",
        lambda i: dp.DeleteDataPlaneCredentialRequest(id="dpc_x"),
        "operator",
    ),
]


@pytest.fixture(scope="module")
def plane(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RestPlane, Ids, dict[str, str]]]:
    with rest_plane(Path(tmp_path_factory.mktemp("parity")) / "data") as p:
        api = Api(p.channel, auth(p.admin_token))
        key = api.provider_key(name="listed")
        used = api.provider_key(name="used")
        configuration = api.configuration(
            {
                "name": "routes",
                "router": {
                    "rules": [
                        {
                            "provider": "openai",
                            "steps": [{"type": "user", "keys": [{"id": used.id}]}],
                        }
                    ]
                },
            }
        )
        access_key, _ = api.access_key(configuration_id=configuration.id)
        custom = api.custom_provider()
        account, other_token = api.new_account(auth(p.operator_token))
        admin_keys = api.admin_keys.ListAdminApiKeys(
            adk.ListAdminApiKeysRequest(account_id=account.id), metadata=auth(p.operator_token)
        ).admin_api_keys
        ids = {
            "pk": key.id,
            "pk_used": used.id,
            "cf": configuration.id,
            "ak": access_key.id,
            "cp": custom.id,
            "account": account.id,
            "adk": admin_keys[0].id,
        }
        tokens = {
            "admin": p.admin_token,
            "operator": p.operator_token,
            "other": other_token,
            "none": "",
        }
        yield p, ids, tokens


def _status(error: grpc.RpcError) -> status_pb2.Status:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, error
    return status


def test_the_table_reaches_every_annotated_rpc() -> None:
    assert {case.rpc for case in CASES} == set(ROUTER.by_rpc())


@pytest.mark.parametrize("index", range(len(CASES)), ids=lambda i: CASES[i].rpc.split("/")[-1])
def test_http_answers_like_grpc(index: int, plane: tuple[RestPlane, Ids, dict[str, str]]) -> None:
    p, ids, tokens = plane
    case = CASES[index]
    message = case.request(ids)
    token = tokens[case.token]
    bindings = ROUTER.by_rpc()[case.rpc]
    binding = bindings[index % len(bindings)]
    revision = p.revision()
    response = http_call(p, binding, message, token)
    if not token:  # gRPC's answer is the same UNAUTHENTICATED
        assert response.status_code == 401
        assert response.json()["error"]["status"] == "UNAUTHENTICATED"
        return
    expected: Message | status_pb2.Status
    try:
        expected = grpc_call(p.channel, case.rpc, message, token)
    except grpc.RpcError as error:
        expected = _status(error)
    if isinstance(expected, status_pb2.Status):
        body: dict[str, Any] = response.json()["error"]
        assert response.status_code == body["code"] == http_status(expected.code)
        assert response.status_code >= 400
        assert body["status"] == code_name(expected.code)
        assert body["message"] == expected.message
        assert body["details"] == [json_format.MessageToDict(d) for d in expected.details]
        assert p.revision() == revision
        return
    assert response.status_code == 200, response.text
    _, response_type = method_types(case.rpc)
    assert json_format.ParseDict(response.json(), response_type()) == expected


# -- writes: the same script over both transports, each in an account of its own ------------

Results = dict[str, Message]
_VARYING = {
    "id",
    "etag",
    "createTime",
    "updateTime",
    "rotateTime",
    "token",
    "redactedToken",
    "accountId",
    "configurationId",
    "keyId",
    "snapshotStatus",  # follows the publisher's timing; compared by the reads above
}


def _key_id(r: Results) -> str:
    return str(r["CreateProviderKey"].provider_key.id)  # type: ignore[attr-defined]


def _config_id(r: Results) -> str:
    return str(r["CreateAccessKeyConfiguration"].configuration.id)  # type: ignore[attr-defined]


def _access_key_id(r: Results) -> str:
    return str(r["CreateAccessKey"].access_key.id)  # type: ignore[attr-defined]


def _routes(r: Results) -> cfg.AccessKeyConfiguration:
    return json_format.ParseDict(
        {
            "name": "routes",
            "router": {
                "rules": [
                    {
                        "provider": "openai",
                        "steps": [{"type": "user", "keys": [{"id": _key_id(r)}]}],
                    }
                ]
            },
        },
        cfg.AccessKeyConfiguration(),
    )


def _mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


ACCOUNT_SCRIPT: list[tuple[str, str, Callable[[Results], Message]]] = [
    (
        PK,
        "CreateProviderKey",
        lambda r: pk.CreateProviderKeyRequest(
            provider_key=pk.ProviderKey(
                provider_id="openai",
                name="k",
                description="d",
                value="sk-proj-QzT7wV1nR4bY8uK2mL5pX9cE3hJ6gA0dF",
            )
        ),
    ),
    (
        PK,
        "UpdateProviderKey",
        lambda r: pk.UpdateProviderKeyRequest(
            provider_key=pk.ProviderKey(id=_key_id(r), disabled=True, name="renamed"),
            update_mask=_mask("disabled", "name"),
        ),
    ),
    (
        PK,
        "RotateProviderKey",
        lambda r: pk.RotateProviderKeyRequest(
            id=_key_id(r), value="sk-proj-Hn3Vb8Rt5Wq1Zx7Lm4Kp0Yc6Ju2Gd9Se", name="rotated"
        ),
    ),
    (
        CF,
        "CreateAccessKeyConfiguration",
        lambda r: cfg.CreateAccessKeyConfigurationRequest(configuration=_routes(r)),
    ),
    (
        CF,
        "UpdateAccessKeyConfiguration",
        lambda r: cfg.UpdateAccessKeyConfigurationRequest(
            configuration=cfg.AccessKeyConfiguration(id=_config_id(r), description="new"),
            update_mask=_mask("description"),
        ),
    ),
    (
        AK,
        "CreateAccessKey",
        lambda r: ak.CreateAccessKeyRequest(
            access_key=ak.AccessKey(name="app", configuration_id=_config_id(r))
        ),
    ),
    (
        AK,
        "UpdateAccessKey",
        lambda r: ak.UpdateAccessKeyRequest(
            access_key=ak.AccessKey(id=_access_key_id(r), disabled=True),
            update_mask=_mask("disabled"),
        ),
    ),
    (AK, "DeleteAccessKey", lambda r: ak.DeleteAccessKeyRequest(id=_access_key_id(r))),
    (
        CF,
        "DeleteAccessKeyConfiguration",
        lambda r: cfg.DeleteAccessKeyConfigurationRequest(id=_config_id(r)),
    ),
    (PK, "DeleteProviderKey", lambda r: pk.DeleteProviderKeyRequest(id=_key_id(r))),
    (
        CP,
        "CreateCustomProvider",
        lambda r: prov.CreateCustomProviderRequest(
            custom_provider=prov.CustomProvider(
                provider_id="x-acme",
                name="Acme",
                base_url="https://llm.acme.example/v1",
                formats=[prov.API_FORMAT_OPENAI],
                models=[prov.ProviderModel(id="large", upstream_id="large-v2")],
            )
        ),
    ),
    (
        CP,
        "UpdateCustomProvider",
        lambda r: prov.UpdateCustomProviderRequest(
            custom_provider=prov.CustomProvider(
                id=r["CreateCustomProvider"].custom_provider.id,  # type: ignore[attr-defined]
                name="Acme 2",
            ),
            update_mask=_mask("name"),
        ),
    ),
    (
        CP,
        "DeleteCustomProvider",
        lambda r: prov.DeleteCustomProviderRequest(
            id=r["CreateCustomProvider"].custom_provider.id  # type: ignore[attr-defined]
        ),
    ),
]


def _account_of(r: Results) -> str:
    return str(r["CreateAccount"].account.id)  # type: ignore[attr-defined]


def _admin_key_of(r: Results) -> str:
    return str(r["CreateAdminApiKey"].admin_api_key.id)  # type: ignore[attr-defined]


def _credential_of(r: Results, rpc: str) -> str:
    return str(r[rpc].credential.id)  # type: ignore[attr-defined]


OPERATOR_SCRIPT: list[tuple[str, str, Callable[[Results], Message]]] = [
    (
        ACC,
        "CreateAccount",
        lambda r: acc.CreateAccountRequest(account=acc.Account(display_name="T")),
    ),
    (
        ACC,
        "UpdateAccount",
        lambda r: acc.UpdateAccountRequest(
            account=acc.Account(id=_account_of(r), description="team"),
            update_mask=_mask("description"),
        ),
    ),
    (
        ADK,
        "CreateAdminApiKey",
        lambda r: adk.CreateAdminApiKeyRequest(
            account_id=_account_of(r), admin_api_key=adk.AdminApiKey(name="ci")
        ),
    ),
    (
        ADK,
        "UpdateAdminApiKey",
        lambda r: adk.UpdateAdminApiKeyRequest(
            admin_api_key=adk.AdminApiKey(id=_admin_key_of(r), description="d"),
            update_mask=_mask("description"),
        ),
    ),
    (ADK, "DeleteAdminApiKey", lambda r: adk.DeleteAdminApiKeyRequest(id=_admin_key_of(r))),
    (ACC, "DeleteAccount", lambda r: acc.DeleteAccountRequest(id=_account_of(r), force=True)),
    (
        OC,
        "CreateOperatorCredential",
        lambda r: oc.CreateOperatorCredentialRequest(credential=oc.OperatorCredential(name="ops")),
    ),
    (
        OC,
        "RotateOperatorCredential",
        lambda r: oc.RotateOperatorCredentialRequest(
            id=_credential_of(r, "CreateOperatorCredential")
        ),
    ),
    (
        OC,
        "DeleteOperatorCredential",
        lambda r: oc.DeleteOperatorCredentialRequest(
            id=_credential_of(r, "CreateOperatorCredential")
        ),
    ),
    (
        DP,
        "CreateDataPlaneCredential",
        lambda r: dp.CreateDataPlaneCredentialRequest(credential=dp.DataPlaneCredential(name="p")),
    ),
    (
        DP,
        "DeleteDataPlaneCredential",
        lambda r: dp.DeleteDataPlaneCredentialRequest(
            id=_credential_of(r, "CreateDataPlaneCredential")
        ),
    ),
    (MK, "RotateMasterKey", lambda r: mk.RotateMasterKeyRequest(resume_only=True)),
]


def _normalised(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _normalised(v) for k, v in data.items() if k not in _VARYING}
    if isinstance(data, list):
        return [_normalised(v) for v in data]
    return data


def _run_both(
    p: RestPlane,
    script: list[tuple[str, str, Callable[[Results], Message]]],
    grpc_token: str,
    http_token: str,
) -> None:
    over_grpc: Results = {}
    over_http: Results = {}
    for i, (service, method, build) in enumerate(script):
        rpc = f"/keyway.v1.{service}/{method}"
        _, response_type = method_types(rpc)
        expected = grpc_call(p.channel, rpc, build(over_grpc), grpc_token)
        bindings = ROUTER.by_rpc()[rpc]
        # Alternately the resource and the whole request as the body, on either path.
        binding = bindings[i % len(bindings)]
        response = http_call(p, binding, build(over_http), http_token, whole=i // 2 % 2 == 1)
        assert response.status_code < 300, (method, response.text)
        got = json_format.ParseDict(response.json() if response.content else {}, response_type())
        assert _normalised(json_format.MessageToDict(got)) == _normalised(
            json_format.MessageToDict(expected)
        ), method
        over_grpc[method], over_http[method] = expected, got


def test_writes_answer_over_http_as_over_grpc(
    plane: tuple[RestPlane, Ids, dict[str, str]],
) -> None:
    p, _, tokens = plane
    api = Api(p.channel, auth(p.admin_token))
    _, first = api.new_account(auth(p.operator_token), name="Over gRPC")
    _, second = api.new_account(auth(p.operator_token), name="Over HTTP")
    _run_both(p, ACCOUNT_SCRIPT, first, second)
    _run_both(p, OPERATOR_SCRIPT, tokens["operator"], tokens["operator"])
    written = {method for _, method, _ in ACCOUNT_SCRIPT + OPERATOR_SCRIPT}
    reads_and_refusals_only = {"DeleteDataPlane"}  # needs a connected proxy: test_rest_api
    assert written | reads_and_refusals_only == {
        rpc.split("/")[-1]
        for rpc in ROUTER.by_rpc()
        if not rpc.split("/")[-1].startswith(("Get", "List"))
    }
