"""Happy paths of every admin RPC against a real server and a real SQLite store.

Round trips per resource, pagination, update masks and etags (table-driven over the
resource kinds), and the product semantics users notice: redaction, rotation in place,
tokens shown once, configuration linking, scope normalisation and the documented JSON shape.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, json_format
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from keyway.v1 import access_key_configurations_pb2 as cfg
from keyway.v1 import access_keys_pb2 as ak
from keyway.v1 import accounts_pb2 as acc
from keyway.v1 import admin_api_keys_pb2 as adk
from keyway.v1 import provider_keys_pb2 as pk
from keyway.v1 import providers_pb2 as prov

from control_plane.server import Settings

from .control_planes import RunningControlPlane
from .proxies import caught_up
from .rpc_helpers import (
    ANTHROPIC_VALUE,
    OPENAI_VALUE,
    OPENAI_VALUE_2,
    Api,
    auth,
    expect_error,
    product_document,
    router,
    rule,
    running,
)
from .stores import BACKENDS, rows_of, settings_for

INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(params=BACKENDS)
def control_plane_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Every test here runs on SQLite and on PostgreSQL."""
    return settings_for(str(request.param), tmp_path)


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


@pytest.fixture
def api(control_plane: RunningControlPlane) -> Api:
    return Api(control_plane.channel, control_plane.admin)


@pytest.fixture
def op(control_plane: RunningControlPlane) -> Api:
    return Api(control_plane.channel, control_plane.operator)


def secret_of(control_plane: RunningControlPlane, key_id: str) -> str:
    return control_plane.server.store.reveal(key_id).reveal()


# -- one table describing every resource with Get/List/Update/Delete -----------------------


@dataclass(frozen=True)
class Kind:
    """How to drive one resource type through the API; `operator` picks the token."""

    name: str
    operator: bool
    prefix: str
    create: Callable[[Api, int], Any]
    get: Callable[[Api, str], Any]
    list: Callable[[Api, int, str], tuple[list[str], str]]
    update: Callable[[Api, Any], Any]
    """Sends the given resource message with update_mask=["description"]."""
    delete: Callable[[Api, str, str], object]


def _stored(account: acc.Account) -> acc.Account:
    """The account as stored: without its snapshot status, which moves on its own as
    snapshots are published (covered by the quarantine tests)."""
    account.ClearField("snapshot_status")
    return account


def _account_create(a: Api, i: int) -> acc.Account:
    request = acc.CreateAccountRequest(account=acc.Account(display_name=f"account {i}"))
    return _stored(a.accounts.CreateAccount(request, metadata=a.md).account)


def _account_list(a: Api, size: int, token: str) -> tuple[list[str], str]:
    r = a.accounts.ListAccounts(
        acc.ListAccountsRequest(page_size=size, page_token=token), metadata=a.md
    )
    return [x.id for x in r.accounts], r.next_page_token


def _admin_key_create(a: Api, i: int) -> adk.AdminApiKey:
    request = adk.CreateAdminApiKeyRequest(admin_api_key=adk.AdminApiKey(name=f"admin {i}"))
    return a.admin_keys.CreateAdminApiKey(request, metadata=a.md).admin_api_key


def _admin_key_list(a: Api, size: int, token: str) -> tuple[list[str], str]:
    r = a.admin_keys.ListAdminApiKeys(
        adk.ListAdminApiKeysRequest(page_size=size, page_token=token), metadata=a.md
    )
    return [x.id for x in r.admin_api_keys], r.next_page_token


def _provider_key_list(a: Api, size: int, token: str) -> tuple[list[str], str]:
    r = a.provider_keys.ListProviderKeys(
        pk.ListProviderKeysRequest(page_size=size, page_token=token), metadata=a.md
    )
    return [x.id for x in r.provider_keys], r.next_page_token


def _access_key_list(a: Api, size: int, token: str) -> tuple[list[str], str]:
    r = a.access_keys.ListAccessKeys(
        ak.ListAccessKeysRequest(page_size=size, page_token=token), metadata=a.md
    )
    return [x.id for x in r.access_keys], r.next_page_token


def _configuration_list(a: Api, size: int, token: str) -> tuple[list[str], str]:
    r = a.configurations.ListAccessKeyConfigurations(
        cfg.ListAccessKeyConfigurationsRequest(page_size=size, page_token=token), metadata=a.md
    )
    return [x.id for x in r.configurations], r.next_page_token


def _custom_provider_list(a: Api, size: int, token: str) -> tuple[list[str], str]:
    r = a.providers.ListCustomProviders(
        prov.ListCustomProvidersRequest(page_size=size, page_token=token), metadata=a.md
    )
    return [x.id for x in r.custom_providers], r.next_page_token


DESCRIPTION = mask("description")

KINDS = [
    Kind(
        name="account",
        operator=True,
        prefix="acct_",
        create=_account_create,
        get=lambda a, i: _stored(
            a.accounts.GetAccount(acc.GetAccountRequest(id=i), metadata=a.md).account
        ),
        list=_account_list,
        update=lambda a, m: _stored(
            a.accounts.UpdateAccount(
                acc.UpdateAccountRequest(account=m, update_mask=DESCRIPTION), metadata=a.md
            ).account
        ),
        delete=lambda a, i, e: a.accounts.DeleteAccount(
            acc.DeleteAccountRequest(id=i, etag=e), metadata=a.md
        ),
    ),
    Kind(
        name="admin API key",
        operator=False,
        prefix="adk_",
        create=_admin_key_create,
        get=lambda a, i: (
            a.admin_keys.GetAdminApiKey(
                adk.GetAdminApiKeyRequest(id=i), metadata=a.md
            ).admin_api_key
        ),
        list=_admin_key_list,
        update=lambda a, m: (
            a.admin_keys.UpdateAdminApiKey(
                adk.UpdateAdminApiKeyRequest(admin_api_key=m, update_mask=DESCRIPTION),
                metadata=a.md,
            ).admin_api_key
        ),
        delete=lambda a, i, e: a.admin_keys.DeleteAdminApiKey(
            adk.DeleteAdminApiKeyRequest(id=i, etag=e), metadata=a.md
        ),
    ),
    Kind(
        name="provider key",
        operator=False,
        prefix="pk_",
        create=lambda a, i: a.provider_key(name=f"key {i}"),
        get=lambda a, i: (
            a.provider_keys.GetProviderKey(
                pk.GetProviderKeyRequest(id=i), metadata=a.md
            ).provider_key
        ),
        list=_provider_key_list,
        update=lambda a, m: (
            a.provider_keys.UpdateProviderKey(
                pk.UpdateProviderKeyRequest(provider_key=m, update_mask=DESCRIPTION), metadata=a.md
            ).provider_key
        ),
        delete=lambda a, i, e: a.provider_keys.DeleteProviderKey(
            pk.DeleteProviderKeyRequest(id=i, etag=e), metadata=a.md
        ),
    ),
    Kind(
        name="access key",
        operator=False,
        prefix="ak_",
        create=lambda a, i: a.access_key(name=f"app {i}")[0],
        get=lambda a, i: (
            a.access_keys.GetAccessKey(ak.GetAccessKeyRequest(id=i), metadata=a.md).access_key
        ),
        list=_access_key_list,
        update=lambda a, m: (
            a.access_keys.UpdateAccessKey(
                ak.UpdateAccessKeyRequest(access_key=m, update_mask=DESCRIPTION), metadata=a.md
            ).access_key
        ),
        delete=lambda a, i, e: a.access_keys.DeleteAccessKey(
            ak.DeleteAccessKeyRequest(id=i, etag=e), metadata=a.md
        ),
    ),
    Kind(
        name="configuration",
        operator=False,
        prefix="akc_",
        create=lambda a, i: a.configuration({"name": f"config {i}"}),
        get=lambda a, i: (
            a.configurations.GetAccessKeyConfiguration(
                cfg.GetAccessKeyConfigurationRequest(id=i), metadata=a.md
            ).configuration
        ),
        list=_configuration_list,
        update=lambda a, m: (
            a.configurations.UpdateAccessKeyConfiguration(
                cfg.UpdateAccessKeyConfigurationRequest(configuration=m, update_mask=DESCRIPTION),
                metadata=a.md,
            ).configuration
        ),
        delete=lambda a, i, e: a.configurations.DeleteAccessKeyConfiguration(
            cfg.DeleteAccessKeyConfigurationRequest(id=i, etag=e), metadata=a.md
        ),
    ),
    Kind(
        name="custom provider",
        operator=False,
        prefix="cp_",
        create=lambda a, i: a.custom_provider(provider_id=f"x-acme-{i}"),
        get=lambda a, i: (
            a.providers.GetCustomProvider(
                prov.GetCustomProviderRequest(id=i), metadata=a.md
            ).custom_provider
        ),
        list=_custom_provider_list,
        update=lambda a, m: (
            a.providers.UpdateCustomProvider(
                prov.UpdateCustomProviderRequest(custom_provider=m, update_mask=DESCRIPTION),
                metadata=a.md,
            ).custom_provider
        ),
        delete=lambda a, i, e: a.providers.DeleteCustomProvider(
            prov.DeleteCustomProviderRequest(id=i, etag=e), metadata=a.md
        ),
    ),
]


def api_for(kind: Kind, control_plane: RunningControlPlane) -> Api:
    token = control_plane.operator if kind.operator else control_plane.admin
    return Api(control_plane.channel, token)


def preexisting(kind: Kind, a: Api) -> list[str]:
    """Ids that exist before the test creates any (the bootstrap account and admin key)."""
    ids, _ = kind.list(a, 1000, "")
    return ids


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_create_get_update_delete_round_trip(
    kind: Kind, control_plane: RunningControlPlane
) -> None:
    a = api_for(kind, control_plane)
    before = preexisting(kind, a)
    created = kind.create(a, 1)
    assert created.id.startswith(kind.prefix)
    assert created.etag
    assert created.create_time.ToMicroseconds() > 0
    assert created.update_time == created.create_time

    assert kind.get(a, created.id) == created
    assert kind.list(a, 1000, "")[0] == [*before, created.id]

    changed = copy.deepcopy(created)
    changed.description = "now described"
    updated = kind.update(a, changed)
    assert updated.id == created.id
    assert updated.description == "now described"
    assert updated.etag != created.etag
    assert updated.update_time.ToMicroseconds() >= created.update_time.ToMicroseconds()
    assert updated.create_time == created.create_time
    assert kind.get(a, created.id) == updated

    kind.delete(a, created.id, "")
    expect_error(grpc.StatusCode.NOT_FOUND, lambda: kind.get(a, created.id))
    assert kind.list(a, 1000, "")[0] == before


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_etags_make_writes_conditional(kind: Kind, control_plane: RunningControlPlane) -> None:
    a = api_for(kind, control_plane)
    store = control_plane.server.store
    created = kind.create(a, 1)
    first = copy.deepcopy(created)
    first.description = "first"
    updated = kind.update(a, first)  # matching etag: accepted
    assert updated.etag not in ("", created.etag)

    stale = copy.deepcopy(created)  # still carries the old etag
    stale.description = "lost update"
    revision = store.revision()
    error = expect_error(grpc.StatusCode.ABORTED, lambda: kind.update(a, stale))
    assert error.reason == "ETAG_MISMATCH"
    assert created.id in error.message
    error = expect_error(grpc.StatusCode.ABORTED, lambda: kind.delete(a, created.id, created.etag))
    assert error.reason == "ETAG_MISMATCH"
    assert store.revision() == revision
    assert kind.get(a, created.id).description == "first"

    no_etag = copy.deepcopy(updated)
    no_etag.etag = ""
    no_etag.description = "unconditional"
    again = kind.update(a, no_etag)
    assert again.etag not in (updated.etag, created.etag)

    kind.delete(a, created.id, again.etag)
    expect_error(grpc.StatusCode.NOT_FOUND, lambda: kind.get(a, created.id))


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_pagination_walks_creation_order(kind: Kind, control_plane: RunningControlPlane) -> None:
    a = api_for(kind, control_plane)
    expected = preexisting(kind, a) + [kind.create(a, i).id for i in range(5)]
    assert len(expected) >= 5

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        ids, token = kind.list(a, 2, token)
        assert 0 < len(ids) <= 2
        seen += ids
        pages += 1
        if not token:
            break
    assert seen == expected
    assert pages == (len(expected) + 1) // 2

    # Default page size covers everything here, and a page exactly as big as the rest
    # ends the listing without a dangling token.
    assert kind.list(a, 0, "") == (expected, "")
    assert kind.list(a, len(expected), "") == (expected, "")
    _, token = kind.list(a, len(expected) - 1, "")
    assert kind.list(a, 5, token) == (expected[-1:], "")


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
@pytest.mark.parametrize("token", ["garbage!", "eyJhIjogLTF9", "bm90IGpzb24", "W10"])
def test_bad_page_token_names_the_field(
    kind: Kind, token: str, control_plane: RunningControlPlane
) -> None:
    a = api_for(kind, control_plane)
    error = expect_error(INVALID, lambda: kind.list(a, 2, token))
    assert error.fields == ("page_token",)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
@pytest.mark.parametrize("size", [-1, 1001])
def test_bad_page_size_names_the_field(
    kind: Kind, size: int, control_plane: RunningControlPlane
) -> None:
    a = api_for(kind, control_plane)
    error = expect_error(INVALID, lambda: kind.list(a, size, ""))
    assert error.fields == ("page_size",)


def test_page_token_is_bound_to_its_filter(api: Api, op: Api) -> None:
    for i in range(3):
        api.provider_key("openai", name=f"o{i}")
        api.provider_key("anthropic", ANTHROPIC_VALUE, name=f"a{i}")
    first = api.provider_keys.ListProviderKeys(
        pk.ListProviderKeysRequest(page_size=1, provider_id="openai"), metadata=api.md
    )
    assert [k.provider_id for k in first.provider_keys] == ["openai"]
    assert first.next_page_token
    rest = api.provider_keys.ListProviderKeys(
        pk.ListProviderKeysRequest(
            page_size=10, provider_id="openai", page_token=first.next_page_token
        ),
        metadata=api.md,
    )
    assert [k.name for k in rest.provider_keys] == ["o1", "o2"]

    def with_filter(provider: str) -> Callable[[], object]:
        request = pk.ListProviderKeysRequest(provider_id=provider, page_token=first.next_page_token)
        return lambda: api.provider_keys.ListProviderKeys(request, metadata=api.md)

    for other in ("anthropic", ""):
        assert expect_error(INVALID, with_filter(other)).fields == ("page_token",)

    config = api.configuration()
    for i in range(2):
        api.access_key(f"linked {i}", configuration_id=config.id)
    linked = api.access_keys.ListAccessKeys(
        ak.ListAccessKeysRequest(page_size=1, configuration_id=config.id), metadata=api.md
    )
    assert linked.next_page_token
    error = expect_error(
        INVALID,
        lambda: api.access_keys.ListAccessKeys(
            ak.ListAccessKeysRequest(page_token=linked.next_page_token), metadata=api.md
        ),
    )
    assert error.fields == ("page_token",)

    # The operator lists admin keys per account; a token of one account's list is refused
    # for another account's.
    default_account = api.accounts.GetAccount(acc.GetAccountRequest(), metadata=api.md).account
    second, _ = op.new_account(op.md)
    api.admin_keys.CreateAdminApiKey(
        adk.CreateAdminApiKeyRequest(admin_api_key=adk.AdminApiKey(name="extra")),
        metadata=api.md,
    )
    page = op.admin_keys.ListAdminApiKeys(
        adk.ListAdminApiKeysRequest(account_id=default_account.id, page_size=1), metadata=op.md
    )
    assert page.next_page_token
    error = expect_error(
        INVALID,
        lambda: op.admin_keys.ListAdminApiKeys(
            adk.ListAdminApiKeysRequest(account_id=second.id, page_token=page.next_page_token),
            metadata=op.md,
        ),
    )
    assert error.fields == ("page_token",)


# -- update masks ----------------------------------------------------------------------------


def test_update_mask_writes_only_named_paths(api: Api) -> None:
    key = api.provider_key(name="original")
    request = pk.UpdateProviderKeyRequest(
        provider_key=pk.ProviderKey(
            id=key.id, name="ignored", description="described", metadata="also ignored"
        ),
        update_mask=mask("description"),
    )
    updated = api.provider_keys.UpdateProviderKey(request, metadata=api.md).provider_key
    assert (updated.name, updated.description, updated.metadata) == (
        "original",
        "described",
        "",
    )

    # A named path with an empty value clears it.
    cleared = api.provider_keys.UpdateProviderKey(
        pk.UpdateProviderKeyRequest(
            provider_key=pk.ProviderKey(id=key.id), update_mask=mask("description")
        ),
        metadata=api.md,
    ).provider_key
    assert cleared.description == ""
    assert cleared.name == "original"


def test_empty_update_mask_means_the_fields_that_are_set(api: Api) -> None:
    key = api.provider_key(name="original")
    api.provider_keys.UpdateProviderKey(
        pk.UpdateProviderKeyRequest(
            provider_key=pk.ProviderKey(id=key.id, description="d", metadata="m")
        ),
        metadata=api.md,
    )
    updated = api.provider_keys.UpdateProviderKey(
        pk.UpdateProviderKeyRequest(provider_key=pk.ProviderKey(id=key.id, metadata="m2")),
        metadata=api.md,
    ).provider_key
    assert (updated.name, updated.description, updated.metadata) == ("original", "d", "m2")


def test_account_update_mask_and_display_name(op: Api) -> None:
    account = op.accounts.CreateAccount(
        acc.CreateAccountRequest(
            account=acc.Account(display_name="Team", description="d", metadata="m")
        ),
        metadata=op.md,
    ).account
    updated = op.accounts.UpdateAccount(
        acc.UpdateAccountRequest(
            account=acc.Account(id=account.id, display_name="Renamed", description="x"),
            update_mask=mask("display_name"),
        ),
        metadata=op.md,
    ).account
    assert (updated.display_name, updated.description, updated.metadata) == ("Renamed", "d", "m")


# -- provider keys ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "redacted"),
    [
        ("sk-proj-abcdefghijklmnopqrstuvwxyz", "sk-proj-ab***wxyz"),
        ("0123456789abcdefWXYZ", "0123456789***WXYZ"),  # exactly 20
        ("0123456789abcdeWXYZ", "***WXYZ"),  # 19
        ("1234WXYZ", "***WXYZ"),  # exactly 8
        ("123WXYZ", "***"),  # 7
        ("x", "***"),
    ],
)
def test_provider_key_value_is_redacted(
    value: str, redacted: str, api: Api, control_plane: RunningControlPlane
) -> None:
    key = api.provider_key(value=value)
    assert key.redacted_value == redacted
    got = api.provider_keys.GetProviderKey(pk.GetProviderKeyRequest(id=key.id), metadata=api.md)
    assert got.provider_key.redacted_value == redacted
    listed = api.provider_keys.ListProviderKeys(pk.ListProviderKeysRequest(), metadata=api.md)
    assert [k.redacted_value for k in listed.provider_keys] == [redacted]
    assert secret_of(control_plane, key.id) == value


def test_provider_key_fields_round_trip(api: Api) -> None:
    created = api.provider_keys.CreateProviderKey(
        pk.CreateProviderKeyRequest(
            provider_key=pk.ProviderKey(
                provider_id="anthropic", name="Claude", description="team b", metadata='{"a":1}'
            ),
            value=ANTHROPIC_VALUE,
        ),
        metadata=api.md,
    ).provider_key
    assert created.provider_id == "anthropic"
    assert (created.name, created.description, created.metadata) == (
        "Claude",
        "team b",
        '{"a":1}',
    )
    assert created.rotate_time.ToMicroseconds() > 0
    assert not created.HasField("last_used_time")
    assert not created.HasField("last_error")


def test_list_provider_keys_filters_by_provider(api: Api) -> None:
    o1 = api.provider_key("openai", name="o1")
    a1 = api.provider_key("anthropic", ANTHROPIC_VALUE, name="a1")
    o2 = api.provider_key("openai", OPENAI_VALUE_2, name="o2")

    def ids(provider: str) -> list[str]:
        response = api.provider_keys.ListProviderKeys(
            pk.ListProviderKeysRequest(provider_id=provider), metadata=api.md
        )
        return [k.id for k in response.provider_keys]

    assert ids("openai") == [o1.id, o2.id]
    assert ids("anthropic") == [a1.id]
    assert ids("") == [o1.id, a1.id, o2.id]
    assert ids("groq") == []


def test_rotate_keeps_id_and_replaces_the_secret(
    api: Api, control_plane: RunningControlPlane
) -> None:
    key = api.provider_key(value=OPENAI_VALUE, name="primary")
    config = api.configuration({"name": "c", "router": router(rule("openai", key.id))})

    rotated = api.provider_keys.RotateProviderKey(
        pk.RotateProviderKeyRequest(id=key.id, value=OPENAI_VALUE_2, etag=key.etag),
        metadata=api.md,
    ).provider_key
    assert rotated.id == key.id
    assert rotated.name == "primary"  # empty name keeps the current one
    assert rotated.redacted_value == OPENAI_VALUE_2[:10] + "***" + OPENAI_VALUE_2[-4:]
    assert rotated.redacted_value != key.redacted_value
    assert rotated.etag != key.etag
    assert rotated.rotate_time.ToMicroseconds() > key.rotate_time.ToMicroseconds()
    assert rotated.create_time == key.create_time
    assert secret_of(control_plane, key.id) == OPENAI_VALUE_2

    renamed = api.provider_keys.RotateProviderKey(
        pk.RotateProviderKeyRequest(id=key.id, value=OPENAI_VALUE, name="primary v3"),
        metadata=api.md,
    ).provider_key
    assert renamed.name == "primary v3"
    assert secret_of(control_plane, key.id) == OPENAI_VALUE

    # The configuration that references the key is untouched and still valid.
    got = api.configurations.GetAccessKeyConfiguration(
        cfg.GetAccessKeyConfigurationRequest(id=config.id), metadata=api.md
    ).configuration
    assert got == config


def test_update_never_changes_the_secret(api: Api, control_plane: RunningControlPlane) -> None:
    key = api.provider_key(value=OPENAI_VALUE)
    for paths in (("name",), ("description", "metadata"), ()):
        api.provider_keys.UpdateProviderKey(
            pk.UpdateProviderKeyRequest(
                provider_key=pk.ProviderKey(id=key.id, name="n", description="d", metadata="m"),
                update_mask=mask(*paths),
            ),
            metadata=api.md,
        )
    got = api.provider_keys.GetProviderKey(pk.GetProviderKeyRequest(id=key.id), metadata=api.md)
    assert got.provider_key.redacted_value == key.redacted_value
    assert got.provider_key.rotate_time == key.rotate_time
    assert secret_of(control_plane, key.id) == OPENAI_VALUE


def test_delete_provider_key_refused_while_a_router_references_it(
    api: Api, control_plane: RunningControlPlane
) -> None:
    key = api.provider_key(name="shared")
    spare = api.provider_key(value=OPENAI_VALUE_2, name="spare")
    first = api.configuration({"name": "one", "router": router(rule("openai", key.id))})
    second = api.configuration(
        {"name": "two", "router": router(rule("openai", spare.id, key.id, model="gpt-4o"))}
    )
    api.configuration({"name": "unrelated", "router": router(rule("openai", spare.id))})

    revision = control_plane.server.store.revision()
    error = expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: api.provider_keys.DeleteProviderKey(
            pk.DeleteProviderKeyRequest(id=key.id), metadata=api.md
        ),
    )
    assert error.reason == "PROVIDER_KEY_IN_USE"
    assert first.id in error.message
    assert second.id in error.message
    assert set(error.subjects) == {first.id, second.id}
    assert control_plane.server.store.revision() == revision

    for config in (first, second):
        api.configurations.UpdateAccessKeyConfiguration(
            cfg.UpdateAccessKeyConfigurationRequest(
                configuration=cfg.AccessKeyConfiguration(id=config.id),
                update_mask=mask("router"),
            ),
            metadata=api.md,
        )
    api.provider_keys.DeleteProviderKey(pk.DeleteProviderKeyRequest(id=key.id), metadata=api.md)
    expect_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: api.provider_keys.GetProviderKey(
            pk.GetProviderKeyRequest(id=key.id), metadata=api.md
        ),
    )


# -- access keys and admin API keys -----------------------------------------------------


def test_access_key_token_is_shown_once(api: Api) -> None:
    key, token = api.access_key("app")
    assert token.startswith("kwak_")
    assert len(token) >= 30
    assert key.redacted_token == token[:10] + "***" + token[-4:]
    assert key.configuration_id == ""

    got = api.access_keys.GetAccessKey(ak.GetAccessKeyRequest(id=key.id), metadata=api.md)
    listed = api.access_keys.ListAccessKeys(ak.ListAccessKeysRequest(), metadata=api.md)
    assert got.access_key == key
    assert list(listed.access_keys) == [key]
    for response in (got, listed):
        assert token.encode() not in response.SerializeToString()
        assert token[10:-4] not in str(response)

    _, other = api.access_key("app 2")
    assert other != token

    # An access key is not an admin credential.
    expect_error(
        grpc.StatusCode.UNAUTHENTICATED,
        lambda: api.provider_keys.ListProviderKeys(
            pk.ListProviderKeysRequest(), metadata=auth(token)
        ),
    )


def test_admin_api_key_token_is_shown_once_and_works(
    api: Api, control_plane: RunningControlPlane
) -> None:
    response = api.admin_keys.CreateAdminApiKey(
        adk.CreateAdminApiKeyRequest(admin_api_key=adk.AdminApiKey(name="ci")), metadata=api.md
    )
    token, key = response.token, response.admin_api_key
    assert token.startswith("kwadm_")
    assert key.redacted_token == token[:10] + "***" + token[-4:]
    # The account's snapshot status moves when the write is published: read it after.
    caught_up(control_plane)
    own = api.accounts.GetAccount(acc.GetAccountRequest(), metadata=api.md).account
    assert key.account_id == own.id

    got = api.admin_keys.GetAdminApiKey(adk.GetAdminApiKeyRequest(id=key.id), metadata=api.md)
    listed = api.admin_keys.ListAdminApiKeys(adk.ListAdminApiKeysRequest(), metadata=api.md)
    assert got.admin_api_key == key
    assert key in listed.admin_api_keys
    for message in (got, listed):
        assert token.encode() not in message.SerializeToString()

    as_new = Api(control_plane.channel, auth(token))
    assert as_new.accounts.GetAccount(acc.GetAccountRequest(), metadata=as_new.md).account == own


def test_linking_and_unlinking_a_configuration(api: Api) -> None:
    config = api.configuration({"name": "scoped"})
    other = api.configuration({"name": "other"})
    assert config.access_key_count == 0
    linked, _ = api.access_key("linked", configuration_id=config.id)
    free, _ = api.access_key("free")
    assert linked.configuration_id == config.id

    def count(config_id: str) -> int:
        return api.configurations.GetAccessKeyConfiguration(
            cfg.GetAccessKeyConfigurationRequest(id=config_id), metadata=api.md
        ).configuration.access_key_count

    def linked_to(config_id: str) -> list[str]:
        response = api.access_keys.ListAccessKeys(
            ak.ListAccessKeysRequest(configuration_id=config_id), metadata=api.md
        )
        return [k.id for k in response.access_keys]

    assert count(config.id) == 1
    assert linked_to(config.id) == [linked.id]

    moved = api.access_keys.UpdateAccessKey(
        ak.UpdateAccessKeyRequest(
            access_key=ak.AccessKey(id=free.id, configuration_id=config.id),
            update_mask=mask("configuration_id"),
        ),
        metadata=api.md,
    ).access_key
    assert moved.configuration_id == config.id
    assert count(config.id) == 2
    listed = api.configurations.ListAccessKeyConfigurations(
        cfg.ListAccessKeyConfigurationsRequest(), metadata=api.md
    )
    assert [(c.id, c.access_key_count) for c in listed.configurations] == [
        (config.id, 2),
        (other.id, 0),
    ]

    # Empty configuration_id with it in the mask unlinks (back to allow-all defaults).
    unlinked = api.access_keys.UpdateAccessKey(
        ak.UpdateAccessKeyRequest(
            access_key=ak.AccessKey(id=linked.id), update_mask=mask("configuration_id")
        ),
        metadata=api.md,
    ).access_key
    assert unlinked.configuration_id == ""
    assert count(config.id) == 1
    assert linked_to(config.id) == [free.id]

    # A rename with an empty mask leaves the link alone.
    renamed = api.access_keys.UpdateAccessKey(
        ak.UpdateAccessKeyRequest(access_key=ak.AccessKey(id=free.id, name="renamed")),
        metadata=api.md,
    ).access_key
    assert (renamed.name, renamed.configuration_id) == ("renamed", config.id)


def test_delete_configuration_refused_while_access_keys_link_it(
    api: Api, control_plane: RunningControlPlane
) -> None:
    config = api.configuration({"name": "busy"})
    first, _ = api.access_key("one", configuration_id=config.id)
    second, _ = api.access_key("two", configuration_id=config.id)
    api.access_key("unlinked")
    revision = control_plane.server.store.revision()
    error = expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: api.configurations.DeleteAccessKeyConfiguration(
            cfg.DeleteAccessKeyConfigurationRequest(id=config.id), metadata=api.md
        ),
    )
    assert error.reason == "CONFIGURATION_IN_USE"
    assert first.id in error.message
    assert second.id in error.message
    assert error.subjects == (first.id, second.id)
    assert control_plane.server.store.revision() == revision

    for key in (first, second):
        api.access_keys.DeleteAccessKey(ak.DeleteAccessKeyRequest(id=key.id), metadata=api.md)
    api.configurations.DeleteAccessKeyConfiguration(
        cfg.DeleteAccessKeyConfigurationRequest(id=config.id), metadata=api.md
    )


# -- configurations ----------------------------------------------------------------------


OUTPUT_ONLY = ("id", "etag", "createTime", "updateTime", "accessKeyCount")


def as_document(config: Message) -> dict[str, Any]:
    doc = json_format.MessageToDict(config)
    for name in OUTPUT_ONLY:
        doc.pop(name, None)
    return doc


def test_documented_json_shape_round_trips(api: Api) -> None:
    primary = api.provider_key(name="primary").id
    backup = api.provider_key(value=OPENAI_VALUE_2, name="backup").id
    cheap = api.provider_key(value=OPENAI_VALUE + "x", name="cheap").id
    document = product_document(primary, backup, cheap)
    created = api.configuration(document)

    expected = copy.deepcopy(document)
    expected["router"]["rules"][1]["steps"][0]["keySelectionStrategy"] = "ordered"  # default
    assert as_document(created) == expected
    got = api.configurations.GetAccessKeyConfiguration(
        cfg.GetAccessKeyConfigurationRequest(id=created.id), metadata=api.md
    ).configuration
    assert got == created
    listed = api.configurations.ListAccessKeyConfigurations(
        cfg.ListAccessKeyConfigurationsRequest(), metadata=api.md
    )
    assert list(listed.configurations) == [created]

    # Sending the output back as the whole document changes nothing but etag/update_time.
    resent = api.configurations.UpdateAccessKeyConfiguration(
        cfg.UpdateAccessKeyConfigurationRequest(
            configuration=json_format.ParseDict(
                {**as_document(created), "id": created.id}, cfg.AccessKeyConfiguration()
            ),
            update_mask=mask("name", "access", "router"),
        ),
        metadata=api.md,
    ).configuration
    assert as_document(resent) == expected


def test_access_scope_is_normalised(api: Api) -> None:
    created = api.configuration(
        {
            "name": "scoped",
            "access": {
                "providers": {"allow": ["openai", "anthropic", "openai"]},
                "models": {
                    "allow": [
                        "openai:GPT-4o",
                        "openai/gpt-4o",
                        "anthropic:claude-sonnet-4-5",
                        "openrouter/meta-llama/llama-3.3-70b-instruct",
                        "openai:ft:gpt-4o:acme",
                    ]
                },
            },
        }
    )
    assert list(created.access.providers.allow) == ["openai", "anthropic"]
    assert list(created.access.models.allow) == [
        "openai/gpt-4o",
        "anthropic/claude-sonnet-4-5",
        "openrouter/meta-llama/llama-3.3-70b-instruct",
        "openai/ft:gpt-4o:acme",
    ]
    got = api.configurations.GetAccessKeyConfiguration(
        cfg.GetAccessKeyConfigurationRequest(id=created.id), metadata=api.md
    ).configuration
    assert got.access == created.access


def test_absent_and_empty_access_are_different(api: Api) -> None:
    def get(config_id: str) -> cfg.AccessKeyConfiguration:
        return api.configurations.GetAccessKeyConfiguration(
            cfg.GetAccessKeyConfigurationRequest(id=config_id), metadata=api.md
        ).configuration

    open_config = api.configuration({"name": "allow all"})
    for config in (open_config, get(open_config.id)):
        assert not config.HasField("access")

    closed = api.configuration({"name": "no providers", "access": {"providers": {"allow": []}}})
    for config in (closed, get(closed.id)):
        assert config.HasField("access")
        assert config.access.HasField("providers")
        assert list(config.access.providers.allow) == []
        assert not config.access.HasField("models")

    # Clearing access through the mask returns to allow-all.
    cleared = api.configurations.UpdateAccessKeyConfiguration(
        cfg.UpdateAccessKeyConfigurationRequest(
            configuration=cfg.AccessKeyConfiguration(id=closed.id), update_mask=mask("access")
        ),
        metadata=api.md,
    ).configuration
    assert not cleared.HasField("access")
    assert not get(closed.id).HasField("access")


def test_configuration_update_replaces_only_masked_parts(api: Api) -> None:
    key = api.provider_key(name="k")
    other = api.provider_key(value=OPENAI_VALUE_2, name="other")
    created = api.configuration(
        {
            "name": "c",
            "access": {"providers": {"allow": ["openai"]}},
            "router": router(rule("openai", key.id)),
        }
    )
    new_router = json_format.ParseDict(
        router(rule("openai", other.id, key.id, model="GPT-4o")), cfg.Router()
    )
    updated = api.configurations.UpdateAccessKeyConfiguration(
        cfg.UpdateAccessKeyConfigurationRequest(
            configuration=cfg.AccessKeyConfiguration(id=created.id, name="x", router=new_router),
            update_mask=mask("router"),
        ),
        metadata=api.md,
    ).configuration
    assert updated.name == "c"
    assert updated.access == created.access
    assert [r.model for r in updated.router.rules] == ["gpt-4o"]
    assert [k.id for k in updated.router.rules[0].steps[0].keys] == [other.id, key.id]
    assert updated.router.rules[0].steps[0].key_selection_strategy == "ordered"


def test_configuration_limits_are_stored_updated_and_cleared(api: Api) -> None:
    key = api.provider_key(name="k")
    created = api.configuration(
        {
            "name": "limited",
            "router": router(rule("openai", key.id)),
            "limits": {"requestsPerMinute": 600, "concurrency": 20},
        }
    )
    assert (created.limits.requests_per_minute, created.limits.concurrency) == (600, 20)
    fetched = api.configurations.GetAccessKeyConfiguration(
        cfg.GetAccessKeyConfigurationRequest(id=created.id), metadata=api.md
    ).configuration
    assert json_format.MessageToDict(fetched)["limits"] == {
        "requestsPerMinute": 600,
        "concurrency": 20,
    }

    def update(limits: cfg.Limits | None) -> cfg.AccessKeyConfiguration:
        config = cfg.AccessKeyConfiguration(id=created.id)
        if limits is not None:
            config.limits.CopyFrom(limits)
        return api.configurations.UpdateAccessKeyConfiguration(
            cfg.UpdateAccessKeyConfigurationRequest(
                configuration=config, update_mask=mask("limits")
            ),
            metadata=api.md,
        ).configuration

    changed = update(cfg.Limits(concurrency=5))
    assert changed.limits.concurrency == 5
    assert not changed.limits.HasField("requests_per_minute")
    assert [r.provider for r in changed.router.rules] == ["openai"]  # untouched
    assert not update(None).HasField("limits")


# -- providers ---------------------------------------------------------------------------


def test_list_providers_shows_the_catalog_and_own_custom_providers(api: Api, op: Api) -> None:
    custom = api.custom_provider("x-acme")
    listed = api.providers.ListProviders(prov.ListProvidersRequest(), metadata=api.md).providers
    by_id = {p.id: p for p in listed}
    built_in = [p.id for p in listed if p.built_in]
    required = {"openai", "anthropic", "google", "groq", "deepseek", "mistral", "xai"}
    assert required | {"openrouter", "together", "fireworks"} <= set(built_in)
    assert [p.id for p in listed][-1] == "x-acme"  # built-ins first, then custom
    for p in listed:
        if p.built_in:
            assert p.base_url.startswith("https://")
            assert p.formats
            assert p.models
    assert by_id["openai"].auth_style == prov.AUTH_STYLE_BEARER
    assert list(by_id["openai"].formats) == [prov.API_FORMAT_OPENAI]
    assert by_id["anthropic"].auth_style == prov.AUTH_STYLE_X_API_KEY
    assert list(by_id["anthropic"].formats) == [prov.API_FORMAT_ANTHROPIC]
    assert not by_id["x-acme"].built_in
    assert by_id["x-acme"].base_url == custom.base_url
    assert by_id["x-acme"].auth_style == prov.AUTH_STYLE_BEARER  # derived from the format
    assert [(m.id, m.upstream_id) for m in by_id["x-acme"].models] == [("acme-large", "large-v2")]

    # The operator has no account: built-ins only.
    operator_view = op.providers.ListProviders(prov.ListProvidersRequest(), metadata=op.md)
    assert [p.id for p in operator_view.providers] == built_in


def test_custom_provider_round_trip_and_use(api: Api) -> None:
    created = api.providers.CreateCustomProvider(
        prov.CreateCustomProviderRequest(
            custom_provider=prov.CustomProvider(
                provider_id="x-claude-proxy",
                name="Claude proxy",
                description="d",
                metadata="m",
                base_url="https://claude.internal.example/v1",
                formats=[prov.API_FORMAT_ANTHROPIC, prov.API_FORMAT_OPENAI],
                models=[prov.ProviderModel(id="sonnet")],
            )
        ),
        metadata=api.md,
    ).custom_provider
    assert created.id.startswith("cp_")
    assert created.provider_id == "x-claude-proxy"
    assert list(created.formats) == [prov.API_FORMAT_ANTHROPIC, prov.API_FORMAT_OPENAI]
    assert created.auth_style == prov.AUTH_STYLE_UNSPECIFIED
    listed = api.providers.ListProviders(prov.ListProvidersRequest(), metadata=api.md)
    entry = next(p for p in listed.providers if p.id == "x-claude-proxy")
    assert entry.auth_style == prov.AUTH_STYLE_X_API_KEY

    updated = api.providers.UpdateCustomProvider(
        prov.UpdateCustomProviderRequest(
            custom_provider=prov.CustomProvider(
                id=created.id,
                base_url="https://claude2.internal.example/v1",
                models=[prov.ProviderModel(id="opus", upstream_id="claude-opus-4-1")],
                auth_style=prov.AUTH_STYLE_BEARER,
                name="not in mask",
            ),
            update_mask=mask("base_url", "models", "auth_style"),
        ),
        metadata=api.md,
    ).custom_provider
    assert updated.base_url == "https://claude2.internal.example/v1"
    assert [(m.id, m.upstream_id) for m in updated.models] == [("opus", "claude-opus-4-1")]
    assert updated.auth_style == prov.AUTH_STYLE_BEARER
    assert updated.name == "Claude proxy"
    assert updated.provider_id == "x-claude-proxy"
    assert list(updated.formats) == list(created.formats)

    # Provider keys and configurations can use it; then it cannot be deleted.
    key = api.provider_key("x-claude-proxy", ANTHROPIC_VALUE)
    config = api.configuration(
        {
            "name": "c",
            "access": {"models": {"allow": ["x-claude-proxy:Opus"]}},
            "router": router(rule("x-claude-proxy", key.id)),
        }
    )
    assert list(config.access.models.allow) == ["x-claude-proxy/opus"]
    error = expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: api.providers.DeleteCustomProvider(
            prov.DeleteCustomProviderRequest(id=created.id), metadata=api.md
        ),
    )
    assert key.id in error.message
    assert config.id in error.message
    assert set(error.subjects) == {key.id, config.id}


def test_operator_may_allow_private_upstreams(control_plane_settings: Settings) -> None:
    settings = replace(control_plane_settings, allow_private_upstreams=True)
    with running(settings) as cp:
        a = Api(cp.channel, cp.admin)
        for i, url in enumerate(
            ("http://127.0.0.1:8080/v1", "http://10.1.2.3/v1", "http://localhost:11434/v1")
        ):
            created = a.custom_provider(f"x-local-{i}", url)
            assert created.base_url == url
        # http to a public host stays refused even then.
        error = expect_error(INVALID, lambda: a.custom_provider("x-public", "http://example.com"))
        assert error.fields == ("base_url",)


def test_operator_base_url_overrides_show_in_the_catalog(control_plane_settings: Settings) -> None:
    settings = replace(
        control_plane_settings, provider_base_urls={"openai": "http://127.0.0.1:9999/v1"}
    )
    with running(settings) as cp:
        a = Api(cp.channel, cp.admin)
        listed = a.providers.ListProviders(prov.ListProvidersRequest(), metadata=a.md)
        by_id = {p.id: p for p in listed.providers}
        assert by_id["openai"].base_url == "http://127.0.0.1:9999/v1"
        assert by_id["anthropic"].base_url == "https://api.anthropic.com/v1"


# -- accounts ----------------------------------------------------------------------------


def test_account_round_trip_and_own_account_for_admins(api: Api, op: Api) -> None:
    default = api.accounts.GetAccount(acc.GetAccountRequest(), metadata=api.md).account
    assert default.id.startswith("acct_")
    assert default.display_name == "Default"
    assert api.accounts.GetAccount(acc.GetAccountRequest(id=default.id), metadata=api.md).account
    created = op.accounts.CreateAccount(
        acc.CreateAccountRequest(
            account=acc.Account(
                id="acct_ignored", display_name="Team B", description="d", metadata="m"
            )
        ),
        metadata=op.md,
    ).account
    assert created.id != "acct_ignored"
    assert (created.display_name, created.description, created.metadata) == ("Team B", "d", "m")
    listed = op.accounts.ListAccounts(acc.ListAccountsRequest(), metadata=op.md)
    assert [a.id for a in listed.accounts] == [default.id, created.id]
    keys = op.admin_keys.ListAdminApiKeys(
        adk.ListAdminApiKeysRequest(account_id=default.id), metadata=op.md
    )
    assert [k.name for k in keys.admin_api_keys] == ["default admin key"]


def test_delete_account_refused_unless_forced(op: Api, control_plane: RunningControlPlane) -> None:
    account, token = op.new_account(op.md, "Doomed")
    tenant = Api(control_plane.channel, auth(token))
    key = tenant.provider_key()
    config = tenant.configuration({"name": "c", "router": router(rule("openai", key.id))})
    tenant.access_key("linked", configuration_id=config.id)
    tenant.custom_provider("x-acme")
    store = control_plane.server.store

    revision = store.revision()
    error = expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: op.accounts.DeleteAccount(acc.DeleteAccountRequest(id=account.id), metadata=op.md),
    )
    assert error.reason == "ACCOUNT_NOT_EMPTY"
    assert error.subjects == (account.id,)
    assert store.revision() == revision
    assert tenant.provider_keys.GetProviderKey(
        pk.GetProviderKeyRequest(id=key.id), metadata=tenant.md
    ).provider_key

    op.accounts.DeleteAccount(acc.DeleteAccountRequest(id=account.id, force=True), metadata=op.md)
    assert store.revision() == revision + 1
    expect_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: op.accounts.GetAccount(acc.GetAccountRequest(id=account.id), metadata=op.md),
    )
    # Everything inside is gone, including its admin keys.
    expect_error(
        grpc.StatusCode.UNAUTHENTICATED,
        lambda: tenant.provider_keys.ListProviderKeys(
            pk.ListProviderKeysRequest(), metadata=tenant.md
        ),
    )
    for table in (
        "provider_keys",
        "configurations",
        "access_keys",
        "custom_providers",
        "credentials",
    ):
        assert rows_of(control_plane.server.settings, table, account.id) == 0, table


def test_delete_empty_account_without_force(op: Api) -> None:
    account, token = op.new_account(op.md, "Empty")
    op.accounts.DeleteAccount(acc.DeleteAccountRequest(id=account.id), metadata=op.md)
    expect_error(
        grpc.StatusCode.UNAUTHENTICATED,
        lambda: op.accounts.GetAccount(acc.GetAccountRequest(), metadata=auth(token)),
    )


# -- health and reflection -----------------------------------------------------------------


@pytest.mark.parametrize(
    "service", ["", "keyway.v1.ProviderKeyService", "keyway.v1.AccessKeyConfigurationService"]
)
def test_health_reports_serving(service: str, control_plane: RunningControlPlane) -> None:
    check = control_plane.channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    response = check(health_pb2.HealthCheckRequest(service=service))
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    error = expect_grpc_error(
        lambda: check(health_pb2.HealthCheckRequest(service="keyway.v1.NoSuchService"))
    )
    assert error == grpc.StatusCode.NOT_FOUND


def expect_grpc_error(call: Callable[[], object]) -> grpc.StatusCode:
    """For services that are not Keyway's own (no rich status)."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert isinstance(info.value, grpc.Call)
    return info.value.code()


def reflect(
    control_plane: RunningControlPlane,
    request: reflection_pb2.ServerReflectionRequest,
    metadata: tuple[tuple[str, str], ...] | None = None,
) -> reflection_pb2.ServerReflectionResponse:
    info = control_plane.channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    md = control_plane.admin if metadata is None else metadata
    responses = list(info(iter([request]), metadata=md))
    assert len(responses) == 1
    response = responses[0]
    assert isinstance(response, reflection_pb2.ServerReflectionResponse)
    return response


def test_reflection_lists_the_keyway_services(control_plane: RunningControlPlane) -> None:
    listed = reflect(control_plane, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in listed.list_services_response.service}
    assert {
        "keyway.v1.AccountService",
        "keyway.v1.AdminApiKeyService",
        "keyway.v1.ProviderKeyService",
        "keyway.v1.AccessKeyService",
        "keyway.v1.AccessKeyConfigurationService",
        "keyway.v1.ProviderService",
        "keyway.v1.MasterKeyService",
        "grpc.health.v1.Health",
    } <= names

    files = reflect(
        control_plane,
        reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="keyway.v1.ProviderKeyService"
        ),
    )
    descriptors = files.file_descriptor_response.file_descriptor_proto
    assert any(b"RotateProviderKey" in d for d in descriptors)


@pytest.mark.parametrize(
    ("who", "code"),
    [
        ("nobody", grpc.StatusCode.UNAUTHENTICATED),
        ("garbage", grpc.StatusCode.UNAUTHENTICATED),
        ("data plane", grpc.StatusCode.PERMISSION_DENIED),
    ],
)
def test_reflection_needs_an_admin_or_operator_token(
    control_plane: RunningControlPlane, who: str, code: grpc.StatusCode
) -> None:
    metadata = {
        "nobody": (),
        "garbage": (("authorization", "Bearer hunter2"),),
        "data plane": control_plane.auth(
            (control_plane.data_dir / "data-plane.token").read_text().strip()
        ),
    }[who]
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    assert expect_grpc_error(lambda: reflect(control_plane, request, metadata)) == code
    listed = reflect(control_plane, request, control_plane.operator)
    assert listed.list_services_response.service


def test_reflection_can_be_switched_off(tmp_path: Path) -> None:
    settings = Settings(listen="127.0.0.1:0", data_dir=tmp_path / "data", reflection=False)
    with running(settings) as cp:
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        assert expect_grpc_error(lambda: reflect(cp, request)) == grpc.StatusCode.UNIMPLEMENTED
