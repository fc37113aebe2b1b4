"""The store port: what the control plane asks of its database, in records.

Every method is synchronous and is one transaction; each write also bumps the store
revision (the snapshot version) in that transaction, so a refused write leaves it where
it was. Writes decide nothing themselves: an adapter gathers, inside the transaction, the
facts a rule of `control_plane.domain` needs (an etag, a count, what refers to a row) and
applies its verdict, so every backend refuses the same writes with the same errors.

Async code never calls these methods directly: `call(store, method, …)` runs them on the
store's executor (see the package docstring for why).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from control_plane.domain import ids
from control_plane.domain.configuration import AccountView
from control_plane.domain.tokens import TokenKind
from control_plane.secrets.secret import Secret

from .records import (
    AccessKey,
    AccessKeyFields,
    AccessKeyUsage,
    Account,
    Configuration,
    ConfigurationFields,
    Credential,
    CustomProvider,
    CustomProviderFields,
    KeyUsage,
    Labels,
    NodeStatus,
    Page,
    PassResult,
    ProviderKey,
    ProviderKeyFields,
    StoreDelta,
    UsageAttempt,
    UsageQuery,
    UsageTotals,
)

R = TypeVar("R")
F = TypeVar("F")
T = TypeVar("T")
U = TypeVar("U")
P = ParamSpec("P")


@dataclass(frozen=True, slots=True, eq=False)
class Kind(Generic[R, F]):
    """A kind of resource: `R` is its record, `F` the fields its writes take."""

    label: str
    """How messages name one: "provider key"."""
    prefix: str
    """Of its ids (`ids.PROVIDER_KEY`)."""
    credential: TokenKind | None = None
    """For credentials: the kind of token they hold."""
    quota: str | None = None
    """The per-account quota (`domain.quotas`) that counts these resources."""
    routing: bool = False
    """Whether they are an account's routing data (compiled into the snapshot)."""


ACCOUNTS: Kind[Account, Labels] = Kind("account", ids.ACCOUNT)
ADMIN_KEYS: Kind[Credential, Labels] = Kind(
    "admin API key", ids.ADMIN_API_KEY, TokenKind.ADMIN, "admin_api_keys"
)
OPERATOR_CREDENTIALS: Kind[Credential, Labels] = Kind(
    "operator credential", ids.OPERATOR, TokenKind.OPERATOR
)
DATA_PLANE_CREDENTIALS: Kind[Credential, Labels] = Kind(
    "data-plane credential", ids.DATA_PLANE_CREDENTIAL, TokenKind.DATA_PLANE
)
PROVIDER_KEYS: Kind[ProviderKey, ProviderKeyFields] = Kind(
    "provider key", ids.PROVIDER_KEY, quota="provider_keys", routing=True
)
ACCESS_KEYS: Kind[AccessKey, AccessKeyFields] = Kind(
    "access key", ids.ACCESS_KEY, quota="access_keys", routing=True
)
CONFIGURATIONS: Kind[Configuration, ConfigurationFields] = Kind(
    "configuration", ids.CONFIGURATION, quota="configurations", routing=True
)
CUSTOM_PROVIDERS: Kind[CustomProvider, CustomProviderFields] = Kind(
    "custom provider", ids.CUSTOM_PROVIDER, quota="custom_providers", routing=True
)
CREDENTIALS: Mapping[TokenKind, Kind[Credential, Labels]] = {
    TokenKind.ADMIN: ADMIN_KEYS,
    TokenKind.OPERATOR: OPERATOR_CREDENTIALS,
    TokenKind.DATA_PLANE: DATA_PLANE_CREDENTIALS,
}


class SnapshotSource(Protocol):
    """Reads routing data for the snapshot compiler, beside the writes (own connection,
    safe to call from any one worker thread at a time)."""

    def read(self, known: Mapping[str, int]) -> StoreDelta:
        """Accounts whose data revision is not the one in `known` (account id ->
        revision), every one of them from one consistent read at one revision."""
        ...

    def revision(self) -> int: ...


class SealedPasses(Protocol):
    """Passes over every sealed provider key that run beside the admin API, in small
    batches that each commit alone; plaintexts and the revision do not change."""

    def count_under(self, kek_id: str) -> int:
        """How many data keys are wrapped with this master key."""
        ...

    def legacy_rows(self) -> int:
        """How many rows are sealed without their owner in the associated data."""
        ...

    def rewrap(self, batch: int = 200) -> PassResult:
        """Re-wraps every data key that is not under the current master key."""
        ...

    def reseal_legacy(self, batch: int = 200) -> PassResult:
        """Re-seals legacy rows, binding each to its owner."""
        ...

    def close(self) -> None:
        """Stops a running pass after its current batch (the next run resumes)."""
        ...


class UsageLedger(Protocol):
    """Attempt records and their hourly rollups; bookkeeping that never moves the revision."""

    def ingest(
        self,
        batch_id: str,
        node_id: str,
        attempts: Sequence[UsageAttempt],
        provider_keys: Sequence[KeyUsage],
        access_keys: Sequence[AccessKeyUsage],
    ) -> bool:
        """Stores one proxy batch in one transaction: its attempts, their rollups and the
        keys' last use. False, with nothing written, when the batch id was stored before."""
        ...

    def totals(self, query: UsageQuery) -> list[UsageTotals]:
        """Rollup sums by bucket, then by group (in value order)."""
        ...

    def request(self, request_id: str, account_id: str | None) -> list[UsageAttempt]:
        """Every attempt of a request, in order; `account_id` None: of any account."""
        ...

    def prune(self, *, attempts_before_us: int, rollups_before_us: int) -> int:
        """Drops raw attempts (and batch ids) and rollups older than these; how many rows."""
        ...


class Store(Protocol):
    """The control plane's database. See the package docstring for the adapters."""

    @property
    def executor(self) -> Executor:
        """Where async code runs this store's methods (`call`)."""
        ...

    @property
    def snapshots(self) -> SnapshotSource: ...

    @property
    def sealed(self) -> SealedPasses: ...

    @property
    def usage(self) -> UsageLedger: ...

    def close(self) -> None: ...

    def on_commit(self, listener: Callable[[int], None]) -> None:
        """`listener(revision)` after each committed write, once per revision: on the
        writing thread, or, for a write made through another replica of a shared
        database, on a watcher thread (within a second). It must be quick and must not
        call the store."""
        ...

    def exclusive(self, job: str, *, wait: bool = False) -> AbstractContextManager[bool]:
        """A one-off job's lock, across every replica of the database: yields whether
        this process holds it for the block (without `wait`, False at once when another
        does; then the block should leave the job to it). First start takes it waiting."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """Several writes as one (first start, bulk loads): all commit at the end, or none.
        Runs on the calling thread; never held across an await."""
        ...

    def revision(self) -> int: ...

    def label_salt(self) -> bytes:
        """A random value per deployment (every replica shares it), for opaque labels."""
        ...

    def deployment_values(self, prefix: str) -> dict[str, str]:
        """Deployment-wide values (every replica shares them) whose names start so."""
        ...

    def keep_deployment_value(self, name: str, value: str) -> None:
        """Stores `value` under `name` unless one is there already (bookkeeping)."""
        ...

    # -- any resource kind -----------------------------------------------------------------

    def get(self, kind: Kind[T, Any], resource_id: str, account_id: str | None) -> T:
        """NotFound also when it belongs to another account than `account_id` (if given)."""
        ...

    def update(
        self,
        kind: Kind[T, U],
        resource_id: str,
        account_id: str | None,
        fields: U,
        changed: Collection[str],
        etag: str = "",
    ) -> T:
        """Writes the attributes of `fields` named in `changed`, nothing else. A
        configuration's body is validated against its account; linking an access key
        needs a configuration of the same account."""
        ...

    def delete(
        self, kind: Kind[Any, Any], resource_id: str, account_id: str | None, etag: str = ""
    ) -> None:
        """Refused while something refers to it (`domain.preconditions`)."""
        ...

    # -- accounts ---------------------------------------------------------------------------

    def create_account(self, fields: Labels) -> Account: ...

    def list_accounts(self, *, after: int, limit: int) -> Page[Account]: ...

    def delete_account(self, account_id: str, *, etag: str, force: bool) -> None:
        """With `force`, everything the account holds goes too; without, only an empty one."""
        ...

    # -- credentials (operator, admin API keys, data planes) ---------------------------------

    def create_credential(
        self, kind: TokenKind, *, account_id: str | None, fields: Labels, token: str
    ) -> Credential:
        """Stores a hash of `token` (minted by the caller) and its redacted form only."""
        ...

    def authenticate(self, token: str) -> Credential | None: ...

    def count_credentials(self, kind: TokenKind) -> int: ...

    def list_credentials(
        self, kind: TokenKind, *, account_id: str | None, after: int, limit: int
    ) -> Page[Credential]:
        """Admin API keys are listed per account (NotFound for an unknown one)."""
        ...

    def rotate_credential(self, kind: TokenKind, credential_id: str, token: str) -> Credential:
        """The same credential with a new token; the old one stops working at commit."""
        ...

    def reset_operator_credentials(self, fields: Labels, token: str) -> Credential:
        """Revokes every operator credential and creates one new one (local recovery)."""
        ...

    # -- provider keys ------------------------------------------------------------------------

    def create_provider_key(
        self, account_id: str, *, provider_id: str, fields: ProviderKeyFields, value: Secret
    ) -> ProviderKey: ...

    def rotate_provider_key(
        self, account_id: str, key_id: str, *, value: Secret, name: str, etag: str
    ) -> ProviderKey:
        """A new value for the same key; `name`, if not empty, renames it."""
        ...

    def list_provider_keys(
        self, account_id: str, *, provider_id: str, after: int, limit: int
    ) -> Page[ProviderKey]:
        """`provider_id`, if not empty, filters (an unknown one is refused)."""
        ...

    def reveal(self, key_id: str) -> Secret:
        """A provider key's value, for operator tooling and tests (never the admin API)."""
        ...

    def sealed_kek_ids(self) -> list[str]:
        """Every master key id some stored secret is wrapped with."""
        ...

    def kek_opens(self, kek_id: str) -> bool:
        """Whether the keyring's key of this id opens (a few of) the rows sealed with it."""
        ...

    def record_usage(
        self, provider_keys: Sequence[KeyUsage], access_keys: Sequence[AccessKeyUsage]
    ) -> None:
        """Proxies' reports. Bookkeeping: the revision and etags do not move, and an older
        report never overwrites a newer one."""
        ...

    # -- access keys, configurations, custom providers ----------------------------------------

    def create_access_key(
        self, account_id: str, *, fields: AccessKeyFields, token: str
    ) -> AccessKey: ...

    def list_access_keys(
        self, account_id: str, *, configuration_id: str, after: int, limit: int
    ) -> Page[AccessKey]: ...

    def create_configuration(
        self, account_id: str, *, fields: ConfigurationFields
    ) -> Configuration:
        """The body is validated against the account in the transaction, kept canonical."""
        ...

    def list_configurations(
        self, account_id: str, *, after: int, limit: int
    ) -> Page[Configuration]: ...

    def account_view(self, account_id: str) -> AccountView:
        """What configurations are checked against: providers, keys, listed models."""
        ...

    def create_custom_provider(
        self, account_id: str, *, provider_id: str, fields: CustomProviderFields
    ) -> CustomProvider: ...

    def list_custom_providers(
        self, account_id: str, *, after: int, limit: int
    ) -> Page[CustomProvider]: ...

    # -- per-proxy status (bookkeeping) --------------------------------------------------------

    def data_planes(self) -> list[NodeStatus]:
        """Every proxy the mirror remembers, as last saved."""
        ...

    def save_data_planes(self, saved: Sequence[NodeStatus], forgotten: Sequence[str]) -> None:
        """Upserts `saved` and drops the node ids in `forgotten`, in one transaction."""
        ...


async def call(store: Store, method: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`method(*args, **kwargs)` on `store`'s executor: how async code uses the store."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(store.executor, functools.partial(method, *args, **kwargs))


def pages(fetch: Callable[[int], Page[T]]) -> Iterator[T]:
    """Every item of a listing, page after page (`fetch(after)`)."""
    after = 0
    while True:
        page = fetch(after)
        yield from page.items
        if page.next_after is None:
            return
        after = page.next_after
