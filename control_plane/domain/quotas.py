"""Per-account quotas and the snapshot size budget. Pure.

One tenant must not be able to grow the routing snapshot that every proxy loads
past what proxies accept, or crowd out other tenants: resource counts per account
are capped, and so is the size of each account's routing data and of the whole
snapshot. All are checked inside the write transaction that would exceed them, and
refused with RESOURCE_EXHAUSTED naming the quota and the flag that sets it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from data_plane.shared.limits import SNAPSHOT_RECEIVE_LIMIT

from .errors import ResourceExhausted

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Quota:
    name: str
    """Stable name, as in ErrorInfo metadata `quota`."""
    flag: str
    what: str
    """What is counted, for messages: "provider keys"."""
    help: str
    """What the limit caps, for `--help`."""


@dataclass(frozen=True, slots=True)
class Quotas:
    """Limits with the defaults a normal account never meets."""

    provider_keys: int = 1_000
    access_keys: int = 10_000
    configurations: int = 1_000
    custom_providers: int = 100
    models_per_provider: int = 500
    admin_api_keys: int = 100
    account_snapshot_bytes: int = 16 * MIB
    """Estimated size of one account's routing data in the snapshot."""
    snapshot_bytes: int = 128 * MIB
    """Estimated size of the whole snapshot; proxies accept at most 256 MiB."""

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 1:
                raise ValueError(f"{QUOTAS[f.name].flag} must be at least 1")
        if self.snapshot_bytes > SNAPSHOT_RECEIVE_LIMIT:
            raise ValueError(
                f"{QUOTAS['snapshot_bytes'].flag} must be at most {SNAPSHOT_RECEIVE_LIMIT} "
                "(what proxies accept)"
            )


QUOTAS = {
    q.name: q
    for q in (
        Quota("provider_keys", "--max-provider-keys", "provider keys", "provider keys per account"),
        Quota("access_keys", "--max-access-keys", "access keys", "access keys per account"),
        Quota(
            "configurations",
            "--max-configurations",
            "configurations",
            "access-key configurations per account",
        ),
        Quota(
            "custom_providers",
            "--max-custom-providers",
            "custom providers",
            "custom providers per account",
        ),
        Quota(
            "models_per_provider",
            "--max-models-per-provider",
            "models",
            "models listed by one custom provider",
        ),
        Quota("admin_api_keys", "--max-admin-keys", "admin API keys", "admin API keys per account"),
        Quota(
            "account_snapshot_bytes",
            "--max-account-snapshot-bytes",
            "bytes of routing data",
            "estimated bytes of one account's routing data in the snapshot",
        ),
        Quota(
            "snapshot_bytes",
            "--max-snapshot-bytes",
            "bytes of routing snapshot",
            "estimated bytes of the whole routing snapshot (proxies accept at most 256 MiB)",
        ),
    )
}


DEFAULT_QUOTAS = Quotas()


def exceeded(name: str, limit: int, subject: str, detail: str) -> ResourceExhausted:
    quota = QUOTAS[name]
    return ResourceExhausted(
        f"quota {name} exceeded: {detail} (limit {limit}); free some up, or ask the operator "
        f"to raise {quota.flag}",
        quota=name,
        limit=limit,
        subject=subject,
    )


def check_count(quotas: Quotas, name: str, account_id: str, existing: int) -> None:
    """Before one more resource counted by `name` is created in an account."""
    limit: int = getattr(quotas, name)
    if existing >= limit:
        what = QUOTAS[name].what
        raise exceeded(
            name, limit, f"accounts/{account_id}", f"account {account_id} has {existing} {what}"
        )


def check_models(quotas: Quotas, provider_id: str, listed: int) -> None:
    """Before a custom provider listing `listed` models is stored."""
    limit = quotas.models_per_provider
    if listed > limit:
        raise exceeded(
            "models_per_provider",
            limit,
            f"customProviders/{provider_id}",
            f"the custom provider lists {listed} models",
        )


def check_size(quotas: Quotas, account_id: str, before: int, after: int, total: int) -> None:
    """After a write changed an account's routing data from `before` to `after` bytes;
    `total` is the whole snapshot's size after the write. Shrinking is always allowed,
    so an account over a lowered budget can still clean up."""
    if after <= before:
        return
    if after > quotas.account_snapshot_bytes:
        raise exceeded(
            "account_snapshot_bytes",
            quotas.account_snapshot_bytes,
            f"accounts/{account_id}",
            f"the routing data of account {account_id} would be about {after} bytes",
        )
    if total > quotas.snapshot_bytes:
        raise exceeded(
            "snapshot_bytes",
            quotas.snapshot_bytes,
            "snapshot",
            f"the routing snapshot of all accounts would be about {total} bytes",
        )
