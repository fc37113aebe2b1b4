"""What the store holds, as typed frozen values: every read returns these, never rows.

Plain values with no behaviour, shared by the store port, its adapters and their callers.
A resource record pairs what its caller wrote (`fields`, the same value a create or an
update takes) with what the store keeps for it (id, times, etag, derived figures).
Times are microseconds since the epoch. Secrets appear only as `Secret`, and only in the
snapshot reader's records; resource records carry redacted forms.

`AccessKeyConfiguration` bodies are protobuf messages (the contract's own shape of a
scope and a router); each read builds new ones, and nobody may modify a record's body.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

from keyway.v1.access_key_configurations_pb2 import AccessKeyConfiguration

from control_plane.domain import catalog
from control_plane.domain.formats import ApiFormat, AuthStyle
from control_plane.domain.tokens import TokenKind
from control_plane.secrets.secret import Secret
from control_plane.snapshots.stream import Rejection, Revision

R = TypeVar("R")

# -- what callers write --------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Labels:
    """What a person names and notes on any resource."""

    name: str
    description: str = ""
    metadata: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderKeyFields(Labels):
    disabled: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessKeyFields(Labels):
    configuration_id: str | None = None
    """None: not linked (the account's default routing)."""
    disabled: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigurationFields(Labels):
    body: AccessKeyConfiguration
    """Access, router and limits; a store keeps them in canonical form."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomProviderFields(Labels):
    base_url: str
    formats: tuple[ApiFormat, ...]
    auth_style: AuthStyle | None
    """None: the usual one for the first format."""
    models: tuple[catalog.Model, ...] = ()


# -- what the store keeps ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Stored:
    id: str
    create_time_us: int
    update_time_us: int
    etag: str
    """Opaque: changes with every write to the resource."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Account(Stored):
    fields: Labels
    data_revision: int
    """The store revision of the last write to the account's routing data."""
    snapshot_bytes: int
    """The estimated size of the account's routing data in the snapshot."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Credential(Stored):
    """An operator credential, an account's admin API key or a data-plane credential."""

    fields: Labels
    kind: TokenKind
    account_id: str | None
    redacted_token: str


@dataclass(frozen=True, slots=True)
class ProviderKeyError:
    status: int
    """The upstream HTTP status, 0 when there was no response."""
    reason: str
    time_us: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderKey(Stored):
    fields: ProviderKeyFields
    account_id: str
    provider_id: str
    redacted_value: str
    kek_id: str
    """The master key the value's data key is wrapped with."""
    rotate_time_us: int
    last_used_time_us: int | None
    last_success_time_us: int | None
    last_error: ProviderKeyError | None
    """The last error proxies reported, whether or not the key served since."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessKey(Stored):
    fields: AccessKeyFields
    account_id: str
    redacted_token: str
    last_used_time_us: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Configuration(Stored):
    fields: ConfigurationFields
    account_id: str
    access_key_count: int
    """How many access keys are linked to it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomProvider(Stored):
    fields: CustomProviderFields
    account_id: str
    provider_id: str


@dataclass(frozen=True, slots=True)
class Page(Generic[R]):
    items: tuple[R, ...]
    next_after: int | None
    """Sequence number to continue after, or None on the last page."""


# -- bookkeeping: written without moving the revision --------------------------------------


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """What a proxy reports of one provider key (times in microseconds, None: no news)."""

    key_id: str
    last_used_us: int | None
    error_status: int
    error_reason: str
    error_time_us: int | None
    last_success_us: int | None


@dataclass(frozen=True, slots=True)
class AccessKeyUsage:
    key_id: str
    last_used_us: int


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One proxy as the control plane last knew it (the status book's entry)."""

    node_id: str
    pool: str
    build_version: str
    connected: bool
    connect_time_us: int
    last_seen_us: int
    sent_version: int = 0
    applied: Revision | None = None
    rejection: Rejection | None = None
    rejected_time_us: int | None = None
    control_plane: str = ""
    """The replica id of the control plane holding (or that last held) its stream."""


@dataclass(frozen=True, slots=True)
class PassResult:
    """The outcome of a pass over every sealed provider key."""

    done: int
    unreadable: tuple[str, ...]
    """Ids of rows that could not be opened (tampered with, or sealed by a missing key)."""


# -- the snapshot reader's view: one account's routing data --------------------------------


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    provider_id: str
    value: Secret
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class AccessKeyRecord:
    id: str
    token_sha256: str
    configuration_id: str | None
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class AccountRecord:
    id: str
    custom_providers: tuple[catalog.ProviderSpec, ...]
    keys: tuple[KeyRecord, ...]
    """In creation order."""
    configurations: tuple[tuple[str, AccessKeyConfiguration], ...]
    access_keys: tuple[AccessKeyRecord, ...]


@dataclass(frozen=True, slots=True)
class AccountData:
    """One account as read at a revision, or why it could not be read."""

    id: str
    data_revision: int
    """The store revision of the last write to this account's routing data."""
    record: AccountRecord | None
    problem: str | None
    """Why `record` is None: a row that does not open or parse (ids only, no secret)."""
    access_key_hashes: frozenset[str]
    """Token hashes of the account's enabled access keys, readable even when the rest is
    not: what a quarantined account may still be served with."""


@dataclass(frozen=True, slots=True)
class StoreDelta:
    revision: int
    account_ids: tuple[str, ...]
    """Every account at this revision, ordered by id."""
    changed: tuple[AccountData, ...]
    """Accounts whose data revision differs from what the caller said it knows."""


# -- usage: what proxies served, kept without moving the revision --------------------------


# Usage records are tuples: the control plane builds one per request every proxy serves,
# and a named tuple builds in a fifth of the time of a frozen dataclass.


class TokenCounts(NamedTuple):
    input: int = 0
    """Cached input included."""
    output: int = 0
    """Reasoning included."""
    cached_input: int = 0
    reasoning: int = 0


class UsageAttempt(NamedTuple):
    """One upstream attempt of one request (attempt 0: refused before any attempt)."""

    request_id: str
    time_us: int
    """When the request arrived."""
    node_id: str
    account_id: str
    access_key_id: str
    configuration_id: str
    surface: str
    requested_model: str
    provider_id: str
    upstream_model: str
    provider_key_id: str
    attempt: int
    outcome: str
    reason: str
    status: int
    headers_ms: float
    first_byte_ms: float
    duration_ms: float
    tokens: TokenCounts | None
    """None: the provider reported none."""
    cost_nanos: int | None
    """Billionths of a US dollar; None when tokens or the model's price are unknown."""
    final: bool
    """The request's last attempt: the one its answer came from."""


class UsageDimension(enum.Enum):
    """What usage can be grouped and filtered by; the value names the rollup column."""

    ACCOUNT = "account_id"
    ACCESS_KEY = "access_key_id"
    PROVIDER_KEY = "provider_key_id"
    PROVIDER = "provider_id"
    MODEL = "model"


class UsageBucket(enum.Enum):
    NONE = 0
    HOUR = 3600 * 1_000_000
    DAY = 24 * 3600 * 1_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageQuery:
    start_us: int
    """Inclusive; usage is kept by hour, so a start inside an hour counts that hour."""
    end_us: int
    """Exclusive."""
    bucket: UsageBucket = UsageBucket.NONE
    group_by: tuple[UsageDimension, ...] = ()
    filters: tuple[tuple[UsageDimension, str], ...] = ()
    """Each dimension equal to the value; an account filter scopes a tenant."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageTotals:
    bucket_start_us: int
    group: tuple[str, ...]
    """The values of the query's `group_by` dimensions, in its order."""
    requests: int
    attempts: int
    failovers: int
    errors: tuple[tuple[str, int], ...]
    """(outcome, requests) for requests that did not end in success, by outcome."""
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost_nanos: int
    unpriced_attempts: int
    """Attempts with tokens but no known price: not in `cost_nanos`."""
