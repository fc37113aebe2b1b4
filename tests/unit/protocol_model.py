"""An in-memory model of the snapshot protocol: one control plane, proxies, a faulty network.

Pure and deterministic. The control-plane side of each stream is the real `StreamState`;
each proxy decides with the real `decide`, as `SnapshotClient` does, and restarts
through the real `apply`; snapshots are real `compile_snapshot`/`serialise` output. Only
the transport is modelled: every stream is a pair of FIFO queues of serialised messages
(gRPC streams are reliable and ordered), a broken connection loses whatever is still
queued, and the caller decides when each side acts. Every step checks what it can;
`check_invariants` and `check_converged` check the rest.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st
from keyway.v1 import access_key_configurations_pb2 as cpb
from keyway.v1 import discovery_pb2 as pb
from keyway.v1 import snapshot_pb2 as spb

from control_plane.domain import catalog
from control_plane.domain.formats import ApiFormat, AuthStyle
from control_plane.secrets.secret import Secret
from control_plane.snapshots.compiler import (
    AccessKeyRecord,
    AccountRecord,
    KeyRecord,
    StoreState,
    compile_snapshot,
    serialise,
)
from control_plane.snapshots.status import State, state
from control_plane.snapshots.stream import Reply, Revision, Send, StreamState
from control_plane.store.records import NodeStatus
from data_plane.routing.apply import Applied, apply
from data_plane.routing.table import RoutingTable, build
from data_plane.shared.validate import validate
from data_plane.snapshot.decide import Swap, decide

SECRET_PREFIX = "sk-secret-"
"""Every provider key value starts with it, so leaks are easy to look for."""

# ---------------------------------------------------------------------------
# Store states and the snapshots published from them
# ---------------------------------------------------------------------------

ACME = catalog.ProviderSpec(
    id="acme",
    name="Acme",
    base_url="https://llm.acme.example/v1",
    formats=(ApiFormat.OPENAI,),
    auth_style=AuthStyle.BEARER,
    models=(catalog.Model("acme-1"), catalog.Model("Acme-Big", "acme-big-2025")),
    built_in=False,
)
_MODELS = ("", "gpt-4o", "Claude-Sonnet-4-5", "acme-1")
_ALLOWED_MODELS = ("openai/gpt-4o", "anthropic/claude-sonnet-4-5", "acme/acme-1")
_OVERRIDES: tuple[dict[str, str], ...] = ({}, {"openai": "http://127.0.0.1:8080/v1"})


def token_hash(account: int, index: int) -> str:
    return hashlib.sha256(f"token-{account}-{index}".encode()).hexdigest()


@st.composite
def _configuration(
    draw: st.DrawFn, providers: list[str], keys_by_provider: dict[str, list[str]]
) -> cpb.AccessKeyConfiguration:
    config = cpb.AccessKeyConfiguration()
    if draw(st.booleans()):
        allow = draw(st.lists(st.sampled_from(providers), max_size=2, unique=True))
        config.access.providers.allow.extend(allow)
        config.access.providers.SetInParent()
    if draw(st.booleans()):
        allow = draw(st.lists(st.sampled_from(_ALLOWED_MODELS), max_size=2, unique=True))
        config.access.models.allow.extend(allow)
        config.access.models.SetInParent()
    if draw(st.booleans()):
        if draw(st.booleans()):
            config.limits.requests_per_minute = draw(st.integers(1, 1_000_000))
        if draw(st.booleans()):
            config.limits.concurrency = draw(st.integers(1, 100_000))
        config.limits.SetInParent()
    if not keys_by_provider:
        return config
    targets = draw(
        st.lists(
            st.tuples(st.sampled_from(sorted(keys_by_provider)), st.sampled_from(_MODELS)),
            max_size=3,
            unique_by=lambda t: (t[0], t[1].lower()),
        )
    )
    for provider, model in targets:
        rule = config.router.rules.add(provider=provider, model=model)
        for _ in range(draw(st.integers(1, 2))):
            ids = draw(
                st.lists(st.sampled_from(keys_by_provider[provider]), min_size=1, max_size=2)
            )
            rule.steps.add(
                type="user",
                key_selection_strategy=draw(st.sampled_from(["", "ordered"])),
                keys=[cpb.KeyReference(id=i) for i in ids],
            )
    return config


@st.composite
def _account(draw: st.DrawFn, a: int) -> AccountRecord:
    customs = (ACME,) if draw(st.booleans()) else ()
    providers = [catalog.BUILT_IN[0].id, catalog.BUILT_IN[1].id, *(c.id for c in customs)]
    key_providers = draw(st.lists(st.sampled_from(providers), max_size=4))
    keys = tuple(
        KeyRecord(f"pk_{a}_{i}", p, Secret(f"{SECRET_PREFIX}{a}-{i}-{draw(st.integers(0, 99))}"))
        for i, p in enumerate(key_providers)
    )
    keys_by_provider: dict[str, list[str]] = {}
    for key in keys:
        keys_by_provider.setdefault(key.provider_id, []).append(key.id)
    configurations = tuple(
        (f"cfg_{a}_{c}", draw(_configuration(providers, keys_by_provider)))
        for c in range(draw(st.integers(0, 2)))
    )
    config_ids = [None, *(c for c, _ in configurations)]
    access_keys = tuple(
        AccessKeyRecord(f"ak_{a}_{i}", token_hash(a, i), draw(st.sampled_from(config_ids)))
        for i in range(draw(st.integers(0, 2)))
    )
    return AccountRecord(f"acct_{a}", customs, keys, configurations, access_keys)


@st.composite
def store_states(draw: st.DrawFn) -> StoreState:
    """A small, consistent store; the revision is set when it is published."""
    accounts = tuple(draw(_account(a)) for a in range(draw(st.integers(0, 2))))
    return StoreState(1, accounts, draw(st.sampled_from(_OVERRIDES)))


class Corruption(Enum):
    """How a published snapshot is spoiled; NONE publishes the compiler's output."""

    NONE = "none"
    WRONG_HASH = "wrong hash"
    CORRUPT_WIRE = "bytes do not parse"
    VERSION_MISMATCH = "envelope and snapshot versions differ"
    SCHEMA_VERSION = "unknown schema version"
    BAD_BASE_URL = "provider base URL is not a URL"
    DUPLICATE_PROVIDER = "duplicate built-in provider"
    UNKNOWN_AUTH = "unknown auth style"
    BAD_TOKEN_HASH = "access key token hash is not a SHA-256"
    DUPLICATE_TOKEN_HASH = "two access keys share a token hash"
    EMPTY_KEY_VALUE = "empty provider key value"
    UNKNOWN_ROUTE_KEY = "route names an unknown key"
    FOREIGN_ROUTE_KEY = "route names another provider's key"
    UNKNOWN_STRATEGY = "unknown key selection strategy"
    DUPLICATE_ACCOUNT = "duplicate account id"
    UNKNOWN_CONFIGURATION = "access key names an unknown configuration"
    LIMIT_TOO_HIGH = "a configuration's concurrency limit is over the maximum"


INVALID = tuple(c for c in Corruption if c is not Corruption.NONE)


def _bad_account(snapshot: spb.Snapshot, account_id: str = "zz_bad") -> spb.SnapshotAccount:
    """A well-formed extra account for a mutation to spoil."""
    account = snapshot.accounts.add(id=account_id)
    account.provider_keys.add(id="pk_bad", provider_id="openai", value=f"{SECRET_PREFIX}bad")
    account.provider_keys.add(id="pk_bad_a", provider_id="anthropic", value=f"{SECRET_PREFIX}ant")
    config = account.configurations.add(id="cfg_bad")
    route = config.routes.add(provider_id="openai", model="")
    route.steps.add(strategy="ordered", key_ids=["pk_bad"])
    bad_token = hashlib.sha256(f"bad-token-{account_id}".encode()).hexdigest()
    account.access_keys.add(id="ak_bad", token_sha256=bad_token, configuration_id="cfg_bad")
    return account


def _mutate(snapshot: spb.Snapshot, corruption: Corruption) -> None:
    c = Corruption
    if corruption is c.SCHEMA_VERSION:
        snapshot.schema_version += 1
    elif corruption is c.BAD_BASE_URL:
        snapshot.providers[0].base_url = "not a url"
    elif corruption is c.DUPLICATE_PROVIDER:
        snapshot.providers.add().CopyFrom(snapshot.providers[0])
    elif corruption is c.UNKNOWN_AUTH:
        snapshot.providers[-1].auth_style = spb.SNAPSHOT_AUTH_STYLE_UNSPECIFIED
    elif corruption is c.BAD_TOKEN_HASH:
        _bad_account(snapshot).access_keys[0].token_sha256 = "NOT-A-HASH"
    elif corruption is c.DUPLICATE_TOKEN_HASH:
        account = _bad_account(snapshot)
        account.access_keys.add().CopyFrom(account.access_keys[0])
    elif corruption is c.EMPTY_KEY_VALUE:
        _bad_account(snapshot).provider_keys[0].value = ""
    elif corruption is c.UNKNOWN_ROUTE_KEY:
        _bad_account(snapshot).configurations[0].routes[0].steps[0].key_ids[0] = "pk_missing"
    elif corruption is c.FOREIGN_ROUTE_KEY:
        _bad_account(snapshot).configurations[0].routes[0].steps[0].key_ids[0] = "pk_bad_a"
    elif corruption is c.UNKNOWN_STRATEGY:
        _bad_account(snapshot).configurations[0].routes[0].steps[0].strategy = "random"
    elif corruption is c.DUPLICATE_ACCOUNT:
        _bad_account(snapshot, "zz_dup")
        _bad_account(snapshot, "zz_dup").access_keys[0].token_sha256 = token_hash(99, 0)
    elif corruption is c.UNKNOWN_CONFIGURATION:
        _bad_account(snapshot).access_keys[0].configuration_id = "cfg_missing"
    elif corruption is c.LIMIT_TOO_HIGH:
        _bad_account(snapshot).configurations[0].limits.concurrency = 100_001


@dataclass(frozen=True, slots=True)
class Publication:
    """One published revision: what goes on the wire, and whether it is valid by construction."""

    revision: Revision
    payload: bytes
    corruption: Corruption

    @property
    def valid(self) -> bool:
        return self.corruption is Corruption.NONE

    def __repr__(self) -> str:  # the payload holds provider key values
        return f"Publication(v{self.revision.version}, {self.corruption.name})"


def publication(state: StoreState, corruption: Corruption = Corruption.NONE) -> Publication:
    snapshot = compile_snapshot(state)
    if corruption is Corruption.VERSION_MISMATCH:
        snapshot.version += 1_000
    else:
        _mutate(snapshot, corruption)
    compiled = serialise(snapshot)
    payload, sha256 = compiled.payload, compiled.sha256
    if corruption is Corruption.WRONG_HASH:
        sha256 = hashlib.sha256(payload + b"tampered").hexdigest()
    elif corruption is Corruption.CORRUPT_WIRE:
        payload += b"\x08"  # a varint field with no value: truncated
        sha256 = hashlib.sha256(payload).hexdigest()
    return Publication(Revision(state.revision, sha256), payload, corruption)


def fresh_table(p: Publication) -> RoutingTable:
    """What a proxy must serve for a valid publication, built from scratch."""
    snapshot = spb.Snapshot()
    snapshot.ParseFromString(p.payload)
    assert validate(snapshot) == []
    assert hashlib.sha256(p.payload).hexdigest() == p.revision.sha256
    return build(snapshot, p.revision.sha256)


# Arbitrary snapshots from a small vocabulary, so that some validate and most do not.

_IDS = st.sampled_from(["", "openai", "anthropic", "acme", "x"])
_URLS = st.one_of(
    st.sampled_from(
        [
            "https://llm.example/v1",
            "http://127.0.0.1:8080/",
            "",
            "not a url",
            "ftp://files.example",
            "http://[",
            "https://[zz]/",
            "http://\u2100.example",
        ]
    ),
    st.text(max_size=12),
)
_TOKENS = st.sampled_from(["", "NOT-A-HASH", token_hash(0, 0), token_hash(0, 1), "A" * 64])


@st.composite
def _arbitrary_provider(draw: st.DrawFn) -> spb.SnapshotProvider:
    return spb.SnapshotProvider(
        id=draw(_IDS),
        base_url=draw(_URLS),
        formats=[
            spb.SnapshotFormat.ValueType(f) for f in draw(st.lists(st.integers(0, 3), max_size=2))
        ],
        auth_style=spb.SnapshotAuthStyle.ValueType(draw(st.integers(0, 3))),
        models=[
            spb.SnapshotModel(id=m, upstream_id=u)
            for m, u in draw(
                st.lists(
                    st.tuples(st.sampled_from(["m", "M", "gpt-4o"]), st.sampled_from(["", "u"])),
                    max_size=2,
                )
            )
        ],
    )


@st.composite
def _arbitrary_account(draw: st.DrawFn) -> spb.SnapshotAccount:
    account = spb.SnapshotAccount(id=draw(st.sampled_from(["", "a", "b"])))
    account.custom_providers.extend(draw(st.lists(_arbitrary_provider(), max_size=2)))
    key_ids = st.sampled_from(["", "k1", "k2"])
    for _ in range(draw(st.integers(0, 3))):
        account.provider_keys.add(
            id=draw(key_ids), provider_id=draw(_IDS), value=draw(st.sampled_from(["", "sk"]))
        )
    config_ids = st.sampled_from(["", "c1", "c2"])
    for _ in range(draw(st.integers(0, 2))):
        config = account.configurations.add(id=draw(config_ids))
        if draw(st.booleans()):
            config.providers.SetInParent()
        for _ in range(draw(st.integers(0, 2))):
            route = config.routes.add(
                provider_id=draw(_IDS), model=draw(st.sampled_from(["", "m"]))
            )
            for _ in range(draw(st.integers(0, 2))):
                route.steps.add(
                    strategy=draw(st.sampled_from(["ordered", "", "random"])),
                    key_ids=draw(st.lists(key_ids, max_size=2)),
                )
    for _ in range(draw(st.integers(0, 2))):
        account.access_keys.add(
            id="ak", token_sha256=draw(_TOKENS), configuration_id=draw(config_ids)
        )
    return account


Slot = tuple[Message, Any, int | None]
"""(owner, field descriptor, index into a repeated field or None)."""


def _slots(message: Message) -> list[Slot]:
    """Every field of every sub-message."""
    out: list[Slot] = []
    for fd in message.DESCRIPTOR.fields:
        value = getattr(message, fd.name)
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            children = (
                list(value) if fd.is_repeated else [value] if message.HasField(fd.name) else []
            )
            for child in children:
                out.extend(_slots(child))
        if fd.is_repeated:
            out.append((message, fd, None))
            out.extend((message, fd, i) for i in range(len(value)))
        elif fd.type != FieldDescriptor.TYPE_MESSAGE:
            out.append((message, fd, None))
    return out


def _strings(message: Message) -> set[str]:
    found: set[str] = set()
    for fd, value in message.ListFields():
        values = list(value) if fd.is_repeated else [value]
        for v in values:
            if fd.type == FieldDescriptor.TYPE_MESSAGE:
                found |= _strings(v)
            elif isinstance(v, str):
                found.add(v)
    return found


@st.composite
def mutated_snapshots(draw: st.DrawFn) -> spb.Snapshot:
    """A compiled snapshot with a few fields changed, elements dropped or repeated.

    Values are taken from elsewhere in the same snapshot as often as not, so the
    result is often still consistent and sometimes subtly not.
    """
    state = draw(store_states())
    snapshot = compile_snapshot(replace(state, revision=draw(st.integers(1, 9))))
    del snapshot.providers[draw(st.integers(1, len(snapshot.providers))) :]  # keep it small
    strings = st.sampled_from(sorted(_strings(snapshot))) | _URLS | _IDS
    signed = st.sampled_from([-1, 0, 1, 2, 3, 7])
    unsigned = st.sampled_from([0, 1, 2, 3, 7, 2**32 - 1])  # uint32 refuses -1 outright

    def values(fd: FieldDescriptor) -> st.SearchStrategy[Any]:
        if fd.type == FieldDescriptor.TYPE_STRING:
            return strings
        return unsigned if fd.type == FieldDescriptor.TYPE_UINT32 else signed

    for _ in range(draw(st.integers(1, 3))):
        owner, fd, index = draw(st.sampled_from(_slots(snapshot)))
        value = getattr(owner, fd.name)
        if fd.is_repeated and index is None:
            if fd.type == FieldDescriptor.TYPE_MESSAGE:
                if len(value) and draw(st.booleans()):
                    value.add().CopyFrom(value[draw(st.integers(0, len(value) - 1))])
                else:
                    value.add()
            else:
                value.append(draw(values(fd)))
        elif index is not None and (fd.type == FieldDescriptor.TYPE_MESSAGE or draw(st.booleans())):
            del value[index]
        elif index is not None:
            value[index] = draw(values(fd))
        else:
            setattr(owner, fd.name, draw(values(fd)))
    return snapshot


@st.composite
def arbitrary_snapshots(draw: st.DrawFn) -> spb.Snapshot:
    """Built from nothing; see `mutated_snapshots` for near misses."""
    snapshot = spb.Snapshot(
        schema_version=draw(st.sampled_from([1, 1, 1, 0, 2])),
        version=draw(st.sampled_from([1, 5, 0, -1])),
    )
    snapshot.providers.extend(draw(st.lists(_arbitrary_provider(), max_size=3)))
    snapshot.accounts.extend(draw(st.lists(_arbitrary_account(), max_size=2)))
    return snapshot


# ---------------------------------------------------------------------------
# The two ends of a stream
# ---------------------------------------------------------------------------


def response(send: Send, p: Publication) -> pb.StreamSnapshotsResponse:
    """What the servicer writes for `send` (as `discovery._response` does)."""
    out = pb.StreamSnapshotsResponse(nonce=send.nonce)
    if send.reply is Reply.CURRENT:
        out.current.CopyFrom(pb.Current(version=send.revision.version, hash=send.revision.sha256))
    else:
        out.update.CopyFrom(
            pb.SnapshotUpdate(
                version=p.revision.version, hash=p.revision.sha256, snapshot=p.payload
            )
        )
    return out


class Proxy:
    """`SnapshotClient` with its stream and clock taken away: the same `decide`, and
    what carrying a decision out leaves behind (the served table, the cached copy)."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.table: RoutingTable | None = None
        self.cache: tuple[int, str, bytes] | None = None
        """The last-known-good copy, written after every successful apply."""

    @property
    def applied(self) -> Revision | None:
        return Revision(self.table.version, self.table.sha256) if self.table else None

    def hello(self) -> pb.StreamSnapshotsRequest:
        table = self.table
        return pb.StreamSnapshotsRequest(
            hello=pb.Hello(
                node_id=self.node_id,
                applied_version=table.version if table else 0,
                applied_hash=table.sha256 if table else "",
            )
        )

    def handle(self, message: pb.StreamSnapshotsResponse) -> pb.StreamSnapshotsRequest | None:
        # The real client's decision, table reused where accounts did not change; the
        # checks below compare the result with a build from scratch.
        decision = decide(message, self.table)
        if isinstance(decision, Swap):
            self.table = decision.table  # the one reference requests read
            self.cache = (decision.version, decision.sha256, decision.payload)
        return decision.reply

    def restart(self, cache_intact: bool) -> None:
        """A new process: only the cached copy survives, through the same `apply`."""
        self.table = None
        if self.cache is None:
            return
        version, sha256, payload = self.cache
        if not cache_intact:
            payload = payload[: len(payload) // 2]
        result = apply(version, sha256, payload)
        if isinstance(result, Applied):
            self.table = result.table


@dataclass
class Connection:
    """One stream: the real StreamState plus what the model knows independently of it."""

    stream: StreamState
    hello_applied: Revision | None
    down: deque[bytes] = field(default_factory=deque)
    """Control plane -> proxy, serialised StreamSnapshotsResponse."""
    up: deque[bytes] = field(default_factory=deque)
    """Proxy -> control plane, serialised StreamSnapshotsRequest."""
    sent: list[Send] = field(default_factory=list)
    nacked: set[Revision] = field(default_factory=set)


# ---------------------------------------------------------------------------
# The simulation
# ---------------------------------------------------------------------------


class Simulation:
    def __init__(self, proxies: int) -> None:
        self.publications: list[Publication] = []
        self._by_revision: dict[Revision, Publication] = {}
        self.proxies = [Proxy(f"proxy-{i}") for i in range(proxies)]
        self.connections: list[Connection | None] = [None] * proxies
        self.status: dict[str, NodeStatus] = {}
        """The control plane's status rows, kept as `StatusBook` keeps them."""
        self.newest_valid_received: list[Revision | None] = [None] * proxies
        """Per proxy process: the newest valid snapshot that reached it."""
        self._served: list[list[Revision]] = [[] for _ in range(proxies)]

    @property
    def latest(self) -> Publication | None:
        return self.publications[-1] if self.publications else None

    # Control plane -----------------------------------------------------------

    def publish(self, state: StoreState, corruption: Corruption, gap: int = 1) -> Publication:
        """A new store revision; streams only ever see the newest (latest-wins)."""
        previous = self.latest.revision.version if self.latest else 0
        p = publication(replace(state, revision=previous + gap), corruption)
        self.publications.append(p)
        self._by_revision[p.revision] = p
        return p

    def connect(self, i: int, reconnect: bool = True) -> None:
        """The proxy (re)opens its stream and says Hello; a no-op if open and not `reconnect`."""
        if self.connections[i] is not None and not reconnect:
            return
        self.drop(i)
        raw = self.proxies[i].hello().SerializeToString()
        hello = pb.StreamSnapshotsRequest.FromString(raw).hello
        applied = (
            Revision(hello.applied_version, hello.applied_hash) if hello.applied_version else None
        )
        assert applied == self.proxies[i].applied
        self.connections[i] = Connection(StreamState(applied), applied)
        previous = self.status.get(hello.node_id)
        self.status[hello.node_id] = NodeStatus(
            node_id=hello.node_id,
            pool="default",
            build_version="dev",
            connected=True,
            connect_time_us=0,
            last_seen_us=0,
            applied=applied,
            rejection=previous.rejection if previous else None,
        )

    def drop(self, i: int) -> None:
        """The connection breaks: whatever is still queued either way is lost."""
        if self.connections[i] is not None:
            self.connections[i] = None
            node = self.proxies[i].node_id
            self.status[node] = replace(self.status[node], connected=False)

    def poll(self, i: int) -> None:
        """The servicer's loop wakes up and asks the stream what to send."""
        conn = self.connections[i]
        if conn is None:
            return
        stream = conn.stream
        latest = self.latest.revision if self.latest else None
        applied, already_sent = stream.applied, {s.revision for s in conn.sent}
        send = stream.next_send(latest)
        assert stream.applied == applied, "next_send changed the applied revision"
        if send is None:
            # Liveness: silence only when there is nothing new for this stream.
            assert latest is None or latest in already_sent or latest in conn.nacked
            return
        assert send.revision == latest
        assert send.revision not in already_sent, "resent a revision on the same stream"
        assert send.revision not in conn.nacked, "resent a revision the proxy NACKed"
        assert send.nonce not in {s.nonce for s in conn.sent}
        assert stream.in_flight == send
        if not conn.sent:  # the answer to the Hello
            expected = Reply.CURRENT if latest == conn.hello_applied else Reply.UPDATE
            assert send.reply is expected
        else:
            assert send.reply is Reply.UPDATE
            assert send.revision != stream.applied
        conn.sent.append(send)
        conn.down.append(response(send, self._by_revision[send.revision]).SerializeToString())
        node = self.proxies[i].node_id
        self.status[node] = replace(self.status[node], sent_version=send.revision.version)

    def deliver_up(self, i: int, duplicate: bool = False) -> None:
        """The control plane reads the proxy's next message (twice, if duplicated)."""
        conn = self.connections[i]
        if conn is None or not conn.up:
            return
        raw = conn.up[0] if duplicate else conn.up.popleft()
        message = pb.StreamSnapshotsRequest.FromString(raw)
        stream, node = conn.stream, self.proxies[i].node_id
        in_flight, applied, rejected = stream.in_flight, stream.applied, set(stream.rejected)
        kind = message.WhichOneof("message")
        assert kind in ("ack", "nack"), kind
        current = in_flight is not None and in_flight.nonce == getattr(message, kind).nonce
        if kind == "ack":
            ack = message.ack
            accepted = stream.on_ack(ack.nonce, Revision(ack.version, ack.hash))
            assert accepted == current, "an ACK was judged on something other than its nonce"
            if accepted:
                assert in_flight is not None
                assert stream.applied == in_flight.revision == Revision(ack.version, ack.hash)
                assert applied is None or stream.applied.version >= applied.version
                self.status[node] = replace(self.status[node], applied=stream.applied)
            else:
                assert stream.applied == applied, "a superseded ACK moved the applied revision"
            assert stream.rejected == rejected
        else:
            assert kind == "nack"
            accepted = stream.on_nack(message.nack.nonce, message.nack.message)
            assert accepted == current, "a NACK was judged on something other than its nonce"
            assert stream.applied == applied, "a NACK moved the applied revision"
            if accepted:
                assert in_flight is not None
                assert stream.last_rejection is not None
                assert stream.last_rejection.revision == in_flight.revision
                assert message.nack.version == in_flight.revision.version
                conn.nacked.add(in_flight.revision)
                self.status[node] = replace(self.status[node], rejection=stream.last_rejection)
            else:
                assert stream.rejected == rejected, "a superseded NACK was recorded"
        assert stream.rejected == conn.nacked

    # Proxy -------------------------------------------------------------------

    def deliver_down(self, i: int, duplicate: bool = False) -> None:
        """The proxy reads the control plane's next message (twice, if duplicated)."""
        conn = self.connections[i]
        if conn is None or not conn.down:
            return
        raw = conn.down[0] if duplicate else conn.down.popleft()
        message = pb.StreamSnapshotsResponse.FromString(raw)
        proxy = self.proxies[i]
        before = proxy.table
        reply = proxy.handle(message)
        if message.WhichOneof("message") == "current":
            assert reply is None
            assert proxy.table is before
            assert Revision(message.current.version, message.current.hash) == proxy.applied
        else:
            update = message.update
            p = self._by_revision[Revision(update.version, update.hash)]
            assert update.snapshot == p.payload
            if p.valid:
                assert reply is not None
                assert reply.WhichOneof("message") == "ack", p
                assert proxy.applied == p.revision
                self.newest_valid_received[i] = p.revision
                self._served[i].append(p.revision)
            else:
                assert reply is not None
                assert reply.WhichOneof("message") == "nack", p
                assert proxy.table is before, "a rejected snapshot touched the served table"
                self._check_nack(reply.nack)
        if reply is not None:
            conn.up.append(reply.SerializeToString())

    @staticmethod
    def _check_nack(nack: pb.Nack) -> None:
        # A NACK names fields and ids; it must never echo a provider key value.
        assert nack.message
        texts = [nack.message, *(f"{v.field} {v.description}" for v in nack.violations)]
        assert not any(SECRET_PREFIX in t for t in texts), texts

    def restart(self, i: int, cache_intact: bool) -> None:
        """The proxy process restarts from its last-known-good copy (or from nothing)."""
        self.drop(i)
        self.proxies[i].restart(cache_intact)
        restored = self.proxies[i].applied
        self.newest_valid_received[i] = restored
        self._served[i] = [] if restored is None else [restored]

    # Checks ------------------------------------------------------------------

    def check_invariants(self) -> None:
        for i, proxy in enumerate(self.proxies):
            # Safety: nothing, or a complete table of a valid publication whose hash matches.
            if proxy.table is not None:
                p = self._by_revision[proxy.applied]  # type: ignore[index]
                assert p.valid, f"{proxy.node_id} serves {p!r}"
                assert proxy.table == fresh_table(p), "served table differs from a fresh build"
            # The proxy serves the newest valid snapshot that reached it, and never goes back.
            assert proxy.applied == self.newest_valid_received[i]
            versions = [r.version for r in self._served[i]]
            assert versions == sorted(versions), f"{proxy.node_id} went back: {versions}"
            conn = self.connections[i]
            if conn is not None:
                stream = conn.stream
                # The control plane only believes what the proxy reported or acknowledged.
                assert stream.applied in (conn.hello_applied, *self._served[i])
                assert stream.rejected == conn.nacked
                assert all(not self._by_revision[r].valid for r in stream.rejected)
                assert self.status[proxy.node_id].applied == stream.applied

    def settle(self, rounds: int = 5) -> None:
        """The network behaves from now on: one clean connection per proxy, all delivered."""
        for i in range(len(self.proxies)):
            if self.connections[i] is None:
                self.connect(i)
            conn = self.connections[i]
            assert conn is not None
            for _ in range(rounds):
                sent = len(conn.sent)
                self.poll(i)
                if len(conn.sent) == sent and not conn.down and not conn.up:
                    break
                while conn.down or conn.up:
                    self.deliver_down(i)
                    self.deliver_up(i)
                    self.check_invariants()
            else:
                raise AssertionError(f"proxy-{i}: the stream did not go quiet")

    def check_converged(self) -> None:
        latest = self.latest
        for i, proxy in enumerate(self.proxies):
            conn = self.connections[i]
            assert conn is not None
            assert not conn.down
            assert not conn.up
            node = self.status[proxy.node_id]
            if latest is None:
                assert proxy.table is None
                assert conn.sent == []
            elif latest.valid:
                assert proxy.applied == latest.revision
                assert conn.stream.applied == latest.revision
                assert state(node, latest.revision) is State.IN_SYNC
            else:
                # Keeps what it had; the control plane knows why and stops offering it.
                assert proxy.applied != latest.revision
                assert proxy.applied == self.newest_valid_received[i]
                assert latest.revision in conn.stream.rejected
                assert conn.stream.last_rejection is not None
                assert conn.stream.last_rejection.revision == latest.revision
                assert node.rejection == conn.stream.last_rejection
                assert state(node, latest.revision) is State.REJECTED
                assert conn.stream.next_send(latest.revision) is None


# ---------------------------------------------------------------------------
# Actions, for a list-of-actions strategy
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    proxy: int = 0
    flag: bool = False
    state: StoreState | None = None
    corruption: Corruption = Corruption.NONE
    gap: int = 1

    def __repr__(self) -> str:
        if self.name == "publish":
            wake = ", wake all" if self.flag else ""
            return f"publish({self.corruption.name}, +{self.gap}{wake})"
        return f"{self.name}({self.proxy}{', dup' if self.flag else ''})"

    def run(self, sim: Simulation) -> None:
        steps: dict[str, Callable[[], None]] = {
            "connect": lambda: sim.connect(self.proxy, reconnect=False),
            "drop": lambda: sim.drop(self.proxy),
            "poll": lambda: sim.poll(self.proxy),
            "down": lambda: sim.deliver_down(self.proxy, self.flag),
            "up": lambda: sim.deliver_up(self.proxy, self.flag),
            "restart": lambda: sim.restart(self.proxy, self.flag),
        }
        if self.name == "publish":
            assert self.state is not None
            sim.publish(self.state, self.corruption, self.gap)
            if self.flag:  # every servicer loop wakes on the publish before anything else
                for i in range(len(sim.proxies)):
                    sim.poll(i)
        else:
            steps[self.name]()


def actions(proxies: int) -> st.SearchStrategy[Action]:
    index = st.integers(0, proxies - 1)
    rare = st.sampled_from([False, False, False, True])
    corruption = st.one_of(st.just(Corruption.NONE), st.sampled_from(INVALID))

    def simple(name: str, flag: st.SearchStrategy[bool] | None = None) -> st.SearchStrategy[Action]:
        return st.builds(Action, st.just(name), index, st.just(False) if flag is None else flag)

    publish = st.builds(
        Action,
        st.just("publish"),
        flag=st.booleans(),
        state=store_states(),
        corruption=corruption,
        gap=st.integers(1, 3),
    )
    return st.one_of(
        publish,
        publish,
        simple("connect"),
        simple("drop"),
        simple("poll"),
        simple("poll"),
        simple("poll"),
        simple("down", rare),
        simple("down", rare),
        simple("down", rare),
        simple("up", rare),
        simple("up", rare),
        simple("up", rare),
        simple("restart", st.booleans()),
    )
