"""The store port's contract, run against every adapter (`stores.ADAPTERS`).

Written against `control_plane.store.port.Store` only: records in, records out, errors
from `control_plane.domain`. Each write moves the revision by one and each refusal leaves
it where it was; bookkeeping (usage, proxy status) never moves it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import pytest
from keyway.v1 import access_key_configurations_pb2 as cfg

from control_plane.domain import catalog, tokens
from control_plane.domain.errors import (
    Aborted,
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from control_plane.domain.formats import ApiFormat, AuthStyle
from control_plane.domain.quotas import Quotas
from control_plane.domain.tokens import TokenKind
from control_plane.secrets.secret import Secret
from control_plane.snapshots.stream import Rejection, Revision
from control_plane.store.port import (
    ACCESS_KEYS,
    ACCOUNTS,
    ADMIN_KEYS,
    CONFIGURATIONS,
    CUSTOM_PROVIDERS,
    DATA_PLANE_CREDENTIALS,
    OPERATOR_CREDENTIALS,
    PROVIDER_KEYS,
    Store,
    call,
    pages,
)
from control_plane.store.records import (
    AccessKeyFields,
    AccessKeyUsage,
    ConfigurationFields,
    CustomProviderFields,
    KeyUsage,
    Labels,
    NodeStatus,
    ProviderKeyFields,
)

from .stores import ADAPTERS, TEST_KEYS, opened

E = TypeVar("E", bound=DomainError)
VALUE = "sk-proj-Contract0123456789abcdefXYZ"
OTHER_VALUE = "sk-proj-Rotated9876543210zyxwvuABC"


@pytest.fixture(params=sorted(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(adapter: str, tmp_path: Path) -> Iterator[Store]:
    with opened(adapter, tmp_path) as opened_store:
        yield opened_store


@pytest.fixture
def small(adapter: str, tmp_path: Path) -> Iterator[Store]:
    """A store with tiny quotas."""
    quotas = Quotas(provider_keys=2, account_snapshot_bytes=4096, snapshot_bytes=100_000)
    with opened(adapter, tmp_path, quotas) as opened_store:
        yield opened_store


def account(store: Store, name: str = "Acme") -> str:
    return store.create_account(Labels(name=name)).id


def provider_key(store: Store, account_id: str, provider_id: str = "openai") -> str:
    fields = ProviderKeyFields(name=f"{provider_id} key")
    return store.create_provider_key(
        account_id, provider_id=provider_id, fields=fields, value=Secret(VALUE)
    ).id


def body(*key_ids: str, provider: str = "openai") -> cfg.AccessKeyConfiguration:
    config = cfg.AccessKeyConfiguration()
    rule = config.router.rules.add(provider=provider)
    rule.steps.add(type="user", keys=[cfg.KeyReference(id=k) for k in key_ids])
    return config


def refused(store: Store, error: type[E], write: Callable[[], object]) -> E:
    """`write` fails with `error` and the revision does not move."""
    before = store.revision()
    with pytest.raises(error) as caught:
        write()
    assert store.revision() == before
    return caught.value


# -- revision, etags, listeners -----------------------------------------------------------


def test_each_write_moves_the_revision_by_one_and_tells_the_listeners(store: Store) -> None:
    told: list[int] = []
    store.on_commit(told.append)
    start = store.revision()
    account_id = account(store)
    key_id = provider_key(store, account_id)
    store.update(PROVIDER_KEYS, key_id, account_id, ProviderKeyFields(name="renamed"), ["name"])
    store.delete(PROVIDER_KEYS, key_id, account_id)
    assert store.revision() == start + 4
    assert told == [start + 1, start + 2, start + 3, start + 4]


def test_etags_change_with_every_write_and_a_stale_one_is_refused(store: Store) -> None:
    account_id = account(store)
    created = store.get(ACCOUNTS, account_id, None)
    renamed = store.update(ACCOUNTS, account_id, None, Labels(name="B"), ["name"], created.etag)
    assert renamed.etag != created.etag
    assert renamed.update_time_us >= created.update_time_us
    assert renamed.create_time_us == created.create_time_us
    error = refused(
        store,
        Aborted,
        lambda: store.update(ACCOUNTS, account_id, None, Labels(name="C"), ["name"], created.etag),
    )
    assert f"etag '{created.etag}'" in error.message
    refused(store, Aborted, lambda: store.delete_account(account_id, etag="stale", force=False))
    # No etag: whatever is there.
    store.update(ACCOUNTS, account_id, None, Labels(name="D"), ["name"])
    assert store.get(ACCOUNTS, account_id, None).fields.name == "D"


def test_an_update_writes_only_the_fields_it_names(store: Store) -> None:
    account_id = account(store)
    key_id = provider_key(store, account_id)
    # Two callers that each read the key before either wrote: neither loses the other's edit.
    store.update(
        PROVIDER_KEYS,
        key_id,
        account_id,
        ProviderKeyFields(name="named", description="stale"),
        ["name"],
    )
    store.update(
        PROVIDER_KEYS,
        key_id,
        account_id,
        ProviderKeyFields(name="stale", description="described"),
        ["description"],
    )
    key = store.get(PROVIDER_KEYS, key_id, account_id)
    assert (key.fields.name, key.fields.description) == ("named", "described")


def test_a_transaction_commits_everything_at_once_or_nothing(store: Store) -> None:
    told: list[int] = []
    store.on_commit(told.append)
    start = store.revision()

    def abandoned() -> None:
        with store.transaction():
            account(store, "rolled back")
            raise RuntimeError("abandoned half-way")

    with pytest.raises(RuntimeError):
        abandoned()
    assert store.revision() == start
    assert told == []
    assert not store.list_accounts(after=0, limit=10).items
    with store.transaction():
        first = account(store, "one")
        second = account(store, "two")
        assert told == []  # nothing is announced before the commit
    assert told == [start + 2]
    assert [a.id for a in store.list_accounts(after=0, limit=10).items] == [first, second]


def test_calls_from_async_code_go_through_the_executor(store: Store) -> None:
    async def main() -> tuple[int, str]:
        account_id = await call(store, store.create_account, Labels(name="async"))
        found = await call(store, store.get, ACCOUNTS, account_id.id, None)
        return await call(store, store.revision), found.fields.name

    revision, name = asyncio.run(main())
    assert (revision, name) == (store.revision(), "async")


def test_the_label_salt_is_random_per_deployment_and_stable(
    store: Store, adapter: str, tmp_path: Path
) -> None:
    salt = store.label_salt()
    assert len(salt) == 32
    assert store.label_salt() == salt
    with opened(adapter, tmp_path / "other") as other:
        assert other.label_salt() != salt


# -- accounts and tenancy -------------------------------------------------------------------


def test_resources_of_another_account_are_not_found(store: Store) -> None:
    mine, theirs = account(store, "mine"), account(store, "theirs")
    key_id = provider_key(store, theirs)
    assert store.get(PROVIDER_KEYS, key_id, theirs).account_id == theirs
    error = refused(store, NotFound, lambda: store.get(PROVIDER_KEYS, key_id, mine))
    assert error.message == f"provider key '{key_id}' not found"
    refused(store, NotFound, lambda: store.delete(PROVIDER_KEYS, key_id, mine))
    refused(
        store,
        NotFound,
        lambda: store.update(PROVIDER_KEYS, key_id, mine, ProviderKeyFields(name="x"), ["name"]),
    )
    assert store.get(PROVIDER_KEYS, key_id, None).id == key_id


def test_an_account_with_resources_is_deleted_only_with_force(store: Store) -> None:
    account_id = account(store)
    key_id = provider_key(store, account_id)
    admin = tokens.mint(TokenKind.ADMIN)
    store.create_credential(
        TokenKind.ADMIN, account_id=account_id, fields=Labels(name="admin"), token=admin
    )
    error = refused(
        store, FailedPrecondition, lambda: store.delete_account(account_id, etag="", force=False)
    )
    assert error.reason == "ACCOUNT_NOT_EMPTY"
    assert "1 provider keys" in error.message
    store.delete_account(account_id, etag="", force=True)
    refused(store, NotFound, lambda: store.get(ACCOUNTS, account_id, None))
    refused(store, NotFound, lambda: store.get(PROVIDER_KEYS, key_id, None))
    assert store.authenticate(admin) is None


def test_accounts_carry_their_snapshot_accounting(store: Store) -> None:
    account_id = account(store)
    empty = store.get(ACCOUNTS, account_id, None)
    provider_key(store, account_id)
    grown = store.get(ACCOUNTS, account_id, None)
    assert grown.snapshot_bytes > empty.snapshot_bytes > 0
    assert grown.data_revision == store.revision() > empty.data_revision


# -- pages ----------------------------------------------------------------------------------


def test_pages_follow_creation_order_and_say_where_to_continue(store: Store) -> None:
    ids = [account(store, f"a{i}") for i in range(5)]
    first = store.list_accounts(after=0, limit=2)
    assert [a.id for a in first.items] == ids[:2]
    assert first.next_after is not None
    rest = list(pages(lambda after: store.list_accounts(after=after, limit=2)))
    assert [a.id for a in rest] == ids
    last = store.list_accounts(after=0, limit=5)
    assert last.next_after is None


def test_listings_filter_and_refuse_unknown_filters(store: Store) -> None:
    account_id = account(store)
    openai = provider_key(store, account_id, "openai")
    provider_key(store, account_id, "anthropic")
    listed = store.list_provider_keys(account_id, provider_id="openai", after=0, limit=10)
    assert [k.id for k in listed.items] == [openai]
    refused(
        store,
        InvalidArgument,
        lambda: store.list_provider_keys(account_id, provider_id="x-nope", after=0, limit=10),
    )
    config = store.create_configuration(
        account_id, fields=ConfigurationFields(name="c", body=body(openai))
    )
    linked = store.create_access_key(
        account_id,
        fields=AccessKeyFields(name="linked", configuration_id=config.id),
        token=tokens.mint(TokenKind.ACCESS),
    )
    store.create_access_key(
        account_id, fields=AccessKeyFields(name="free"), token=tokens.mint(TokenKind.ACCESS)
    )
    by_config = store.list_access_keys(account_id, configuration_id=config.id, after=0, limit=10)
    assert [k.id for k in by_config.items] == [linked.id]
    refused(
        store,
        InvalidArgument,
        lambda: store.list_access_keys(account_id, configuration_id="akc_x", after=0, limit=10),
    )


# -- credentials ----------------------------------------------------------------------------


def test_credentials_keep_only_a_hash_and_a_redacted_token(store: Store) -> None:
    token = tokens.mint(TokenKind.OPERATOR)
    created = store.create_credential(
        TokenKind.OPERATOR, account_id=None, fields=Labels(name="ops"), token=token
    )
    assert created.kind is TokenKind.OPERATOR
    assert created.redacted_token == token[:10] + "***" + token[-4:]
    assert token not in repr(created)
    found = store.authenticate(token)
    assert found is not None
    assert (found.id, found.kind, found.account_id) == (created.id, TokenKind.OPERATOR, None)
    assert store.authenticate(tokens.mint(TokenKind.OPERATOR)) is None
    assert store.count_credentials(TokenKind.OPERATOR) == 1
    assert store.get(OPERATOR_CREDENTIALS, created.id, None) == created
    # A credential of one kind is not found as another.
    refused(store, NotFound, lambda: store.get(DATA_PLANE_CREDENTIALS, created.id, None))


def test_a_rotated_token_replaces_the_old_one(store: Store) -> None:
    old = tokens.mint(TokenKind.DATA_PLANE)
    created = store.create_credential(
        TokenKind.DATA_PLANE, account_id=None, fields=Labels(name="dp"), token=old
    )
    new = tokens.mint(TokenKind.DATA_PLANE)
    rotated = store.rotate_credential(TokenKind.DATA_PLANE, created.id, new)
    assert rotated.id == created.id
    assert rotated.etag != created.etag
    assert store.authenticate(old) is None
    found = store.authenticate(new)
    assert found is not None
    assert found.id == created.id


def test_admin_keys_are_listed_per_account(store: Store) -> None:
    first, second = account(store, "one"), account(store, "two")
    for account_id in (first, second, first):
        store.create_credential(
            TokenKind.ADMIN,
            account_id=account_id,
            fields=Labels(name="k"),
            token=tokens.mint(TokenKind.ADMIN),
        )
    listed = store.list_credentials(TokenKind.ADMIN, account_id=first, after=0, limit=10)
    assert [k.account_id for k in listed.items] == [first, first]
    refused(
        store,
        NotFound,
        lambda: store.list_credentials(TokenKind.ADMIN, account_id="acct_x", after=0, limit=10),
    )
    refused(
        store,
        NotFound,
        lambda: store.create_credential(
            TokenKind.ADMIN,
            account_id="acct_x",
            fields=Labels(name="k"),
            token=tokens.mint(TokenKind.ADMIN),
        ),
    )
    assert store.get(ADMIN_KEYS, listed.items[0].id, None).kind is TokenKind.ADMIN


def test_the_last_operator_credential_cannot_be_deleted_but_can_be_reset(store: Store) -> None:
    first = tokens.mint(TokenKind.OPERATOR)
    only = store.create_credential(
        TokenKind.OPERATOR, account_id=None, fields=Labels(name="ops"), token=first
    )
    error = refused(
        store, FailedPrecondition, lambda: store.delete(OPERATOR_CREDENTIALS, only.id, None)
    )
    assert error.reason == "LAST_OPERATOR_CREDENTIAL"
    second = tokens.mint(TokenKind.OPERATOR)
    store.create_credential(
        TokenKind.OPERATOR, account_id=None, fields=Labels(name="ops 2"), token=second
    )
    store.delete(OPERATOR_CREDENTIALS, only.id, None)
    fresh = tokens.mint(TokenKind.OPERATOR)
    told: list[int] = []
    store.on_commit(told.append)
    reset = store.reset_operator_credentials(Labels(name="reset"), fresh)
    assert told == [store.revision()]  # one write, told once, at the revision it committed
    assert store.count_credentials(TokenKind.OPERATOR) == 1
    assert store.authenticate(second) is None
    found = store.authenticate(fresh)
    assert found is not None
    assert found.id == reset.id


# -- provider keys --------------------------------------------------------------------------


def test_provider_key_values_are_sealed_redacted_and_rotated(store: Store) -> None:
    account_id = account(store)
    created = store.get(PROVIDER_KEYS, provider_key(store, account_id), account_id)
    assert created.redacted_value == VALUE[:10] + "***" + VALUE[-4:]
    assert VALUE not in repr(created)
    assert store.reveal(created.id).reveal() == VALUE
    assert created.kek_id == TEST_KEYS.split(":")[0]
    assert store.sealed_kek_ids() == [created.kek_id]
    assert store.kek_opens(created.kek_id)
    assert not store.kek_opens("no-such-kek")
    rotated = store.rotate_provider_key(
        account_id, created.id, value=Secret(OTHER_VALUE), name="", etag=created.etag
    )
    assert store.reveal(created.id).reveal() == OTHER_VALUE
    assert rotated.fields.name == created.fields.name
    assert rotated.rotate_time_us >= created.rotate_time_us
    renamed = store.rotate_provider_key(
        account_id, created.id, value=Secret(VALUE), name="renamed", etag=""
    )
    assert renamed.fields.name == "renamed"
    refused(
        store,
        Aborted,
        lambda: store.rotate_provider_key(
            account_id, created.id, value=Secret(VALUE), name="", etag=created.etag
        ),
    )


def test_a_provider_key_needs_a_known_provider(store: Store) -> None:
    account_id = account(store)
    error = refused(
        store,
        InvalidArgument,
        lambda: store.create_provider_key(
            account_id,
            provider_id="x-nope",
            fields=ProviderKeyFields(name="k"),
            value=Secret(VALUE),
        ),
    )
    assert [v.field for v in error.violations] == ["provider_id"]


def test_usage_is_bookkeeping_and_older_reports_never_win(store: Store) -> None:
    account_id = account(store)
    key = store.get(PROVIDER_KEYS, provider_key(store, account_id), account_id)
    access = store.create_access_key(
        account_id, fields=AccessKeyFields(name="a"), token=tokens.mint(TokenKind.ACCESS)
    )
    told: list[int] = []
    store.on_commit(told.append)
    revision = store.revision()
    at = key.rotate_time_us + 1_000_000
    store.record_usage(
        [KeyUsage(key.id, at, 429, "rate limited", at, None)], [AccessKeyUsage(access.id, at)]
    )
    store.record_usage(
        [KeyUsage(key.id, at - 10, 500, "older", at - 10, at - 10)],
        [AccessKeyUsage(access.id, at - 10)],
    )
    used = store.get(PROVIDER_KEYS, key.id, account_id)
    assert used.last_used_time_us == at
    assert used.last_success_time_us == at - 10
    assert used.last_error is not None
    assert (used.last_error.status, used.last_error.reason) == (429, "rate limited")
    assert used.etag == key.etag
    assert store.get(ACCESS_KEYS, access.id, account_id).last_used_time_us == at
    assert store.revision() == revision
    assert told == []


# -- access keys and configurations ---------------------------------------------------------


def test_access_keys_link_only_to_configurations_of_their_account(store: Store) -> None:
    mine, theirs = account(store, "mine"), account(store, "theirs")
    foreign = store.create_configuration(
        theirs, fields=ConfigurationFields(name="c", body=cfg.AccessKeyConfiguration())
    )
    refused(
        store,
        InvalidArgument,
        lambda: store.create_access_key(
            mine,
            fields=AccessKeyFields(name="k", configuration_id=foreign.id),
            token=tokens.mint(TokenKind.ACCESS),
        ),
    )
    own = store.create_configuration(
        mine, fields=ConfigurationFields(name="c", body=cfg.AccessKeyConfiguration())
    )
    key = store.create_access_key(
        mine,
        fields=AccessKeyFields(name="k", configuration_id=own.id),
        token=tokens.mint(TokenKind.ACCESS),
    )
    assert key.fields.configuration_id == own.id
    relink = replace(key.fields, configuration_id=foreign.id)
    refused(
        store,
        InvalidArgument,
        lambda: store.update(ACCESS_KEYS, key.id, mine, relink, ["configuration_id"]),
    )
    unlinked = store.update(
        ACCESS_KEYS,
        key.id,
        mine,
        replace(key.fields, configuration_id=None, disabled=True),
        ["configuration_id", "disabled"],
    )
    assert unlinked.fields.configuration_id is None
    assert unlinked.fields.disabled


def test_configurations_are_validated_against_the_account_and_kept_canonical(
    store: Store,
) -> None:
    account_id = account(store)
    key_id = provider_key(store, account_id)
    written = body(key_id)
    written.router.rules[0].model = "GPT-4o"
    config = store.create_configuration(
        account_id, fields=ConfigurationFields(name="c", body=written)
    )
    stored = config.fields.body
    assert stored.router.rules[0].model == "gpt-4o"
    assert stored.router.rules[0].steps[0].key_selection_strategy == "ordered"
    assert store.get(CONFIGURATIONS, config.id, account_id).fields.body == stored
    error = refused(
        store,
        InvalidArgument,
        lambda: store.create_configuration(
            account_id, fields=ConfigurationFields(name="bad", body=body("pk_missing"))
        ),
    )
    assert error.reason == "INVALID_CONFIGURATION"
    assert [v.field for v in error.violations] == ["router.rules[0].steps[0].keys[0].id"]
    refused(
        store,
        InvalidArgument,
        lambda: store.update(
            CONFIGURATIONS,
            config.id,
            account_id,
            ConfigurationFields(name="c", body=body("pk_missing")),
            ["body"],
        ),
    )
    # Naming only the labels leaves the body as it is (and does not validate it).
    relabelled = store.update(
        CONFIGURATIONS,
        config.id,
        account_id,
        ConfigurationFields(name="renamed", body=body("pk_missing")),
        ["name"],
    )
    assert relabelled.fields.name == "renamed"
    assert relabelled.fields.body == stored


def test_referenced_rows_cannot_be_deleted(store: Store) -> None:
    account_id = account(store)
    key_id = provider_key(store, account_id)
    config = store.create_configuration(
        account_id, fields=ConfigurationFields(name="c", body=body(key_id))
    )
    access = store.create_access_key(
        account_id,
        fields=AccessKeyFields(name="k", configuration_id=config.id),
        token=tokens.mint(TokenKind.ACCESS),
    )
    assert store.get(CONFIGURATIONS, config.id, account_id).access_key_count == 1
    used = refused(
        store, FailedPrecondition, lambda: store.delete(PROVIDER_KEYS, key_id, account_id)
    )
    assert (used.reason, used.subjects) == ("PROVIDER_KEY_IN_USE", (config.id,))
    linked = refused(
        store, FailedPrecondition, lambda: store.delete(CONFIGURATIONS, config.id, account_id)
    )
    assert (linked.reason, linked.subjects) == ("CONFIGURATION_IN_USE", (access.id,))
    store.delete(ACCESS_KEYS, access.id, account_id)
    store.delete(CONFIGURATIONS, config.id, account_id)
    store.delete(PROVIDER_KEYS, key_id, account_id)


# -- custom providers -----------------------------------------------------------------------

ACME = CustomProviderFields(
    name="Acme",
    base_url="https://llm.acme.example/v1",
    formats=(ApiFormat.ANTHROPIC, ApiFormat.OPENAI),
    auth_style=None,
    models=(catalog.Model("acme-large", "large-v2"), catalog.Model("acme-small")),
)


def test_custom_providers_keep_their_vocabulary_and_join_the_account_view(store: Store) -> None:
    account_id = account(store)
    created = store.create_custom_provider(account_id, provider_id="x-acme", fields=ACME)
    assert created.fields == ACME
    assert store.get(CUSTOM_PROVIDERS, created.id, account_id).fields == ACME
    view = store.account_view(account_id)
    assert "x-acme" in view.providers
    assert view.listed_models["x-acme"] == frozenset({"acme-large", "acme-small"})
    key_id = provider_key(store, account_id, "x-acme")
    assert store.account_view(account_id).key_providers[key_id] == "x-acme"
    styled = store.update(
        CUSTOM_PROVIDERS,
        created.id,
        account_id,
        replace(ACME, auth_style=AuthStyle.BEARER, formats=(ApiFormat.OPENAI,)),
        ["auth_style"],
    )
    assert styled.fields.auth_style is AuthStyle.BEARER
    assert styled.fields.formats == ACME.formats  # not named, not written
    clash = refused(
        store,
        AlreadyExists,
        lambda: store.create_custom_provider(account_id, provider_id="x-acme", fields=ACME),
    )
    assert clash.reason == "PROVIDER_ID_IN_USE"


def test_a_custom_provider_in_use_stays(store: Store) -> None:
    account_id = account(store)
    created = store.create_custom_provider(account_id, provider_id="x-acme", fields=ACME)
    key_id = provider_key(store, account_id, "x-acme")
    error = refused(
        store, FailedPrecondition, lambda: store.delete(CUSTOM_PROVIDERS, created.id, account_id)
    )
    assert (error.reason, error.subjects) == ("PROVIDER_IN_USE", (key_id,))
    store.delete(PROVIDER_KEYS, key_id, account_id)
    store.delete(CUSTOM_PROVIDERS, created.id, account_id)


# -- quotas ---------------------------------------------------------------------------------


def test_counted_resources_stop_at_their_quota(small: Store) -> None:
    account_id = account(small)
    provider_key(small, account_id)
    provider_key(small, account_id)
    error = refused(small, ResourceExhausted, lambda: provider_key(small, account_id))
    assert (error.quota, error.limit) == ("provider_keys", 2)


def test_an_account_cannot_grow_past_its_snapshot_budget(small: Store) -> None:
    account_id = account(small)
    big = replace(ACME, models=tuple(catalog.Model(f"model-{i:03d}") for i in range(400)))
    error = refused(
        small,
        ResourceExhausted,
        lambda: small.create_custom_provider(account_id, provider_id="x-big", fields=big),
    )
    assert error.quota == "account_snapshot_bytes"


# -- what the snapshot compiler reads --------------------------------------------------------


def test_the_snapshot_source_reads_changed_accounts_at_one_revision(store: Store) -> None:
    first, second = account(store, "one"), account(store, "two")
    key_id = provider_key(store, first)
    store.update(
        PROVIDER_KEYS, key_id, first, ProviderKeyFields(name="off", disabled=True), ["disabled"]
    )
    delta = store.snapshots.read({})
    assert delta.revision == store.revision() == store.snapshots.revision()
    assert delta.account_ids == tuple(sorted([first, second]))
    by_id = {data.id: data for data in delta.changed}
    record = by_id[first].record
    assert record is not None
    [key] = record.keys
    assert (key.id, key.provider_id, key.value.reveal(), key.disabled) == (
        key_id,
        "openai",
        VALUE,
        True,
    )
    known = {data.id: data.data_revision for data in delta.changed}
    assert store.snapshots.read(known).changed == ()
    provider_key(store, second, "anthropic")
    assert [data.id for data in store.snapshots.read(known).changed] == [second]


def test_sealed_passes_count_and_have_nothing_to_move(store: Store) -> None:
    account_id = account(store)
    key = store.get(PROVIDER_KEYS, provider_key(store, account_id), account_id)
    revision = store.revision()
    assert store.sealed.count_under(key.kek_id) == 1
    assert store.sealed.count_under("another-kek") == 0
    assert store.sealed.legacy_rows() == 0
    assert store.sealed.rewrap().done == 0
    assert store.sealed.reseal_legacy().done == 0
    assert store.revision() == revision
    assert store.reveal(key.id).reveal() == VALUE


# -- the per-proxy status mirror ------------------------------------------------------------


def test_the_status_mirror_keeps_what_it_is_given_without_moving_the_revision(
    store: Store,
) -> None:
    revision = store.revision()
    applied = Revision(3, "ab" * 32)
    rejected = NodeStatus(
        node_id="proxy-a",
        pool="eu",
        build_version="1.2.3",
        connected=True,
        connect_time_us=10,
        last_seen_us=20,
        sent_version=4,
        applied=applied,
        rejection=Rejection(Revision(4, "cd" * 32), "bad snapshot"),
        rejected_time_us=15,
    )
    fresh = NodeStatus("proxy-b", "default", "", False, 1, 2)
    store.save_data_planes([rejected, fresh], [])
    assert sorted(store.data_planes(), key=lambda n: n.node_id) == [rejected, fresh]
    store.save_data_planes([replace(fresh, last_seen_us=99)], ["proxy-a"])
    assert store.data_planes() == [replace(fresh, last_seen_us=99)]
    assert store.revision() == revision


def test_a_one_off_job_is_held_by_one_caller_at_a_time(store: Store) -> None:
    seen: list[bool] = []
    with store.exclusive("retention") as mine:
        assert mine
        # Another caller (a thread here; another replica on a shared database) is told no.
        worker = threading.Thread(target=lambda: seen.append(_try(store, "retention")))
        worker.start()
        worker.join(timeout=30)
        assert seen == [False]
        assert _try(store, "another job")
    assert _try(store, "retention")  # released with the block


def _try(store: Store, job: str) -> bool:
    with store.exclusive(job) as mine:
        return mine
