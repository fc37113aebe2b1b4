import pytest
from keyway.v1 import snapshot_pb2 as spb

from data_plane.http.context import ProxyContext
from data_plane.routing.cooldowns import Cooldowns
from data_plane.routing.outcome import Outcome
from data_plane.snapshot.state import SnapshotState
from data_plane.usage import Observer
from tests.unit import snapshots as s


def held_count(table: Cooldowns, keys: list[str]) -> int:
    return sum(table.held_until(key) is not None for key in keys)


def test_unknown_key_is_not_held() -> None:
    table = Cooldowns()
    assert not table.is_held("pk_a", 0.0)
    assert table.held_until("pk_a") is None


def test_hold_lasts_until_its_end() -> None:
    table = Cooldowns()
    table.hold("pk_a", 10.0)
    assert table.is_held("pk_a", 0.0)
    assert table.is_held("pk_a", 9.999)
    assert table.held_until("pk_a") == 10.0
    assert not table.is_held("pk_a", 10.0)


def test_expired_entry_is_dropped_when_looked_up() -> None:
    table = Cooldowns()
    table.hold("pk_a", 10.0)
    table.hold("pk_b", 50.0)
    assert table.held_until("pk_a") == 10.0  # expiry is lazy: still recorded until looked up
    assert not table.is_held("pk_a", 11.0)
    assert table.held_until("pk_a") is None
    assert table.held_until("pk_b") == 50.0


def test_shorter_hold_never_cuts_a_longer_one() -> None:
    table = Cooldowns()
    table.hold("pk_a", 60.0)
    table.hold("pk_a", 5.0)
    assert table.held_until("pk_a") == 60.0
    table.hold("pk_a", 90.0)
    assert table.held_until("pk_a") == 90.0


def test_release_forgets_the_hold() -> None:
    table = Cooldowns()
    table.hold("pk_a", 60.0)
    table.release("pk_a")
    table.release("pk_never_held")
    assert not table.is_held("pk_a", 0.0)
    assert table.held_until("pk_a") is None


def test_size_is_bounded_and_soonest_expiring_go_first() -> None:
    table = Cooldowns(max_entries=4)
    keys = [f"pk_{index}" for index in range(100)]
    for index, key in enumerate(keys[:5]):
        table.hold(key, 100.0 + index)
    assert held_count(table, keys) <= 4
    assert table.held_until("pk_4") == 104.0  # the latest hold survives
    assert table.held_until("pk_0") is None
    for index, key in enumerate(keys):
        table.hold(key, 1000.0 + index)
        assert held_count(table, keys) <= 4
    assert table.held_until("pk_99") == 1099.0


def test_stale_entries_are_dropped_before_live_ones() -> None:
    table = Cooldowns(max_entries=4)
    stale = [f"pk_stale{index}" for index in range(3)]
    for key in stale:
        table.hold(key, 1.0)  # expired long ago, never looked up again
    table.hold("pk_live", 500.0)
    table.hold("pk_new", 400.0)
    assert table.is_held("pk_live", 100.0)
    assert table.is_held("pk_new", 100.0)
    assert held_count(table, stale) <= 2


def test_single_entry_table_keeps_the_latest_hold() -> None:
    table = Cooldowns(max_entries=1)
    table.hold("pk_a", 10.0)
    table.hold("pk_b", 20.0)
    assert table.held_until("pk_a") is None
    assert table.held_until("pk_b") == 20.0


def test_max_entries_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        Cooldowns(max_entries=0)


def test_a_swap_releases_the_keys_whose_value_was_rotated() -> None:
    # Wired by ProxyContext: every swap of the served snapshot runs release_rotated.
    state = SnapshotState()
    cooldowns = Cooldowns()
    ProxyContext(state, upstream=_NoTransport(), observer=Observer(), cooldowns=cooldowns)

    def snap(version: int, value: str) -> spb.Snapshot:
        keys = [s.key("pk_1", "openai", value), s.key("pk_2", "openai", "sk-same")]
        return s.snapshot(s.account("acct_1", keys=keys), version=version)

    state.swap(s.table(snap(1, "sk-old")), generated_at=0.0, now=0.0)
    cooldowns.hold("pk_1", 100.0)
    cooldowns.hold("pk_2", 100.0)
    state.swap(s.table(snap(2, "sk-old")), generated_at=0.0, now=0.0)
    assert cooldowns.is_held("pk_1", 0.0)  # same value: still held
    state.swap(s.table(snap(3, "sk-rotated")), generated_at=0.0, now=0.0)
    assert not cooldowns.is_held("pk_1", 0.0)
    assert cooldowns.is_held("pk_2", 0.0)


class _NoTransport:
    async def open(self, *args: object, **kwargs: object) -> Outcome:
        raise AssertionError("no request is made")

    def outcome_of(self, error: Exception) -> Outcome:
        raise AssertionError("no request is made")
