"""Bad input on every admin RPC: the right code, an ErrorInfo reason, BadRequest field paths,
and no partial write (the store revision does not move).

One server serves the whole module: no case may change anything, and each checks that
through the revision, so sharing the world between cases is safe (and fast).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, json_format
from keyway.v1 import access_key_configurations_pb2 as cfg
from keyway.v1 import access_keys_pb2 as ak
from keyway.v1 import accounts_pb2 as acc
from keyway.v1 import admin_api_keys_pb2 as adk
from keyway.v1 import provider_keys_pb2 as pk
from keyway.v1 import providers_pb2 as prov

from control_plane.domain.tokens import TokenKind
from control_plane.server import Settings

from .control_planes import RunningControlPlane
from .rpc_helpers import (
    ANTHROPIC_VALUE,
    OPENAI_VALUE,
    OPENAI_VALUE_2,
    Api,
    auth,
    expect_error,
    router,
    rule,
    running,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
ABORTED = grpc.StatusCode.ABORTED
EXISTS = grpc.StatusCode.ALREADY_EXISTS

N256 = "n" * 256
M4097 = "m" * 4097
UNKNOWN_IDS = {
    "account": "acct_aaaaaaaaaaaaaaaa",
    "admin_key": "adk_aaaaaaaaaaaaaaaa",
    "provider_key": "pk_aaaaaaaaaaaaaaaa",
    "access_key": "ak_aaaaaaaaaaaaaaaa",
    "configuration": "akc_aaaaaaaaaaaaaaaa",
    "custom_provider": "cp_aaaaaaaaaaaaaaaa",
}


@dataclass(frozen=True)
class World:
    """Two accounts with one of everything; `a` is the caller unless a case says otherwise."""

    cp: RunningControlPlane
    op: Api
    a: Api
    b: Api
    account_a: acc.Account
    account_b: acc.Account
    admin_key_a: adk.AdminApiKey
    admin_key_b: adk.AdminApiKey
    openai_a: pk.ProviderKey
    anthropic_a: pk.ProviderKey
    key_b: pk.ProviderKey
    config_a: cfg.AccessKeyConfiguration
    config_b: cfg.AccessKeyConfiguration
    access_a: ak.AccessKey
    access_b: ak.AccessKey
    custom_a: prov.CustomProvider
    custom_b: prov.CustomProvider
    operator_credential: str
    data_plane_credential: str

    def ref(self, name: str) -> str:
        """`$openai_a` -> that resource's id; `?configuration` -> an unknown id of that kind."""
        if name.startswith("?"):
            return UNKNOWN_IDS[name[1:]]
        value: Any = getattr(self, name)
        return value if isinstance(value, str) else str(value.id)


def build_world(cp: RunningControlPlane) -> World:
    op = Api(cp.channel, cp.operator)
    a = Api(cp.channel, cp.admin)
    account_b, token_b = op.new_account(op.md, "Tenant B")
    b = Api(cp.channel, auth(token_b))
    account_a = a.accounts.GetAccount(acc.GetAccountRequest(), metadata=a.md).account

    def admin_key(api: Api) -> adk.AdminApiKey:
        request = adk.CreateAdminApiKeyRequest(admin_api_key=adk.AdminApiKey(name="extra"))
        return api.admin_keys.CreateAdminApiKey(request, metadata=api.md).admin_api_key

    openai_a = a.provider_key("openai", OPENAI_VALUE, "openai a")
    key_b = b.provider_key("openai", OPENAI_VALUE_2, "openai b")
    config_a = a.configuration({"name": "a", "router": router(rule("openai", openai_a.id))})
    config_b = b.configuration({"name": "b", "router": router(rule("openai", key_b.id))})
    return World(
        cp=cp,
        op=op,
        a=a,
        b=b,
        account_a=account_a,
        account_b=account_b,
        admin_key_a=admin_key(a),
        admin_key_b=admin_key(b),
        openai_a=openai_a,
        anthropic_a=a.provider_key("anthropic", ANTHROPIC_VALUE, "anthropic a"),
        key_b=key_b,
        config_a=config_a,
        config_b=config_b,
        access_a=a.access_key("a", config_a.id)[0],
        access_b=b.access_key("b", config_b.id)[0],
        custom_a=a.custom_provider("x-acme"),
        custom_b=b.custom_provider("x-bcorp"),
        operator_credential=credential_id(cp, TokenKind.OPERATOR),
        data_plane_credential=credential_id(cp, TokenKind.DATA_PLANE),
    )


def credential_id(cp: RunningControlPlane, kind: TokenKind) -> str:
    page = cp.server.store.list_credentials(kind, account_id=None, after=0, limit=1)
    return page.items[0].id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir: Path = tmp_path_factory.mktemp("bad-input") / "data"
    with running(Settings(listen="127.0.0.1:0", data_dir=data_dir)) as cp:
        yield build_world(cp)


# -- request builders: `$name` strings in documents become ids of the world ---------------

Call = Callable[[World], object]


def resolve(value: Any, w: World) -> Any:
    if isinstance(value, str) and value[:1] in ("$", "?"):
        return w.ref(value[1:] if value[0] == "$" else value)
    if isinstance(value, dict):
        return {k: resolve(v, w) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, w) for v in value]
    return value


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def create_account(**fields: Any) -> Call:
    return lambda w: w.op.accounts.CreateAccount(
        acc.CreateAccountRequest(account=acc.Account(**fields)), metadata=w.op.md
    )


def update_account(ref: str, paths: tuple[str, ...], **fields: Any) -> Call:
    def call(w: World) -> object:
        account = acc.Account(id=resolve(ref, w), **fields)
        request = acc.UpdateAccountRequest(account=account, update_mask=mask(*paths))
        return w.op.accounts.UpdateAccount(request, metadata=w.op.md)

    return call


def create_admin_key(account: str = "", **fields: Any) -> Call:
    def call(w: World) -> object:
        request = adk.CreateAdminApiKeyRequest(
            account_id=resolve(account, w), admin_api_key=adk.AdminApiKey(**fields)
        )
        api = w.op if account else w.a
        return api.admin_keys.CreateAdminApiKey(request, metadata=api.md)

    return call


def update_admin_key(ref: str, paths: tuple[str, ...], **fields: Any) -> Call:
    def call(w: World) -> object:
        key = adk.AdminApiKey(id=resolve(ref, w), **fields)
        request = adk.UpdateAdminApiKeyRequest(admin_api_key=key, update_mask=mask(*paths))
        return w.a.admin_keys.UpdateAdminApiKey(request, metadata=w.a.md)

    return call


def create_provider_key(value: str = OPENAI_VALUE, **fields: Any) -> Call:
    key = pk.ProviderKey(**{"provider_id": "openai", "name": "k", **fields})
    return lambda w: w.a.provider_keys.CreateProviderKey(
        pk.CreateProviderKeyRequest(provider_key=key, value=value), metadata=w.a.md
    )


def update_provider_key(ref: str, paths: tuple[str, ...], **fields: Any) -> Call:
    def call(w: World) -> object:
        key = pk.ProviderKey(id=resolve(ref, w), **fields)
        request = pk.UpdateProviderKeyRequest(provider_key=key, update_mask=mask(*paths))
        return w.a.provider_keys.UpdateProviderKey(request, metadata=w.a.md)

    return call


def rotate_provider_key(ref: str, value: str = OPENAI_VALUE_2, **fields: Any) -> Call:
    def call(w: World) -> object:
        request = pk.RotateProviderKeyRequest(id=resolve(ref, w), value=value, **fields)
        return w.a.provider_keys.RotateProviderKey(request, metadata=w.a.md)

    return call


def create_access_key(**fields: Any) -> Call:
    def call(w: World) -> object:
        key = ak.AccessKey(**resolve({"name": "k", **fields}, w))
        return w.a.access_keys.CreateAccessKey(
            ak.CreateAccessKeyRequest(access_key=key), metadata=w.a.md
        )

    return call


def update_access_key(ref: str, paths: tuple[str, ...], **fields: Any) -> Call:
    def call(w: World) -> object:
        key = ak.AccessKey(**resolve({"id": ref, **fields}, w))
        request = ak.UpdateAccessKeyRequest(access_key=key, update_mask=mask(*paths))
        return w.a.access_keys.UpdateAccessKey(request, metadata=w.a.md)

    return call


def create_configuration(document: dict[str, Any]) -> Call:
    def call(w: World) -> object:
        config = json_format.ParseDict(
            resolve({"name": "c", **document}, w), cfg.AccessKeyConfiguration()
        )
        request = cfg.CreateAccessKeyConfigurationRequest(configuration=config)
        return w.a.configurations.CreateAccessKeyConfiguration(request, metadata=w.a.md)

    return call


def update_configuration(ref: str, paths: tuple[str, ...], document: dict[str, Any]) -> Call:
    def call(w: World) -> object:
        config = json_format.ParseDict(
            resolve({"id": ref, **document}, w), cfg.AccessKeyConfiguration()
        )
        request = cfg.UpdateAccessKeyConfigurationRequest(
            configuration=config, update_mask=mask(*paths)
        )
        return w.a.configurations.UpdateAccessKeyConfiguration(request, metadata=w.a.md)

    return call


def custom_provider(**fields: Any) -> prov.CustomProvider:
    defaults: dict[str, Any] = {
        "provider_id": "x-newco",
        "name": "New Co",
        "base_url": "https://llm.newco.example/v1",
        "formats": [prov.API_FORMAT_OPENAI],
    }
    return prov.CustomProvider(**{**defaults, **fields})


def create_custom_provider(**fields: Any) -> Call:
    request = prov.CreateCustomProviderRequest(custom_provider=custom_provider(**fields))
    return lambda w: w.a.providers.CreateCustomProvider(request, metadata=w.a.md)


def update_custom_provider(ref: str, paths: tuple[str, ...], **fields: Any) -> Call:
    def call(w: World) -> object:
        provider = prov.CustomProvider(id=resolve(ref, w), **fields)
        request = prov.UpdateCustomProviderRequest(
            custom_provider=provider, update_mask=mask(*paths)
        )
        return w.a.providers.UpdateCustomProvider(request, metadata=w.a.md)

    return call


def get(service: str, rpc: str, request_type: Any, ref: str, *, operator: bool = False) -> Call:
    """Get/Delete-style calls that take only `id`."""

    def call(w: World) -> object:
        api = w.op if operator else w.a
        method = getattr(getattr(api, service), rpc)
        return method(request_type(id=resolve(ref, w)), metadata=api.md)

    return call


# -- the matrix ----------------------------------------------------------------------------

_REASON = {
    INVALID: "INVALID_ARGUMENT",
    NOT_FOUND: "NOT_FOUND",
    ABORTED: "ETAG_MISMATCH",
    EXISTS: "PROVIDER_ID_IN_USE",
}
CONFIG = "INVALID_CONFIGURATION"


def case(
    name: str,
    call: Call,
    code: grpc.StatusCode,
    *fields: str,
    reason: str | None = None,
) -> Any:
    return pytest.param(call, code, fields, reason or _REASON[code], id=name)


# Characters an upstream auth header cannot carry as they are.
BAD_SECRET_CHARACTERS = [
    ("\\x01", "\x01"),
    ("NUL", "\x00"),
    ("DEL", "\x7f"),
    ("escape", "\x1b"),
    ("tab", "\t"),
    ("inner space", " "),
    ("carriage return", "\r"),
    ("no-break space", "\u00a0"),
    ("line separator", "\u2028"),
    ("zero-width space", "\u200b"),
    ("non-ASCII letter", "é"),
]


def key_rule(*keys: str, provider: str = "openai", **extra: Any) -> dict[str, Any]:
    return {"router": router(rule(provider, *keys, **extra))}


ACCOUNTS = [
    case("create account: no display_name", create_account(), INVALID, "display_name"),
    case(
        "create account: blank display_name",
        create_account(display_name="   "),
        INVALID,
        "display_name",
    ),
    case(
        "create account: long display_name",
        create_account(display_name=N256),
        INVALID,
        "display_name",
    ),
    case(
        "create account: long description",
        create_account(display_name="x", description=N256),
        INVALID,
        "description",
    ),
    case(
        "create account: long metadata",
        create_account(display_name="x", metadata=M4097),
        INVALID,
        "metadata",
    ),
    case(
        "create account: everything wrong at once",
        create_account(display_name=N256, description=N256, metadata=M4097),
        INVALID,
        "display_name",
        "description",
        "metadata",
    ),
    case(
        "get account: unknown",
        get("accounts", "GetAccount", acc.GetAccountRequest, "?account", operator=True),
        NOT_FOUND,
    ),
    case(
        "update account: no id",
        update_account("", ("description",), description="x"),
        INVALID,
        "account.id",
    ),
    case(
        "update account: unknown",
        update_account("?account", ("description",), description="x"),
        NOT_FOUND,
    ),
    case(
        "update account: unknown mask path",
        update_account("$account_b", ("description", "id"), description="x"),
        INVALID,
        "update_mask.paths[1]",
    ),
    case(
        "update account: output-only mask path",
        update_account("$account_b", ("create_time",)),
        INVALID,
        "update_mask.paths[0]",
    ),
    case(
        "update account: empty mask and nothing set",
        update_account("$account_b", ()),
        INVALID,
        "update_mask",
    ),
    case(
        "update account: clearing display_name",
        update_account("$account_b", ("display_name",)),
        INVALID,
        "display_name",
    ),
    case(
        "update account: long metadata",
        update_account("$account_b", (), metadata=M4097),
        INVALID,
        "metadata",
    ),
    case(
        "update account: stale etag",
        update_account("$account_b", ("description",), description="x", etag="1"),
        ABORTED,
    ),
    case(
        "delete account: no id",
        get("accounts", "DeleteAccount", acc.DeleteAccountRequest, "", operator=True),
        INVALID,
        "id",
    ),
    case(
        "delete account: unknown",
        get("accounts", "DeleteAccount", acc.DeleteAccountRequest, "?account", operator=True),
        NOT_FOUND,
    ),
    case(
        "delete account: not empty",
        get("accounts", "DeleteAccount", acc.DeleteAccountRequest, "$account_b", operator=True),
        grpc.StatusCode.FAILED_PRECONDITION,
        reason="ACCOUNT_NOT_EMPTY",
    ),
]

ADMIN_KEYS = [
    case("create admin key: no name", create_admin_key(), INVALID, "name"),
    case("create admin key: long name", create_admin_key(name=N256), INVALID, "name"),
    case(
        "create admin key: long description",
        create_admin_key(name="x", description=N256),
        INVALID,
        "description",
    ),
    case(
        "create admin key: long metadata",
        create_admin_key(name="x", metadata=M4097),
        INVALID,
        "metadata",
    ),
    case(
        "create admin key: unknown account",
        create_admin_key("?account", name="x"),
        NOT_FOUND,
    ),
    case(
        "get admin key: no id",
        get("admin_keys", "GetAdminApiKey", adk.GetAdminApiKeyRequest, ""),
        INVALID,
        "id",
    ),
    case(
        "get admin key: unknown",
        get("admin_keys", "GetAdminApiKey", adk.GetAdminApiKeyRequest, "?admin_key"),
        NOT_FOUND,
    ),
    case(
        "get admin key: a provider key id",
        get("admin_keys", "GetAdminApiKey", adk.GetAdminApiKeyRequest, "$openai_a"),
        NOT_FOUND,
    ),
    case(
        "update admin key: unknown",
        update_admin_key("?admin_key", ("name",), name="x"),
        NOT_FOUND,
    ),
    case(
        "update admin key: token in mask",
        update_admin_key("$admin_key_a", ("name", "redacted_token"), name="x"),
        INVALID,
        "update_mask.paths[1]",
    ),
    case(
        "update admin key: account_id in mask",
        update_admin_key("$admin_key_a", ("account_id",), account_id="$account_b"),
        INVALID,
        "update_mask.paths[0]",
    ),
    case(
        "update admin key: clearing name",
        update_admin_key("$admin_key_a", ("name",)),
        INVALID,
        "name",
    ),
    case(
        "update admin key: long description",
        update_admin_key("$admin_key_a", (), description=N256),
        INVALID,
        "description",
    ),
    *[
        case(
            f"{rpc} on the {who} credential",
            get("admin_keys", rpc, request_type, ref, operator=by_operator),
            NOT_FOUND,
        )
        for rpc, request_type in (
            ("GetAdminApiKey", adk.GetAdminApiKeyRequest),
            ("DeleteAdminApiKey", adk.DeleteAdminApiKeyRequest),
        )
        for who, ref, by_operator in (
            ("operator", "$operator_credential", False),
            ("operator's own", "$operator_credential", True),
            ("data-plane", "$data_plane_credential", False),
            ("data-plane (by operator)", "$data_plane_credential", True),
        )
    ],
    case(
        "update the operator credential as an admin key",
        update_admin_key("$operator_credential", ("name",), name="mine now"),
        NOT_FOUND,
    ),
    case(
        "delete admin key: unknown",
        get("admin_keys", "DeleteAdminApiKey", adk.DeleteAdminApiKeyRequest, "?admin_key"),
        NOT_FOUND,
    ),
]

PROVIDER_KEYS = [
    case(
        "create provider key: no provider",
        create_provider_key(provider_id=""),
        INVALID,
        "provider_id",
    ),
    case(
        "create provider key: unknown provider",
        create_provider_key(provider_id="openia"),
        INVALID,
        "provider_id",
    ),
    case(
        "create provider key: provider id is case-sensitive",
        create_provider_key(provider_id="OpenAI"),
        INVALID,
        "provider_id",
    ),
    case(
        "create provider key: another account's custom provider",
        create_provider_key(provider_id="x-bcorp"),
        INVALID,
        "provider_id",
    ),
    case("create provider key: no name", create_provider_key(name=""), INVALID, "name"),
    case("create provider key: long name", create_provider_key(name=N256), INVALID, "name"),
    case(
        "create provider key: long description",
        create_provider_key(description=N256),
        INVALID,
        "description",
    ),
    case(
        "create provider key: long metadata",
        create_provider_key(metadata=M4097),
        INVALID,
        "metadata",
    ),
    case("create provider key: no value", create_provider_key(""), INVALID, "value"),
    case(
        "create provider key: value over 8192",
        create_provider_key("v" * 8193),
        INVALID,
        "value",
    ),
    case(
        "create provider key: value with newline",
        create_provider_key(OPENAI_VALUE + "\n"),
        INVALID,
        "value",
    ),
    case(
        "create provider key: value with spaces around",
        create_provider_key(" " + OPENAI_VALUE),
        INVALID,
        "value",
    ),
    *[
        case(
            f"create provider key: value with {what}",
            create_provider_key(OPENAI_VALUE[:9] + char + OPENAI_VALUE[9:]),
            INVALID,
            "value",
        )
        for what, char in BAD_SECRET_CHARACTERS
    ],
    case(
        "create provider key: several fields",
        create_provider_key("", name="", metadata=M4097),
        INVALID,
        "name",
        "metadata",
        "value",
    ),
    case(
        "get provider key: no id",
        get("provider_keys", "GetProviderKey", pk.GetProviderKeyRequest, ""),
        INVALID,
        "id",
    ),
    case(
        "get provider key: unknown",
        get("provider_keys", "GetProviderKey", pk.GetProviderKeyRequest, "?provider_key"),
        NOT_FOUND,
    ),
    case(
        "get provider key: id of another kind",
        get("provider_keys", "GetProviderKey", pk.GetProviderKeyRequest, "$config_a"),
        NOT_FOUND,
    ),
    case(
        "update provider key: no id",
        update_provider_key("", ("name",), name="x"),
        INVALID,
        "provider_key.id",
    ),
    case(
        "update provider key: unknown",
        update_provider_key("?provider_key", ("name",), name="x"),
        NOT_FOUND,
    ),
    case(
        "update provider key: value is not updatable",
        update_provider_key("$openai_a", ("value",)),
        INVALID,
        "update_mask.paths[0]",
    ),
    case(
        "update provider key: provider is immutable",
        update_provider_key("$openai_a", ("name", "provider_id"), provider_id="anthropic"),
        INVALID,
        "update_mask.paths[1]",
    ),
    case(
        "update provider key: redacted value is output only",
        update_provider_key("$openai_a", ("redacted_value",), redacted_value="x"),
        INVALID,
        "update_mask.paths[0]",
    ),
    case(
        "update provider key: nested unknown path",
        update_provider_key("$openai_a", ("last_error.reason",)),
        INVALID,
        "update_mask.paths[0]",
    ),
    case(
        "update provider key: clearing name",
        update_provider_key("$openai_a", ("name",)),
        INVALID,
        "name",
    ),
    case(
        "update provider key: long name",
        update_provider_key("$openai_a", (), name=N256),
        INVALID,
        "name",
    ),
    case(
        "update provider key: stale etag",
        update_provider_key("$openai_a", ("name",), name="x", etag="1"),
        ABORTED,
    ),
    case("rotate provider key: no id", rotate_provider_key(""), INVALID, "id"),
    case("rotate provider key: unknown", rotate_provider_key("?provider_key"), NOT_FOUND),
    case("rotate provider key: no value", rotate_provider_key("$openai_a", ""), INVALID, "value"),
    case(
        "rotate provider key: value over 8192",
        rotate_provider_key("$openai_a", "v" * 8193),
        INVALID,
        "value",
    ),
    case(
        "rotate provider key: value with newline",
        rotate_provider_key("$openai_a", "sk-new\r\n"),
        INVALID,
        "value",
    ),
    *[
        case(
            f"rotate provider key: value with {what}",
            rotate_provider_key("$openai_a", OPENAI_VALUE_2[:9] + char + OPENAI_VALUE_2[9:]),
            INVALID,
            "value",
        )
        for what, char in BAD_SECRET_CHARACTERS
    ],
    case(
        "rotate provider key: long name",
        rotate_provider_key("$openai_a", name=N256),
        INVALID,
        "name",
    ),
    case(
        "rotate provider key: blank name",
        rotate_provider_key("$openai_a", name="   "),
        INVALID,
        "name",
    ),
    case(
        "list provider keys: unknown provider filter",
        lambda w: w.a.provider_keys.ListProviderKeys(
            pk.ListProviderKeysRequest(provider_id="opneai"), metadata=w.a.md
        ),
        INVALID,
        "provider_id",
    ),
    case(
        "list provider keys: another account's custom provider as filter",
        lambda w: w.a.provider_keys.ListProviderKeys(
            pk.ListProviderKeysRequest(provider_id="x-bcorp"), metadata=w.a.md
        ),
        INVALID,
        "provider_id",
    ),
    case(
        "rotate provider key: stale etag",
        rotate_provider_key("$openai_a", etag="1"),
        ABORTED,
    ),
    case(
        "delete provider key: no id",
        get("provider_keys", "DeleteProviderKey", pk.DeleteProviderKeyRequest, ""),
        INVALID,
        "id",
    ),
    case(
        "delete provider key: unknown",
        get("provider_keys", "DeleteProviderKey", pk.DeleteProviderKeyRequest, "?provider_key"),
        NOT_FOUND,
    ),
    case(
        "delete provider key: referenced by a router",
        get("provider_keys", "DeleteProviderKey", pk.DeleteProviderKeyRequest, "$openai_a"),
        grpc.StatusCode.FAILED_PRECONDITION,
        reason="PROVIDER_KEY_IN_USE",
    ),
]

ACCESS_KEYS = [
    case("create access key: no name", create_access_key(name=""), INVALID, "name"),
    case("create access key: long name", create_access_key(name=N256), INVALID, "name"),
    case(
        "create access key: long description",
        create_access_key(description=N256),
        INVALID,
        "description",
    ),
    case(
        "create access key: long metadata",
        create_access_key(metadata=M4097),
        INVALID,
        "metadata",
    ),
    case(
        "create access key: unknown configuration",
        create_access_key(configuration_id="?configuration"),
        INVALID,
        "configuration_id",
    ),
    case(
        "create access key: another account's configuration",
        create_access_key(configuration_id="$config_b"),
        INVALID,
        "configuration_id",
    ),
    case(
        "get access key: no id",
        get("access_keys", "GetAccessKey", ak.GetAccessKeyRequest, ""),
        INVALID,
        "id",
    ),
    case(
        "get access key: unknown",
        get("access_keys", "GetAccessKey", ak.GetAccessKeyRequest, "?access_key"),
        NOT_FOUND,
    ),
    case(
        "update access key: no id",
        update_access_key("", ("name",), name="x"),
        INVALID,
        "access_key.id",
    ),
    case(
        "update access key: unknown",
        update_access_key("?access_key", ("name",), name="x"),
        NOT_FOUND,
    ),
    case(
        "update access key: unknown configuration",
        update_access_key("$access_a", ("configuration_id",), configuration_id="?configuration"),
        INVALID,
        "configuration_id",
    ),
    case(
        "update access key: another account's configuration",
        update_access_key("$access_a", ("configuration_id",), configuration_id="$config_b"),
        INVALID,
        "configuration_id",
    ),
    case(
        "update access key: token is not updatable",
        update_access_key("$access_a", ("redacted_token",), redacted_token="x"),
        INVALID,
        "update_mask.paths[0]",
    ),
    case(
        "update access key: unknown path",
        update_access_key("$access_a", ("name", "description", "token"), name="x"),
        INVALID,
        "update_mask.paths[2]",
    ),
    case(
        "update access key: clearing name",
        update_access_key("$access_a", ("name",)),
        INVALID,
        "name",
    ),
    case(
        "update access key: long metadata",
        update_access_key("$access_a", (), metadata=M4097),
        INVALID,
        "metadata",
    ),
    case(
        "update access key: stale etag",
        update_access_key("$access_a", ("name",), name="x", etag="1"),
        ABORTED,
    ),
    case(
        "delete access key: unknown",
        get("access_keys", "DeleteAccessKey", ak.DeleteAccessKeyRequest, "?access_key"),
        NOT_FOUND,
    ),
]

CONFIGURATIONS = [
    case(
        "create configuration: no name",
        create_configuration({"name": ""}),
        INVALID,
        "name",
        reason=CONFIG,
    ),
    case(
        "create configuration: long name",
        create_configuration({"name": N256}),
        INVALID,
        "name",
        reason=CONFIG,
    ),
    case(
        "create configuration: long description",
        create_configuration({"description": N256}),
        INVALID,
        "description",
        reason=CONFIG,
    ),
    case(
        "create configuration: long metadata",
        create_configuration({"metadata": M4097}),
        INVALID,
        "metadata",
        reason=CONFIG,
    ),
    case(
        "create configuration: unknown rule provider",
        create_configuration(key_rule("$openai_a", provider="openia")),
        INVALID,
        "router.rules[0].provider",
        reason=CONFIG,
    ),
    case(
        "create configuration: rule without provider",
        create_configuration({"router": {"rules": [{"steps": [{"type": "user"}]}]}}),
        INVALID,
        "router.rules[0].provider",
        "router.rules[0].steps[0].keys",
        reason=CONFIG,
    ),
    case(
        "create configuration: key of another provider",
        create_configuration(key_rule("$anthropic_a")),
        INVALID,
        "router.rules[0].steps[0].keys[0].id",
        reason=CONFIG,
    ),
    case(
        "create configuration: key of another account",
        create_configuration(key_rule("$openai_a", "$key_b")),
        INVALID,
        "router.rules[0].steps[0].keys[1].id",
        reason=CONFIG,
    ),
    case(
        "create configuration: unknown key",
        create_configuration(key_rule("?provider_key")),
        INVALID,
        "router.rules[0].steps[0].keys[0].id",
        reason=CONFIG,
    ),
    case(
        "create configuration: empty key id",
        create_configuration(key_rule("")),
        INVALID,
        "router.rules[0].steps[0].keys[0].id",
        reason=CONFIG,
    ),
    case(
        "create configuration: duplicate provider rule",
        create_configuration(
            {"router": router(rule("openai", "$openai_a"), rule("openai", "$openai_a"))}
        ),
        INVALID,
        "router.rules[1]",
        reason=CONFIG,
    ),
    case(
        "create configuration: duplicate model rule (model ids ignore case)",
        create_configuration(
            {
                "router": router(
                    rule("openai", "$openai_a"),
                    rule("openai", "$openai_a", model="gpt-4o"),
                    rule("openai", "$openai_a", model="GPT-4o"),
                )
            }
        ),
        INVALID,
        "router.rules[2]",
        reason=CONFIG,
    ),
    case(
        "create configuration: unknown step type",
        create_configuration(
            {
                "router": {
                    "rules": [
                        {
                            "provider": "openai",
                            "steps": [{"type": "managed", "keys": [{"id": "$openai_a"}]}],
                        }
                    ]
                }
            }
        ),
        INVALID,
        "router.rules[0].steps[0].type",
        reason=CONFIG,
    ),
    case(
        "create configuration: missing step type",
        create_configuration(
            {
                "router": {
                    "rules": [{"provider": "openai", "steps": [{"keys": [{"id": "$openai_a"}]}]}]
                }
            }
        ),
        INVALID,
        "router.rules[0].steps[0].type",
        reason=CONFIG,
    ),
    case(
        "create configuration: unknown strategy",
        create_configuration(key_rule("$openai_a", keySelectionStrategy="random")),
        INVALID,
        "router.rules[0].steps[0].key_selection_strategy",
        reason=CONFIG,
    ),
    case(
        "create configuration: no steps",
        create_configuration({"router": {"rules": [{"provider": "openai"}]}}),
        INVALID,
        "router.rules[0].steps",
        reason=CONFIG,
    ),
    case(
        "create configuration: no keys",
        create_configuration(key_rule()),
        INVALID,
        "router.rules[0].steps[0].keys",
        reason=CONFIG,
    ),
    case(
        "create configuration: second rule's key is wrong",
        create_configuration(
            {
                "router": router(
                    rule("openai", "$openai_a"),
                    rule("anthropic", "$anthropic_a", "$openai_a", model="claude-sonnet-4-5"),
                )
            }
        ),
        INVALID,
        "router.rules[1].steps[0].keys[1].id",
        reason=CONFIG,
    ),
    case(
        "create configuration: model allow entry without provider",
        create_configuration({"access": {"models": {"allow": ["gpt-4o"]}}}),
        INVALID,
        "access.models.allow[0]",
        reason=CONFIG,
    ),
    case(
        "create configuration: model allow entries with empty parts",
        create_configuration(
            {"access": {"models": {"allow": ["openai/gpt-4o", "openai/", "/gpt-4o", ":gpt-4o"]}}}
        ),
        INVALID,
        "access.models.allow[1]",
        "access.models.allow[2]",
        "access.models.allow[3]",
        reason=CONFIG,
    ),
    case(
        "create configuration: model allow entry of an unknown provider",
        create_configuration({"access": {"models": {"allow": ["openai/gpt-4o", "opnai/gpt-4o"]}}}),
        INVALID,
        "access.models.allow[1]",
        reason=CONFIG,
    ),
    case(
        "create configuration: model allow entry with a space",
        create_configuration({"access": {"models": {"allow": ["openai/gpt 4o"]}}}),
        INVALID,
        "access.models.allow[0]",
        reason=CONFIG,
    ),
    case(
        "create configuration: unknown provider allow entry",
        create_configuration({"access": {"providers": {"allow": ["openai", "x-bcorp", ""]}}}),
        INVALID,
        "access.providers.allow[1]",
        "access.providers.allow[2]",
        reason=CONFIG,
    ),
    case(
        "update configuration: unknown",
        update_configuration("?configuration", ("name",), {"name": "x"}),
        NOT_FOUND,
    ),
    case(
        "update configuration: no id",
        update_configuration("", ("name",), {"name": "x"}),
        INVALID,
        "configuration.id",
    ),
    case(
        "update configuration: key of another account",
        update_configuration("$config_a", ("router",), key_rule("$key_b")),
        INVALID,
        "router.rules[0].steps[0].keys[0].id",
        reason=CONFIG,
    ),
    case(
        "update configuration: bad access only",
        update_configuration(
            "$config_a", ("access",), {"access": {"models": {"allow": ["gpt-4o"]}}}
        ),
        INVALID,
        "access.models.allow[0]",
        reason=CONFIG,
    ),
    case(
        "create configuration: zero requests per minute",
        create_configuration({"name": "l", "limits": {"requestsPerMinute": 0}}),
        INVALID,
        "limits.requests_per_minute",
        reason=CONFIG,
    ),
    case(
        "create configuration: negative concurrency and too high a rate",
        create_configuration(
            {"name": "l", "limits": {"concurrency": -1, "requestsPerMinute": 1_000_001}}
        ),
        INVALID,
        "limits.requests_per_minute",
        "limits.concurrency",
        reason=CONFIG,
    ),
    case(
        "update configuration: concurrency too high",
        update_configuration("$config_a", ("limits",), {"limits": {"concurrency": 100_001}}),
        INVALID,
        "limits.concurrency",
        reason=CONFIG,
    ),
    case(
        "update configuration: output-only path",
        update_configuration("$config_a", ("access_key_count",), {"accessKeyCount": 3}),
        INVALID,
        "update_mask.paths[0]",
    ),
    case(
        "update configuration: sub-field path",
        update_configuration("$config_a", ("router.rules",), {}),
        INVALID,
        "update_mask.paths[0]",
    ),
    case(
        "update configuration: clearing name",
        update_configuration("$config_a", ("name",), {}),
        INVALID,
        "name",
    ),
    case(
        "update configuration: stale etag",
        update_configuration("$config_a", ("name",), {"name": "x", "etag": "1"}),
        ABORTED,
    ),
    case(
        "delete configuration: unknown",
        get(
            "configurations",
            "DeleteAccessKeyConfiguration",
            cfg.DeleteAccessKeyConfigurationRequest,
            "?configuration",
        ),
        NOT_FOUND,
    ),
    case(
        "delete configuration: linked",
        get(
            "configurations",
            "DeleteAccessKeyConfiguration",
            cfg.DeleteAccessKeyConfigurationRequest,
            "$config_a",
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        reason="CONFIGURATION_IN_USE",
    ),
]

CUSTOM_PROVIDERS = [
    case(
        "create custom provider: duplicate provider id",
        create_custom_provider(provider_id="x-acme"),
        EXISTS,
    ),
    case(
        "create custom provider: built-in id",
        create_custom_provider(provider_id="openai"),
        INVALID,
        "provider_id",
    ),
    case(
        "create custom provider: no provider id",
        create_custom_provider(provider_id=""),
        INVALID,
        "provider_id",
    ),
    case(
        "create custom provider: bad provider id",
        create_custom_provider(provider_id="Acme_LLM"),
        INVALID,
        "provider_id",
    ),
    case(
        "create custom provider: no name",
        create_custom_provider(name=""),
        INVALID,
        "name",
    ),
    case(
        "create custom provider: long description",
        create_custom_provider(description=N256),
        INVALID,
        "description",
    ),
    case(
        "create custom provider: long metadata",
        create_custom_provider(metadata=M4097),
        INVALID,
        "metadata",
    ),
    case(
        "create custom provider: no base url",
        create_custom_provider(base_url=""),
        INVALID,
        "base_url",
    ),
    case(
        "create custom provider: http to a public host",
        create_custom_provider(base_url="http://llm.newco.example/v1"),
        INVALID,
        "base_url",
    ),
    case(
        "create custom provider: not http",
        create_custom_provider(base_url="ftp://llm.newco.example/v1"),
        INVALID,
        "base_url",
    ),
    case(
        "create custom provider: credentials in url",
        create_custom_provider(base_url="https://user:pw@llm.newco.example/v1"),
        INVALID,
        "base_url",
    ),
    *[
        case(
            f"create custom provider: private address {url}",
            # A provider id of its own, so one wrongly accepted URL cannot mask the next.
            create_custom_provider(provider_id=f"x-private-{i}", base_url=url),
            INVALID,
            "base_url",
        )
        for i, url in enumerate(
            (
                "https://10.0.0.5/v1",
                "http://127.0.0.1:11434/v1",
                "https://localhost/v1",
                "https://[::1]/v1",
                "https://169.254.169.254/latest",
                "https://192.168.1.20/v1",
                "https://127.1/v1",
                "https://2130706433/v1",
                "https://0x7f000001/v1",
                "https://localhost./v1",
                "https://127.0.0.1./v1",
                "https://100.64.0.1/v1",
            )
        )
    ],
    case(
        "create custom provider: no formats",
        create_custom_provider(formats=[]),
        INVALID,
        "formats",
    ),
    case(
        "create custom provider: unspecified format",
        create_custom_provider(formats=[prov.API_FORMAT_UNSPECIFIED]),
        INVALID,
        "formats[0]",
    ),
    case(
        "create custom provider: repeated format",
        create_custom_provider(formats=[prov.API_FORMAT_OPENAI, prov.API_FORMAT_OPENAI]),
        INVALID,
        "formats",
    ),
    case(
        "create custom provider: unknown auth style",
        create_custom_provider(auth_style=7),
        INVALID,
        "auth_style",
    ),
    case(
        "create custom provider: model listed twice",
        create_custom_provider(models=[prov.ProviderModel(id="big"), prov.ProviderModel(id="BIG")]),
        INVALID,
        "models[1].id",
    ),
    case(
        "create custom provider: model without id",
        create_custom_provider(models=[prov.ProviderModel(upstream_id="x")]),
        INVALID,
        "models[0].id",
    ),
    case(
        "get custom provider: unknown",
        get("providers", "GetCustomProvider", prov.GetCustomProviderRequest, "?custom_provider"),
        NOT_FOUND,
    ),
    case(
        "update custom provider: unknown",
        update_custom_provider("?custom_provider", ("name",), name="x"),
        NOT_FOUND,
    ),
    case(
        "update custom provider: provider id is immutable",
        update_custom_provider("$custom_a", ("provider_id",), provider_id="acme2"),
        INVALID,
        "update_mask.paths[0]",
    ),
    case(
        "update custom provider: http to a public host",
        update_custom_provider("$custom_a", ("base_url",), base_url="http://acme.example/v1"),
        INVALID,
        "base_url",
    ),
    case(
        "update custom provider: private address",
        update_custom_provider("$custom_a", (), base_url="https://192.168.0.1/v1"),
        INVALID,
        "base_url",
    ),
    case(
        "update custom provider: clearing formats",
        update_custom_provider("$custom_a", ("formats",)),
        INVALID,
        "formats",
    ),
    case(
        "update custom provider: stale etag",
        update_custom_provider("$custom_a", ("name",), name="x", etag="1"),
        ABORTED,
    ),
    case(
        "delete custom provider: unknown",
        get(
            "providers",
            "DeleteCustomProvider",
            prov.DeleteCustomProviderRequest,
            "?custom_provider",
        ),
        NOT_FOUND,
    ),
]

# Every Get/Update/Delete/Rotate with the id of account B's resource, called by account A:
# reported exactly like an unknown id.
OTHER_ACCOUNT = [
    case(
        "get another account",
        lambda w: w.a.accounts.GetAccount(
            acc.GetAccountRequest(id=w.account_b.id), metadata=w.a.md
        ),
        NOT_FOUND,
    ),
    case(
        "get another account's admin key",
        get("admin_keys", "GetAdminApiKey", adk.GetAdminApiKeyRequest, "$admin_key_b"),
        NOT_FOUND,
    ),
    case(
        "update another account's admin key",
        update_admin_key("$admin_key_b", ("name",), name="x"),
        NOT_FOUND,
    ),
    case(
        "delete another account's admin key",
        get("admin_keys", "DeleteAdminApiKey", adk.DeleteAdminApiKeyRequest, "$admin_key_b"),
        NOT_FOUND,
    ),
    case(
        "create an admin key in another account",
        lambda w: w.a.admin_keys.CreateAdminApiKey(
            adk.CreateAdminApiKeyRequest(
                account_id=w.account_b.id, admin_api_key=adk.AdminApiKey(name="x")
            ),
            metadata=w.a.md,
        ),
        NOT_FOUND,
    ),
    case(
        "list another account's admin keys",
        lambda w: w.a.admin_keys.ListAdminApiKeys(
            adk.ListAdminApiKeysRequest(account_id=w.account_b.id), metadata=w.a.md
        ),
        NOT_FOUND,
    ),
    case(
        "get another account's provider key",
        get("provider_keys", "GetProviderKey", pk.GetProviderKeyRequest, "$key_b"),
        NOT_FOUND,
    ),
    case(
        "update another account's provider key",
        update_provider_key("$key_b", ("name",), name="x"),
        NOT_FOUND,
    ),
    case(
        "rotate another account's provider key",
        rotate_provider_key("$key_b"),
        NOT_FOUND,
    ),
    case(
        "delete another account's provider key",
        get("provider_keys", "DeleteProviderKey", pk.DeleteProviderKeyRequest, "$key_b"),
        NOT_FOUND,
    ),
    case(
        "get another account's access key",
        get("access_keys", "GetAccessKey", ak.GetAccessKeyRequest, "$access_b"),
        NOT_FOUND,
    ),
    case(
        "update another account's access key",
        update_access_key("$access_b", ("name",), name="x"),
        NOT_FOUND,
    ),
    case(
        "delete another account's access key",
        get("access_keys", "DeleteAccessKey", ak.DeleteAccessKeyRequest, "$access_b"),
        NOT_FOUND,
    ),
    case(
        "get another account's configuration",
        get(
            "configurations",
            "GetAccessKeyConfiguration",
            cfg.GetAccessKeyConfigurationRequest,
            "$config_b",
        ),
        NOT_FOUND,
    ),
    case(
        "update another account's configuration",
        update_configuration("$config_b", ("name",), {"name": "x"}),
        NOT_FOUND,
    ),
    case(
        "delete another account's configuration",
        get(
            "configurations",
            "DeleteAccessKeyConfiguration",
            cfg.DeleteAccessKeyConfigurationRequest,
            "$config_b",
        ),
        NOT_FOUND,
    ),
    case(
        "get another account's custom provider",
        get("providers", "GetCustomProvider", prov.GetCustomProviderRequest, "$custom_b"),
        NOT_FOUND,
    ),
    case(
        "update another account's custom provider",
        update_custom_provider("$custom_b", ("name",), name="x"),
        NOT_FOUND,
    ),
    case(
        "delete another account's custom provider",
        get("providers", "DeleteCustomProvider", prov.DeleteCustomProviderRequest, "$custom_b"),
        NOT_FOUND,
    ),
]

MATRIX = [
    *ACCOUNTS,
    *ADMIN_KEYS,
    *PROVIDER_KEYS,
    *ACCESS_KEYS,
    *CONFIGURATIONS,
    *CUSTOM_PROVIDERS,
    *OTHER_ACCOUNT,
]


@pytest.mark.parametrize(("call", "code", "fields", "reason"), MATRIX)
def test_bad_input_is_refused_without_writing(
    world: World,
    call: Call,
    code: grpc.StatusCode,
    fields: tuple[str, ...],
    reason: str,
) -> None:
    store = world.cp.server.store
    before = store.revision()
    error = expect_error(code, lambda: call(world))
    assert store.revision() == before
    assert error.reason == reason
    assert error.message
    assert error.fields == fields
    if fields:
        assert fields[0] in error.message


def _not_found(world: World, call: Call, ref: str) -> tuple[str, str, tuple[str, ...]]:
    error = expect_error(NOT_FOUND, lambda: call(world))
    own_id = world.ref(ref[1:] if ref.startswith("$") else ref)
    return error.reason, error.message.replace(own_id, "<id>"), error.fields


@pytest.mark.parametrize(
    ("service", "rpc", "request_type", "foreign", "unknown"),
    [
        ("provider_keys", "GetProviderKey", pk.GetProviderKeyRequest, "$key_b", "?provider_key"),
        (
            "provider_keys",
            "DeleteProviderKey",
            pk.DeleteProviderKeyRequest,
            "$key_b",
            "?provider_key",
        ),
        ("access_keys", "GetAccessKey", ak.GetAccessKeyRequest, "$access_b", "?access_key"),
        ("admin_keys", "GetAdminApiKey", adk.GetAdminApiKeyRequest, "$admin_key_b", "?admin_key"),
        (
            "configurations",
            "GetAccessKeyConfiguration",
            cfg.GetAccessKeyConfigurationRequest,
            "$config_b",
            "?configuration",
        ),
        (
            "providers",
            "GetCustomProvider",
            prov.GetCustomProviderRequest,
            "$custom_b",
            "?custom_provider",
        ),
    ],
)
def test_foreign_ids_look_exactly_like_unknown_ones(
    world: World, service: str, rpc: str, request_type: Any, foreign: str, unknown: str
) -> None:
    assert _not_found(world, get(service, rpc, request_type, foreign), foreign) == _not_found(
        world, get(service, rpc, request_type, unknown), unknown
    )
