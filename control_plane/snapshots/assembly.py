"""The snapshot, kept compiled one account at a time. Pure: the caller reads the store.

Each store delta recompiles only the accounts it names; every other account's bytes
are reused as they are. An account whose data cannot be read, compiled or
validated, or is over the per-account budget, is quarantined instead of stopping
the snapshot for everyone:

- the other accounts publish as usual;
- the quarantined account keeps being served from its last good data, except that
  its deleted and disabled access keys are dropped at once (a revocation always
  propagates);
  with no last good data (e.g. after a restart) nothing of it is served;
- the reason stays visible to its admins until a write fixes it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from keyway.v1 import snapshot_pb2 as spb

from control_plane.store.records import AccountData, StoreDelta
from data_plane.shared.validate import Violation, validate_account, validate_header

from .compiler import Compiled, assemble, compile_account, frame_account, header

log = logging.getLogger("keyway.control_plane.snapshots")


@dataclass(frozen=True, slots=True)
class Quarantine:
    reason: str
    violations: tuple[Violation, ...]
    version: int
    """The snapshot version at which the account was quarantined."""
    time_us: int
    serving_previous: bool
    """Whether proxies still serve the account's last good data (minus revoked keys)."""
    transient: bool
    """Whether retrying without a write could help (a row that did not open)."""


@dataclass(frozen=True, slots=True)
class AccountStatus:
    """What one compile made of an account."""

    data_revision: int
    """The revision of the account's data that was compiled (published or not)."""
    quarantine: Quarantine | None = None


@dataclass(frozen=True, slots=True)
class _Entry:
    data_revision: int
    good: bytes | None
    """The account's last good compiled bytes (unframed), if any."""
    framed: bytes
    """What is published for it: `good`, a revocation-filtered copy, or nothing."""
    hashes: frozenset[str]
    """Token hashes published for it."""
    quarantine: Quarantine | None = None


class Assembly:
    def __init__(
        self,
        base_url_overrides: Mapping[str, str],
        allow_private_upstreams: bool,
        account_budget: int,
    ) -> None:
        self._overrides = dict(base_url_overrides)
        self._private = allow_private_upstreams
        self._budget = account_budget
        self._entries: dict[str, _Entry] = {}
        self._order: tuple[str, ...] = ()
        problems, self._built_in = validate_header(header(1, self._overrides))
        if problems:  # the catalog and the operator's overrides: a bug, not input
            raise ValueError(f"the built-in catalog is invalid: {problems[0]}")

    def known(self, *, retry: bool = False) -> dict[str, int]:
        """What the store need not read again; with `retry`, quarantined accounts whose
        problem might go away by itself are read again."""
        return {
            account_id: entry.data_revision
            for account_id, entry in self._entries.items()
            if not (retry and entry.quarantine is not None and entry.quarantine.transient)
        }

    @property
    def quarantined(self) -> Mapping[str, Quarantine]:
        return {a: e.quarantine for a, e in self._entries.items() if e.quarantine is not None}

    def statuses(self) -> Mapping[str, AccountStatus]:
        """Every account as last compiled; a new mapping, safe to hand to other threads."""
        return MappingProxyType(
            {a: AccountStatus(e.data_revision, e.quarantine) for a, e in self._entries.items()}
        )

    def update(self, delta: StoreDelta, now_us: int) -> Compiled:
        present = set(delta.account_ids)
        for gone in self._entries.keys() - present:
            del self._entries[gone]
        owners = {h: a for a, e in self._entries.items() for h in e.hashes}
        for data in delta.changed:
            previous = self._entries.get(data.id)
            for token in previous.hashes if previous is not None else ():
                owners.pop(token, None)
            entry = self._compile(data, previous, owners, delta.revision, now_us)
            owners.update((token, data.id) for token in entry.hashes)
            self._entries[data.id] = entry
        self._order = delta.account_ids
        return assemble(
            header(delta.revision, self._overrides),
            (self._entries[a].framed for a in self._order if a in self._entries),
        )

    def _compile(
        self,
        data: AccountData,
        previous: _Entry | None,
        owners: Mapping[str, str],
        version: int,
        now_us: int,
    ) -> _Entry:
        violations: tuple[Violation, ...] = ()
        transient = False
        if data.record is None:
            reason = data.problem or "the account's data could not be read"
            transient = True
        else:
            account = compile_account(data.record, self._private)
            found = validate_account(account, self._built_in)
            found += [
                Violation(
                    f"account.access_keys[{i}].token_sha256",
                    f"the token hash of access key '{a.id}' is also used by another account",
                )
                for i, a in enumerate(account.access_keys)
                if owners.get(a.token_sha256, data.id) != data.id
            ]
            payload = account.SerializeToString(deterministic=True)
            if found:
                violations = tuple(found)
                first = found[0]
                reason = f"its routing data does not validate: {first.field}: {first.description}"
            elif len(payload) > self._budget:
                reason = (
                    f"its routing data is {len(payload)} bytes, over the per-account budget "
                    f"of {self._budget} (--max-account-snapshot-bytes)"
                )
            else:
                if previous is not None and previous.quarantine is not None:
                    log.info("account %s is no longer quarantined", data.id)
                published = frozenset(a.token_sha256 for a in account.access_keys)
                return _Entry(data.data_revision, payload, frame_account(payload), published)
        return self._quarantine(data, previous, reason, violations, transient, version, now_us)

    def _quarantine(
        self,
        data: AccountData,
        previous: _Entry | None,
        reason: str,
        violations: tuple[Violation, ...],
        transient: bool,
        version: int,
        now_us: int,
    ) -> _Entry:
        good = previous.good if previous is not None else None
        framed, hashes = b"", frozenset[str]()
        if good is not None:
            kept = spb.SnapshotAccount.FromString(good)
            still = [a for a in kept.access_keys if a.token_sha256 in data.access_key_hashes]
            del kept.access_keys[:]
            kept.access_keys.extend(still)
            framed = frame_account(kept.SerializeToString(deterministic=True))
            hashes = frozenset(a.token_sha256 for a in still)
        earlier = previous.quarantine if previous is not None else None
        if earlier is None or earlier.reason != reason:
            log.error(
                "account %s is quarantined: %s; %s",
                data.id,
                reason,
                "proxies keep its last good data" if good is not None else "none of it is served",
            )
        quarantine = Quarantine(
            reason=reason,
            violations=violations,
            version=earlier.version if earlier is not None else version,
            time_us=earlier.time_us if earlier is not None else now_us,
            serving_previous=good is not None,
            transient=transient,
        )
        return _Entry(data.data_revision, good, framed, hashes, quarantine)
