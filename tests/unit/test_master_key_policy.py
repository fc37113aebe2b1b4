"""Which master keys a rotation may drop from the keyring."""

from __future__ import annotations

from control_plane.domain.master_keys import retirable


def test_the_current_key_always_stays() -> None:
    assert retirable(["k3"], {}) == []
    assert retirable(["k3", "k2"], {"k2": 0}) == ["k2"]


def test_a_key_still_wrapping_a_data_key_stays() -> None:
    # k1 still wraps rows that could not be re-wrapped (unreadable): dropping it loses them.
    assert retirable(["k3", "k2", "k1"], {"k2": 0, "k1": 4}) == ["k2"]
    assert retirable(["k3", "k2", "k1"], {"k2": 1, "k1": 4}) == []
