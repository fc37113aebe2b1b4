"""The snapshot protocol's state machine on both sides, driven through an in-memory network."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keyway.v1 import snapshot_pb2 as spb

from control_plane.snapshots.assembly import Assembly
from control_plane.snapshots.compiler import StoreState, compile_snapshot, serialise
from control_plane.snapshots.stream import Reply, Revision, StreamState
from control_plane.store.records import AccountData, StoreDelta
from data_plane.routing.apply import Applied, Rejected, apply
from data_plane.shared.validate import validate

from .protocol_model import (
    INVALID,
    SECRET_PREFIX,
    Action,
    Corruption,
    Simulation,
    actions,
    arbitrary_snapshots,
    fresh_table,
    mutated_snapshots,
    publication,
    store_states,
)

V1 = Revision(1, "a" * 64)
V2 = Revision(2, "b" * 64)
V3 = Revision(3, "c" * 64)

# ---------------------------------------------------------------------------
# The control-plane rules, by example
# ---------------------------------------------------------------------------


def test_hello_with_the_latest_is_answered_current_once() -> None:
    stream = StreamState(V2)
    send = stream.next_send(V2)
    assert send is not None
    assert (send.reply, send.revision) == (Reply.CURRENT, V2)
    assert stream.next_send(V2) is None
    assert stream.applied == V2


def test_hello_with_an_older_revision_gets_the_latest() -> None:
    stream = StreamState(V1)
    send = stream.next_send(V2)
    assert send is not None
    assert (send.reply, send.revision) == (Reply.UPDATE, V2)
    assert stream.applied == V1  # not until the ACK
    assert stream.on_ack(send.nonce, V2)
    assert stream.applied == V2
    assert stream.next_send(V2) is None


@pytest.mark.parametrize("hello", [None, V1])
def test_hello_same_version_other_hash_gets_an_update(hello: Revision | None) -> None:
    other = Revision(1, "f" * 64)
    send = StreamState(hello).next_send(other)
    assert send is not None
    assert send.reply is Reply.UPDATE


def test_nothing_published_yet_defers_the_answer_to_the_hello() -> None:
    stream = StreamState(None)
    assert stream.next_send(None) is None
    assert stream.next_send(None) is None
    send = stream.next_send(V1)
    assert send is not None
    assert (send.reply, send.revision) == (Reply.UPDATE, V1)


def test_deferred_answer_is_current_when_the_first_publish_matches() -> None:
    send = StreamState(V1).next_send(V1)
    assert send is not None
    assert send.reply is Reply.CURRENT


def test_nack_then_the_same_latest_sends_nothing_and_a_new_latest_is_sent() -> None:
    stream = StreamState(V1)
    send = stream.next_send(V2)
    assert send is not None
    assert stream.on_nack(send.nonce, "1 problem(s)")
    assert stream.applied == V1
    assert stream.rejected == {V2}
    assert stream.last_rejection is not None
    assert stream.last_rejection.revision == V2
    assert stream.next_send(V2) is None
    newer = stream.next_send(V3)
    assert newer is not None
    assert (newer.reply, newer.revision) == (Reply.UPDATE, V3)
    assert newer.nonce != send.nonce


def test_late_ack_of_a_superseded_nonce_is_ignored() -> None:
    stream = StreamState(None)
    first = stream.next_send(V1)
    second = stream.next_send(V2)
    assert first is not None
    assert second is not None
    assert not stream.on_ack(first.nonce, V1)
    assert stream.applied is None
    assert stream.on_ack(second.nonce, V2)
    assert not stream.on_ack(first.nonce, V1)  # still late, after the current one
    assert stream.applied == V2


def test_late_nack_of_a_superseded_nonce_is_ignored() -> None:
    stream = StreamState(None)
    first = stream.next_send(V1)
    second = stream.next_send(V2)
    assert first is not None
    assert second is not None
    assert not stream.on_nack(first.nonce, "bad")
    assert stream.rejected == set()
    assert stream.last_rejection is None
    assert not stream.on_nack("no-such-nonce", "bad")
    assert not StreamState(None).on_ack("1", V1)  # nothing in flight yet


# ---------------------------------------------------------------------------
# Snapshots: compiled ones apply, spoiled ones are refused without leaking
# ---------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(state=store_states(), data=st.data())
def test_compilation_is_deterministic_whatever_the_read_order(
    state: StoreState, data: st.DataObject
) -> None:
    shuffled = replace(
        state,
        accounts=tuple(
            replace(
                a,
                custom_providers=tuple(data.draw(st.permutations(a.custom_providers))),
                configurations=tuple(data.draw(st.permutations(a.configurations))),
                access_keys=tuple(data.draw(st.permutations(a.access_keys))),
            )
            for a in data.draw(st.permutations(state.accounts))
        ),
    )
    first = serialise(compile_snapshot(state))
    assert serialise(compile_snapshot(shuffled)) == first
    assert (first.payload, first.sha256) == (
        serialise(compile_snapshot(state)).payload,
        hashlib.sha256(first.payload).hexdigest(),
    )


@settings(max_examples=60, deadline=None)
@given(state=store_states(), revision=st.integers(1, 2**40))
def test_compiled_snapshots_validate_and_apply(state: StoreState, revision: int) -> None:
    p = publication(replace(state, revision=revision))
    snapshot = compile_snapshot(replace(state, revision=revision))
    assert validate(snapshot) == []
    result = apply(p.revision.version, p.revision.sha256, p.payload)
    assert isinstance(result, Applied)
    assert (result.table.version, result.table.sha256) == (revision, p.revision.sha256)
    assert result.table == fresh_table(p)
    tokens = {ak.token_sha256 for a in state.accounts for ak in a.access_keys}
    assert set(result.table.callers) == tokens


@settings(max_examples=80, deadline=None)
@given(state=store_states(), corruption=st.sampled_from(INVALID))
def test_spoiled_snapshots_are_rejected_without_echoing_secrets(
    state: StoreState, corruption: Corruption
) -> None:
    p = publication(replace(state, revision=7), corruption)
    result = apply(p.revision.version, p.revision.sha256, p.payload)
    assert isinstance(result, Rejected), corruption
    assert result.version == 7
    texts = [result.message, *(f"{v.field} {v.description}" for v in result.violations)]
    assert not any(SECRET_PREFIX in t for t in texts), texts
    if corruption not in (
        Corruption.WRONG_HASH,
        Corruption.CORRUPT_WIRE,
        Corruption.VERSION_MISMATCH,
    ):
        assert result.violations, corruption  # a validation failure names its fields


@settings(max_examples=150, deadline=None)
@given(
    state=store_states(),
    edits=st.lists(
        st.tuples(st.integers(0, 2**16), st.sampled_from(["flip", "drop", "insert"])),
        min_size=1,
        max_size=4,
    ),
    byte=st.integers(0, 255),
)
def test_apply_never_raises_and_never_serves_what_does_not_validate(
    state: StoreState, edits: list[tuple[int, str]], byte: int
) -> None:
    """Arbitrary damage with a hash that matches (a corrupt cache, a buggy peer)."""
    payload = bytearray(publication(replace(state, revision=3)).payload)
    for position, edit in edits:
        at = position % (len(payload) + 1)
        if edit == "insert":
            payload.insert(at, byte)
        elif at < len(payload):
            if edit == "flip":
                payload[at] ^= byte or 0xFF
            else:
                del payload[at]
    data = bytes(payload)
    sha256 = hashlib.sha256(data).hexdigest()
    result = apply(3, sha256, data)
    if isinstance(result, Applied):
        snapshot = spb.Snapshot.FromString(data)
        assert validate(snapshot) == []
        assert (result.table.version, result.table.sha256) == (3, sha256)
    else:
        assert result.version == 3
        assert result.message


@settings(max_examples=300, deadline=None)
@given(snapshot=arbitrary_snapshots() | mutated_snapshots())
def test_apply_never_raises_on_arbitrary_snapshots(snapshot: spb.Snapshot) -> None:
    """The validator is the gate: whatever a peer sends, it answers, and build never fails."""
    payload = snapshot.SerializeToString(deterministic=True)
    sha256 = hashlib.sha256(payload).hexdigest()
    result = apply(snapshot.version, sha256, payload)
    if isinstance(result, Applied):
        assert validate(snapshot) == []
        assert (result.table.version, result.table.sha256) == (snapshot.version, sha256)
    else:
        assert result.violations
        assert [(v.field, v.description) for v in result.violations] == [
            (v.field, v.description) for v in validate(snapshot)
        ]


def test_unparsable_base_url_is_a_violation_not_a_crash() -> None:
    for url in ("http://[", "https://[zz]/", "http://\u2100.example"):
        snapshot = spb.Snapshot(schema_version=1, version=1)
        snapshot.providers.add(id="x", base_url=url, formats=[1], auth_style=1)
        payload = snapshot.SerializeToString()
        result = apply(1, hashlib.sha256(payload).hexdigest(), payload)
        assert isinstance(result, Rejected), url
        assert [v.field for v in result.violations] == ["providers[0].base_url"]


# ---------------------------------------------------------------------------
# Both sides together, through a network that misbehaves and then recovers
# ---------------------------------------------------------------------------


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, list[Action]]:
    proxies = draw(st.integers(1, 3))
    return proxies, draw(st.lists(actions(proxies), min_size=8, max_size=60))


@settings(max_examples=120, deadline=None)
@given(scenario=scenarios())
def test_protocol_is_safe_and_converges(scenario: tuple[int, list[Action]]) -> None:
    proxies, steps = scenario
    sim = Simulation(proxies)
    for step in steps:
        step.run(sim)
        sim.check_invariants()
    sim.settle()
    sim.check_invariants()
    sim.check_converged()


# A few scenarios by hand, so the rules are visible without reading the model.


def _state(revision: int = 1) -> StoreState:
    return StoreState(revision, (), {})


def _pump(sim: Simulation, i: int = 0) -> None:
    for _ in range(4):
        sim.poll(i)
        sim.deliver_down(i)
        sim.deliver_up(i)
        sim.check_invariants()


def test_invalid_latest_is_nacked_once_and_the_proxy_keeps_the_previous() -> None:
    sim = Simulation(1)
    good = sim.publish(_state(), Corruption.NONE)
    sim.connect(0)
    _pump(sim)
    assert sim.proxies[0].applied == good.revision
    bad = sim.publish(_state(), Corruption.UNKNOWN_ROUTE_KEY)
    _pump(sim)
    conn = sim.connections[0]
    assert conn is not None
    assert sim.proxies[0].applied == good.revision
    assert conn.stream.rejected == {bad.revision}
    assert [s.revision for s in conn.sent] == [good.revision, bad.revision]  # sent once
    sim.check_converged()
    fixed = sim.publish(_state(), Corruption.NONE)
    _pump(sim)
    assert sim.proxies[0].applied == conn.stream.applied == fixed.revision
    sim.check_converged()


def test_reply_lost_with_the_connection_is_repaired_by_the_hello() -> None:
    sim = Simulation(1)
    sim.connect(0)
    p = sim.publish(_state(), Corruption.NONE)
    sim.poll(0)
    sim.deliver_down(0)  # applied and ACKed, but the ACK never arrives
    sim.drop(0)
    sim.connect(0)
    sim.poll(0)
    conn = sim.connections[0]
    assert conn is not None
    assert [(s.reply, s.revision) for s in conn.sent] == [(Reply.CURRENT, p.revision)]
    sim.settle()
    sim.check_converged()


def test_slow_proxy_skips_straight_to_the_newest() -> None:
    sim = Simulation(2)
    sim.connect(0)
    sim.connect(1)
    for _ in range(3):
        sim.publish(_state(), Corruption.NONE)
        _pump(sim, 0)
    _pump(sim, 1)
    conn = sim.connections[1]
    assert conn is not None
    assert [s.revision.version for s in conn.sent] == [3]
    sim.check_converged()


def test_late_ack_over_the_wire_does_not_overwrite_the_applied_revision() -> None:
    sim = Simulation(1)
    sim.connect(0)
    first = sim.publish(_state(), Corruption.NONE)
    sim.poll(0)
    second = sim.publish(_state(), Corruption.EMPTY_KEY_VALUE)
    sim.poll(0)  # both in flight before the proxy answers either
    sim.deliver_down(0)
    sim.deliver_down(0)
    conn = sim.connections[0]
    assert conn is not None
    sim.deliver_up(0)  # ACK of the superseded nonce: ignored
    assert conn.stream.applied is None
    sim.deliver_up(0)  # NACK of the current one: recorded
    sim.check_invariants()
    assert conn.stream.applied is None
    assert conn.stream.rejected == {second.revision}
    assert sim.proxies[0].applied == first.revision  # the proxy kept the one it could apply
    sim.check_converged()


@settings(max_examples=60, deadline=None)
@given(before=store_states(), after=store_states(), data=st.data())
def test_applying_on_top_of_a_served_table_equals_a_build_from_scratch(
    before: StoreState, after: StoreState, data: st.DataObject
) -> None:
    """Accounts whose bytes did not change are reused, and nothing else differs."""
    # Keep some accounts of `before` unchanged in `after`, as most snapshots do.
    keep = data.draw(st.lists(st.booleans(), min_size=len(before.accounts)))
    kept = [a for a, chosen in zip(before.accounts, keep, strict=False) if chosen]
    ids = {a.id for a in kept}
    merged = replace(
        after,
        revision=9,
        base_url_overrides=data.draw(
            st.sampled_from([before.base_url_overrides, after.base_url_overrides])
        ),
        accounts=(*kept, *(a for a in after.accounts if a.id not in ids)),
    )
    first = publication(replace(before, revision=8))
    served = apply(8, first.revision.sha256, first.payload)
    assert isinstance(served, Applied)
    p = publication(merged)
    on_top = apply(9, p.revision.sha256, p.payload, served.table)
    fresh = apply(9, p.revision.sha256, p.payload)
    if not isinstance(fresh, Applied):
        assert isinstance(on_top, Rejected)
        assert on_top.violations == fresh.violations
        return
    assert isinstance(on_top, Applied)
    assert on_top.table == fresh.table == fresh_table(p)
    if merged.base_url_overrides == before.base_url_overrides and (
        merged.allow_private_upstreams == before.allow_private_upstreams
    ):
        for account in kept:  # same built-ins, same bytes: the very same objects
            assert on_top.table.accounts[account.id] is served.table.accounts[account.id]


@settings(max_examples=60, deadline=None)
@given(state=store_states(), corruption=st.sampled_from(INVALID))
def test_a_spoiled_account_is_refused_even_on_top_of_a_served_table(
    state: StoreState, corruption: Corruption
) -> None:
    good = publication(replace(state, revision=3))
    served = apply(3, good.revision.sha256, good.payload)
    assert isinstance(served, Applied)
    bad = publication(replace(state, revision=4), corruption)
    on_top = apply(4, bad.revision.sha256, bad.payload, served.table)
    fresh = apply(4, bad.revision.sha256, bad.payload)
    assert isinstance(on_top, Rejected)
    assert isinstance(fresh, Rejected)
    assert (on_top.message, on_top.violations) == (fresh.message, fresh.violations)


def _delta(state: StoreState, revisions: dict[str, int]) -> StoreDelta:
    accounts = sorted(state.accounts, key=lambda a: a.id)
    return StoreDelta(
        revision=state.revision,
        account_ids=tuple(a.id for a in accounts),
        changed=tuple(
            AccountData(
                a.id,
                revisions.get(a.id, 1),
                a,
                None,
                frozenset(k.token_sha256 for k in a.access_keys),
            )
            for a in accounts
        ),
    )


@settings(max_examples=60, deadline=None)
@given(state=store_states(), later=store_states())
def test_assembling_accounts_one_by_one_gives_the_whole_snapshots_bytes(
    state: StoreState, later: StoreState
) -> None:
    assembly = Assembly(state.base_url_overrides, state.allow_private_upstreams, 1 << 30)
    assembled = assembly.update(_delta(state, {}), now_us=1)
    assert assembled.payload == serialise(compile_snapshot(state)).payload
    assert assembly.quarantined == {}
    # A later revision where only some accounts changed: the rest is reused as bytes.
    moved = replace(later, revision=state.revision + 1, base_url_overrides=state.base_url_overrides)
    moved = replace(moved, allow_private_upstreams=state.allow_private_upstreams)
    changed = {a.id for a in moved.accounts}
    delta = _delta(moved, {a: 2 for a in changed})
    merged = {a.id: a for a in (*state.accounts, *moved.accounts)}
    expected = replace(moved, accounts=tuple(merged.values()))
    delta = replace(delta, account_ids=tuple(sorted(merged)))
    assert assembly.update(delta, now_us=2).payload == serialise(compile_snapshot(expected)).payload
