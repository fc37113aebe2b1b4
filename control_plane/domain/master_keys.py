"""When a master key may leave the keyring after a rotation. Pure.

A master key (key-encryption key) is needed for as long as one data key is wrapped
under it, rows that could not be re-wrapped (unreadable) included: dropping it then
would lose those secrets for good. The current key always stays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def retirable(key_ids: Sequence[str], wrapped_under: Mapping[str, int]) -> list[str]:
    """`key_ids`: the keyring, current first; `wrapped_under`: data keys per key id
    (every id but the current one must be counted)."""
    return [kek_id for kek_id in key_ids[1:] if wrapped_under[kek_id] == 0]
