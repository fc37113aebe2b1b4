"""Tenancy and authentication: who may call what, and what each tenant can see.

The auth matrix walks every RPC of every admin service from the proto descriptors, so a new
RPC is covered (and must be classified below) without touching the tests.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from keyway.v1 import (
    access_key_configurations_pb2,
    access_keys_pb2,
    accounts_pb2,
    admin_api_keys_pb2,
    data_planes_pb2,
    master_keys_pb2,
    operator_credentials_pb2,
    provider_keys_pb2,
    providers_pb2,
)
from keyway.v1 import access_key_configurations_pb2 as cfg
from keyway.v1 import access_keys_pb2 as ak
from keyway.v1 import accounts_pb2 as acc
from keyway.v1 import admin_api_keys_pb2 as adk
from keyway.v1 import provider_keys_pb2 as pk
from keyway.v1 import providers_pb2 as prov

from control_plane.domain import tokens

from .control_planes import RunningControlPlane
from .rpc_helpers import (
    ANTHROPIC_VALUE,
    OPENAI_VALUE_2,
    Api,
    Metadata,
    auth,
    expect_error,
    router,
    rule,
    with_last_char_changed,
)

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED

METHODS: list[MethodDescriptor] = [
    method
    for module in (
        accounts_pb2,
        admin_api_keys_pb2,
        provider_keys_pb2,
        access_keys_pb2,
        access_key_configurations_pb2,
        providers_pb2,
        master_keys_pb2,
        operator_credentials_pb2,
        data_planes_pb2,
    )
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]

# Who may call what. Every RPC is in exactly one set (checked below).
OPERATOR_ONLY = {
    "AccountService.CreateAccount",
    "AccountService.ListAccounts",
    "AccountService.UpdateAccount",
    "AccountService.DeleteAccount",
    "MasterKeyService.RotateMasterKey",
    *(f"OperatorCredentialService.{m}OperatorCredential" for m in ("Create", "Rotate", "Delete")),
    "OperatorCredentialService.ListOperatorCredentials",
    *(f"DataPlaneService.{m}DataPlaneCredential" for m in ("Create", "Delete")),
    "DataPlaneService.DeleteDataPlane",
    "DataPlaneService.ListDataPlaneCredentials",
}
ACCOUNT_ONLY = {
    *(
        f"ProviderKeyService.{m}Key"
        for m in (
            "CreateProvider",
            "GetProvider",
            "UpdateProvider",
            "DeleteProvider",
            "RotateProvider",
        )
    ),
    "ProviderKeyService.ListProviderKeys",
    *(f"AccessKeyService.{m}AccessKey" for m in ("Create", "Get", "Update", "Delete")),
    "AccessKeyService.ListAccessKeys",
    *(
        f"AccessKeyConfigurationService.{m}AccessKeyConfiguration"
        for m in ("Create", "Get", "Update", "Delete")
    ),
    "AccessKeyConfigurationService.ListAccessKeyConfigurations",
    *(f"ProviderService.{m}CustomProvider" for m in ("Create", "Get", "Update", "Delete")),
    "ProviderService.ListCustomProviders",
}
EITHER = {
    # The operator names the account; an admin acts on its own.
    "AccountService.GetAccount",
    *(f"AdminApiKeyService.{m}AdminApiKey" for m in ("Create", "Get", "Update", "Delete")),
    "AdminApiKeyService.ListAdminApiKeys",
    "ProviderService.ListProviders",
    # Operators see every proxy; admins a redacted view (is my change live?).
    "DataPlaneService.ListDataPlanes",
}


def short_name(method: MethodDescriptor) -> str:
    return f"{method.containing_service.name}.{method.name}"


def test_every_rpc_is_classified() -> None:
    names = [short_name(m) for m in METHODS]
    assert len(names) == len(set(names))
    assert set(names) == OPERATOR_ONLY | ACCOUNT_ONLY | EITHER
    assert not OPERATOR_ONLY & ACCOUNT_ONLY
    assert not OPERATOR_ONLY & EITHER
    assert not ACCOUNT_ONLY & EITHER


def plausible_request(method: MethodDescriptor) -> Message:
    """The request with every id set to a well-formed (unknown) id, so only auth can fail."""
    request = message_factory.GetMessageClass(method.input_type)()
    fields = method.input_type.fields_by_name
    if "id" in fields:
        setattr(request, "id", "x_aaaaaaaaaaaaaaaa")  # noqa: B010 - dynamic message
    for field in fields.values():
        if field.message_type is not None and "id" in field.message_type.fields_by_name:
            setattr(getattr(request, field.name), "id", "x_aaaaaaaaaaaaaaaa")  # noqa: B010
    return request


def invoke(
    channel: grpc.Channel, method: MethodDescriptor, metadata: Metadata | None
) -> Callable[[], object]:
    call: grpc.UnaryUnaryMultiCallable[Message, Message] = channel.unary_unary(
        f"/{method.containing_service.full_name}/{method.name}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=message_factory.GetMessageClass(method.output_type).FromString,
    )
    request = plausible_request(method)
    return lambda: call(request, metadata=metadata)


BAD_CREDENTIALS: list[tuple[str, Callable[[RunningControlPlane], Metadata | None]]] = [
    ("no metadata", lambda cp: None),
    ("other metadata only", lambda cp: (("x-api-key", cp.admin_token),)),
    ("not a bearer", lambda cp: (("authorization", f"Basic {cp.admin_token}"),)),
    ("bearer without token", lambda cp: (("authorization", "Bearer "),)),
    ("bad checksum", lambda cp: auth(with_last_char_changed(cp.admin_token))),
    ("bad checksum, operator", lambda cp: auth(with_last_char_changed(cp.operator_token))),
    ("truncated", lambda cp: auth(cp.admin_token[:-2])),
    ("garbage", lambda cp: auth("hunter2")),
    ("well-formed but unknown", lambda cp: auth(tokens.mint(tokens.TokenKind.ADMIN))),
    ("access key token", lambda cp: auth(tokens.mint(tokens.TokenKind.ACCESS))),
]


@pytest.mark.parametrize("method", METHODS, ids=short_name)
def test_bad_credentials_are_unauthenticated(
    method: MethodDescriptor, control_plane: RunningControlPlane
) -> None:
    store = control_plane.server.store
    before = store.revision()
    for label, credentials in BAD_CREDENTIALS:
        error = expect_error(
            UNAUTHENTICATED, invoke(control_plane.channel, method, credentials(control_plane))
        )
        assert error.reason == "UNAUTHENTICATED", label
    assert store.revision() == before


@pytest.mark.parametrize("method", METHODS, ids=short_name)
def test_data_plane_token_cannot_call_the_admin_api(
    method: MethodDescriptor, control_plane: RunningControlPlane
) -> None:
    token = (control_plane.data_dir / "data-plane.token").read_text().strip()
    assert token.startswith("kwdp_")
    store = control_plane.server.store
    before = store.revision()
    expect_error(DENIED, invoke(control_plane.channel, method, auth(token)))
    assert store.revision() == before


@pytest.mark.parametrize(
    "method", [m for m in METHODS if short_name(m) in ACCOUNT_ONLY], ids=short_name
)
def test_operator_token_is_refused_on_account_scoped_rpcs(
    method: MethodDescriptor, control_plane: RunningControlPlane
) -> None:
    store = control_plane.server.store
    before = store.revision()
    error = expect_error(DENIED, invoke(control_plane.channel, method, control_plane.operator))
    assert "admin API key" in error.message
    assert store.revision() == before


@pytest.mark.parametrize(
    "method", [m for m in METHODS if short_name(m) in OPERATOR_ONLY], ids=short_name
)
def test_admin_token_is_refused_on_operator_rpcs(
    method: MethodDescriptor, control_plane: RunningControlPlane
) -> None:
    store = control_plane.server.store
    before = store.revision()
    error = expect_error(DENIED, invoke(control_plane.channel, method, control_plane.admin))
    assert error.reason == "PERMISSION_DENIED"
    assert store.revision() == before


def test_operator_must_name_the_account(control_plane: RunningControlPlane) -> None:
    op = Api(control_plane.channel, control_plane.operator)
    expect_error(DENIED, lambda: op.accounts.GetAccount(acc.GetAccountRequest(), metadata=op.md))
    for call in (
        lambda: op.admin_keys.CreateAdminApiKey(
            adk.CreateAdminApiKeyRequest(admin_api_key=adk.AdminApiKey(name="x")), metadata=op.md
        ),
        lambda: op.admin_keys.ListAdminApiKeys(adk.ListAdminApiKeysRequest(), metadata=op.md),
    ):
        assert "`--account ACCOUNT_ID` in the CLI" in expect_error(DENIED, call).message


def test_revoked_admin_key_is_refused_at_once(control_plane: RunningControlPlane) -> None:
    a = Api(control_plane.channel, control_plane.admin)
    response = a.admin_keys.CreateAdminApiKey(
        adk.CreateAdminApiKeyRequest(admin_api_key=adk.AdminApiKey(name="temp")), metadata=a.md
    )
    temp = Api(control_plane.channel, auth(response.token))
    assert temp.provider_keys.ListProviderKeys(pk.ListProviderKeysRequest(), metadata=temp.md)

    # A key may revoke itself; the very next call with it is refused.
    temp.admin_keys.DeleteAdminApiKey(
        adk.DeleteAdminApiKeyRequest(id=response.admin_api_key.id), metadata=temp.md
    )
    error = expect_error(
        UNAUTHENTICATED,
        lambda: temp.provider_keys.ListProviderKeys(pk.ListProviderKeysRequest(), metadata=temp.md),
    )
    assert error.reason == "UNAUTHENTICATED"
    # The account's other admin key is unaffected.
    assert a.accounts.GetAccount(acc.GetAccountRequest(), metadata=a.md).account.id


def test_operator_manages_admin_keys_of_any_account(control_plane: RunningControlPlane) -> None:
    op = Api(control_plane.channel, control_plane.operator)
    account, token_b = op.new_account(op.md, "Tenant B")
    created = op.admin_keys.CreateAdminApiKey(
        adk.CreateAdminApiKeyRequest(
            account_id=account.id, admin_api_key=adk.AdminApiKey(name="second")
        ),
        metadata=op.md,
    ).admin_api_key
    assert created.account_id == account.id
    listed = op.admin_keys.ListAdminApiKeys(
        adk.ListAdminApiKeysRequest(account_id=account.id), metadata=op.md
    )
    assert [k.name for k in listed.admin_api_keys] == ["Tenant B admin", "second"]
    got = op.accounts.GetAccount(acc.GetAccountRequest(id=account.id), metadata=op.md)
    assert (got.account.id, got.account.display_name, got.account.etag) == (
        account.id,
        account.display_name,
        account.etag,
    )
    op.admin_keys.UpdateAdminApiKey(
        adk.UpdateAdminApiKeyRequest(
            admin_api_key=adk.AdminApiKey(id=created.id, description="by operator")
        ),
        metadata=op.md,
    )
    op.admin_keys.DeleteAdminApiKey(adk.DeleteAdminApiKeyRequest(id=created.id), metadata=op.md)
    # B's own admin sees its account and keys, not A's.
    b = Api(control_plane.channel, auth(token_b))
    assert b.accounts.GetAccount(acc.GetAccountRequest(), metadata=b.md).account.id == account.id
    own = b.admin_keys.ListAdminApiKeys(adk.ListAdminApiKeysRequest(), metadata=b.md)
    assert [k.account_id for k in own.admin_api_keys] == [account.id]


def test_each_account_sees_only_its_own_resources(control_plane: RunningControlPlane) -> None:
    op = Api(control_plane.channel, control_plane.operator)
    a = Api(control_plane.channel, control_plane.admin)
    _, token_b = op.new_account(op.md, "Tenant B")
    b = Api(control_plane.channel, auth(token_b))

    def populate(api: Api, value: str, provider_id: str) -> dict[str, list[str]]:
        key = api.provider_key("openai", value)
        other = api.provider_key("anthropic", ANTHROPIC_VALUE)
        config = api.configuration({"name": "c", "router": router(rule("openai", key.id))})
        access, _ = api.access_key("app", configuration_id=config.id)
        custom = api.custom_provider(provider_id)
        return {
            "provider_keys": [key.id, other.id],
            "configurations": [config.id],
            "access_keys": [access.id],
            "custom_providers": [custom.id],
        }

    # The same custom provider id may exist in both accounts: ids are per tenant.
    mine = {
        "a": populate(a, OPENAI_VALUE_2, "x-shared"),
        "b": populate(b, OPENAI_VALUE_2, "x-shared"),
    }

    def visible(api: Api) -> dict[str, list[str]]:
        md = api.md
        return {
            "provider_keys": [
                k.id
                for k in api.provider_keys.ListProviderKeys(
                    pk.ListProviderKeysRequest(), metadata=md
                ).provider_keys
            ],
            "configurations": [
                c.id
                for c in api.configurations.ListAccessKeyConfigurations(
                    cfg.ListAccessKeyConfigurationsRequest(), metadata=md
                ).configurations
            ],
            "access_keys": [
                k.id
                for k in api.access_keys.ListAccessKeys(
                    ak.ListAccessKeysRequest(), metadata=md
                ).access_keys
            ],
            "custom_providers": [
                p.id
                for p in api.providers.ListCustomProviders(
                    prov.ListCustomProvidersRequest(), metadata=md
                ).custom_providers
            ],
        }

    assert visible(a) == mine["a"]
    assert visible(b) == mine["b"]

    # A filter naming the other tenant's configuration is refused exactly like
    # one naming no configuration at all: nothing says it exists elsewhere.
    foreign_config = mine["b"]["configurations"][0]
    unknown_config = "akc_" + "a" * 16
    answers: list[tuple[grpc.StatusCode, str]] = []
    for config_id in (foreign_config, unknown_config):
        with pytest.raises(grpc.RpcError) as refused:
            a.access_keys.ListAccessKeys(
                ak.ListAccessKeysRequest(configuration_id=config_id), metadata=a.md
            )
        failed = refused.value
        assert isinstance(failed, grpc.Call)
        answers.append((failed.code(), (failed.details() or "").replace(config_id, "ID")))
    assert answers[0] == answers[1]
    assert answers[0][0] == grpc.StatusCode.INVALID_ARGUMENT

    # The catalog shows each tenant only its own custom providers.
    b.custom_provider("x-only-b")
    catalog_a = a.providers.ListProviders(prov.ListProvidersRequest(), metadata=a.md)
    catalog_b = b.providers.ListProviders(prov.ListProvidersRequest(), metadata=b.md)
    custom_a = [p.id for p in catalog_a.providers if not p.built_in]
    custom_b = [p.id for p in catalog_b.providers if not p.built_in]
    assert custom_a == ["x-shared"]
    assert custom_b == ["x-shared", "x-only-b"]

    # A configuration may not route to, or allow, another tenant's custom provider.
    error = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: a.configuration({"name": "x", "access": {"providers": {"allow": ["x-only-b"]}}}),
    )
    assert error.fields == ("access.providers.allow[0]",)
