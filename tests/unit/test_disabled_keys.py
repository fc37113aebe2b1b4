"""Disabled keys in the snapshot and the routing table: skipped or refused, never used."""

from __future__ import annotations

from keyway.v1 import snapshot_pb2 as spb

from control_plane.secrets.secret import Secret
from control_plane.snapshots.compiler import (
    AccessKeyRecord,
    AccountRecord,
    KeyRecord,
    StoreState,
    compile_snapshot,
)
from data_plane.shared.validate import validate
from tests.unit.snapshots import (
    access_key,
    account,
    caller_of,
    configuration,
    route,
    snapshot,
    table,
)

ACTIVE = "kwak_active"
PAUSED = "kwak_paused"


def _disabled(key_id: str, provider_id: str) -> spb.SnapshotProviderKey:
    return spb.SnapshotProviderKey(id=key_id, provider_id=provider_id, disabled=True)


def _snapshot() -> spb.Snapshot:
    keys = [
        spb.SnapshotProviderKey(id="pk_1", provider_id="openai", value="sk-one-0123456789"),
        _disabled("pk_2", "openai"),
        spb.SnapshotProviderKey(id="pk_3", provider_id="openai", value="sk-three-0123456789"),
        _disabled("pk_4", "anthropic"),
    ]
    routed = configuration("cfg_1", routes=[route("openai", "", ["pk_2", "pk_3"], ["pk_1"])])
    paused = access_key("ak_paused", PAUSED)
    paused.disabled = True
    return snapshot(
        account(
            "acct_1",
            keys=keys,
            configurations=[routed],
            access_keys=[access_key("ak_active", ACTIVE, "cfg_1"), paused],
        )
    )


def test_routing_skips_disabled_provider_keys_wherever_they_are_named() -> None:
    routing = table(_snapshot())
    active = caller_of(routing, ACTIVE)
    assert active.key_ids("openai", "gpt-4o") == ("pk_3", "pk_1")
    assert active.account.default_keys == {"openai": ("pk_1", "pk_3")}
    assert active.key_ids("anthropic", "claude-sonnet-4-5") == ()
    assert set(active.account.keys) == {"pk_1", "pk_3"}


def test_a_disabled_access_key_is_known_but_marked() -> None:
    routing = table(_snapshot())
    assert caller_of(routing, PAUSED).disabled
    assert not caller_of(routing, ACTIVE).disabled


def test_only_a_disabled_key_may_come_without_a_value() -> None:
    snap = _snapshot()
    snap.accounts[0].provider_keys[1].disabled = False
    assert [(v.field, v.description) for v in validate(snap)] == [
        ("accounts[0].provider_keys[1].value", "is empty")
    ]


def test_the_compiler_sends_no_secret_for_a_disabled_key() -> None:
    state = StoreState(
        revision=3,
        accounts=(
            AccountRecord(
                id="acct_1",
                custom_providers=(),
                keys=(
                    KeyRecord("pk_on", "openai", Secret("sk-on-0123456789abcdef")),
                    KeyRecord("pk_off", "openai", Secret("sk-off-0123456789abcdef"), True),
                ),
                configurations=(),
                access_keys=(AccessKeyRecord("ak_1", "0" * 64, None, True),),
            ),
        ),
        base_url_overrides={},
    )
    compiled = compile_snapshot(state)
    assert not validate(compiled)
    on, off = compiled.accounts[0].provider_keys
    assert (on.value, on.disabled) == ("sk-on-0123456789abcdef", False)
    assert (off.value, off.disabled) == ("", True)
    assert b"sk-off" not in compiled.SerializeToString()
    assert compiled.accounts[0].access_keys[0].disabled
