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
    # Refusals: the same code, message and details both ways.
    _c(PK, "GetProviderKey", lambda i: pk.GetProviderKeyRequest(id="pk_missing")),
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
