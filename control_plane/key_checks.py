"""Which keyring a deployment runs with, checked at every start.

A control plane refuses a keyring that cannot open the provider keys stored (see
`server`); before any exist, these check values catch a replica started with another
deployment's key, which would seal secrets the other replicas cannot open.
"""

from __future__ import annotations

import secrets

from control_plane.secrets.errors import SealError
from control_plane.secrets.sealing import SealedSecret, Sealer
from control_plane.secrets.secret import Secret
from control_plane.store.port import Store
from data_plane.shared.startup import StartupError

_KEY_CHECK = "master_key_check:"
_KEY_CHECK_AAD = b"keyway master key check"


def check_keyring(store: Store, sealer: Sealer, source: str) -> None:
    """Every keyring a deployment has started with leaves a sealed check value per master
    key id; a keyring sharing no id with them, or holding other material under one, is
    another deployment's. This catches a replica with the wrong key before any provider
    key exists (the rows then say nothing), when it would seal what the others cannot open.
    """
    checks = store.deployment_values(_KEY_CHECK)
    known = set(sealer.provider.ids())
    ours = {name[len(_KEY_CHECK) :]: value for name, value in checks.items()}
    shared = sorted(known & ours.keys())
    if ours and not shared:
        raise StartupError(
            f"{source} has none of this deployment's master keys (it has used "
            f"{', '.join(sorted(ours))}): every replica needs the same keyring"
        )
    for kek_id in shared:
        wrapped, _, ciphertext = ours[kek_id].partition(":")
        try:
            sealer.open(
                SealedSecret(kek_id, bytes.fromhex(wrapped), bytes.fromhex(ciphertext)),
                _KEY_CHECK_AAD,
            )
        except (SealError, ValueError):
            raise StartupError(
                f"master key {kek_id} in {source} is not this deployment's key of that id "
                "(its check value does not open): every replica needs the same keyring"
            ) from None
    record_current_key(store, sealer)


def record_current_key(store: Store, sealer: Sealer) -> None:
    """Leaves the check value of the current master key (at start, and when a rotation
    makes a new one current), unless it is there."""
    current = sealer.current_kek_id()
    if _KEY_CHECK + current in store.deployment_values(_KEY_CHECK + current):
        return
    sealed = sealer.seal(Secret(secrets.token_hex(16)), _KEY_CHECK_AAD)
    value = f"{sealed.wrapped_key.hex()}:{sealed.ciphertext.hex()}"
    store.keep_deployment_value(_KEY_CHECK + current, value)
