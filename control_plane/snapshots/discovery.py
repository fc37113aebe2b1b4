"""DataPlaneDiscoveryService: one bidirectional stream per proxy.

A thin shell: `StreamState` decides what to send, `Publisher` provides the
latest snapshot, `StatusBook` records what each proxy runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from keyway.v1 import discovery_pb2 as pb
from keyway.v1 import discovery_pb2_grpc

from control_plane.api.auth import bearer_token
from control_plane.api.errors import to_status
from control_plane.domain import catalog, tokens
from control_plane.domain.errors import InvalidArgument, Unauthenticated, Unavailable
from control_plane.domain.pricing import Prices
from control_plane.store.port import Store, call
from control_plane.store.records import AccessKeyUsage, KeyUsage

from .publisher import Published, Publisher, Subscription
from .status import REJECTION_MESSAGE_MAX, StatusBook
from .stream import Reply, Revision, Send, StreamState
from .usage_ingest import attempts_of, key_usage

log = logging.getLogger("keyway.control_plane.discovery")

Context = grpc.aio.ServicerContext[pb.StreamSnapshotsRequest, pb.StreamSnapshotsResponse]


# Hello fields end up in status rows, logs and the admin API: short printable text only.
_HELLO_LIMITS = (("node_id", 255, True), ("pool", 64, False), ("build_version", 128, False))


def hello_problem(hello: pb.Hello) -> str | None:
    """Why a Hello cannot be accepted (naming the field), or None."""
    for name, limit, required in _HELLO_LIMITS:
        value: str = getattr(hello, name)
        if required and not value:
            return f"hello.{name}: is required"
        if len(value) > limit:
            return f"hello.{name}: must be at most {limit} characters"
        if not value.isprintable() or any(c.isspace() for c in value):
            return f"hello.{name}: must be printable characters without spaces"
    return None


def _response(send: Send, published: Published) -> pb.StreamSnapshotsResponse:
    response = pb.StreamSnapshotsResponse(nonce=send.nonce)
    if send.reply is Reply.CURRENT:
        response.current.CopyFrom(
            pb.Current(version=send.revision.version, hash=send.revision.sha256)
        )
    else:
        generated = Timestamp()
        generated.FromMicroseconds(published.generate_time_us)
        response.update.CopyFrom(
            pb.SnapshotUpdate(
                version=published.compiled.version,
                hash=published.compiled.sha256,
                generate_time=generated,
                snapshot=published.compiled.payload,
            )
        )
    return response


class _OpenStream:
    """One open stream: its wake-up slot, and whether its credential was revoked."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self.revoked = False


class DiscoveryServicer(discovery_pb2_grpc.DataPlaneDiscoveryServiceServicer):
    def __init__(
        self,
        store: Store,
        publisher: Publisher,
        status: StatusBook,
        prices: Prices = catalog.PRICES,
    ) -> None:
        self._store = store
        self._prices = prices
        self.ingested = 0
        """Attempt records stored (a retried batch counts once)."""
        self.dropped_by_proxy: dict[str, int] = {}
        """Records each proxy says it dropped because its buffer was full."""
        self._publisher = publisher
        self._status = status
        self._streams: dict[str, set[_OpenStream]] = {}

    def revoke(self, credential_id: str) -> None:
        """Closes every stream opened with a credential that was just deleted."""
        # Cancelling the handler's task would end it without sending a status, leaving
        # the proxy's stream open: wake the handler instead, and let it abort.
        for stream in self._streams.pop(credential_id, set()):
            stream.revoked = True
            stream.subscription.wake()

    async def ReportUsage(
        self,
        request: pb.ReportUsageRequest,
        context: grpc.aio.ServicerContext[pb.ReportUsageRequest, pb.ReportUsageResponse],
    ) -> pb.ReportUsageResponse:
        try:
            await self._authenticate(context)
            await self._record(request)
        except (Unauthenticated, Unavailable, InvalidArgument) as error:
            await context.abort(to_status(error)[0], error.message)
        return pb.ReportUsageResponse()

    async def _record(self, request: pb.ReportUsageRequest) -> None:
        def micros(ts: Timestamp, present: bool) -> int | None:
            return ts.ToMicroseconds() if present else None

        attempts = attempts_of(request, self._prices)
        keys, access = key_usage(attempts)
        # Proxies before attempt records reported keys directly; still honoured.
        keys += [
            KeyUsage(
                u.provider_key_id,
                micros(u.last_used_time, u.HasField("last_used_time")),
                u.last_error_status,
                u.last_error_reason,
                micros(u.last_error_time, u.HasField("last_error_time")),
                micros(u.last_success_time, u.HasField("last_success_time")),
            )
            for u in request.provider_keys
        ]
        access += [
            AccessKeyUsage(u.access_key_id, u.last_used_time.ToMicroseconds())
            for u in request.access_keys
        ]
        fresh = await call(
            self._store,
            self._store.usage.ingest,
            request.batch_id,
            request.node_id,
            attempts,
            keys,
            access,
        )
        if fresh:
            self.ingested += len(attempts)
        self.dropped_by_proxy[request.node_id[:255]] = request.dropped_records

    async def _authenticate(self, context: Any) -> str:
        token = bearer_token(context.invocation_metadata())
        found = None
        if tokens.is_well_formed(token, tokens.TokenKind.DATA_PLANE):
            found = await call(self._store, self._store.authenticate, token)
        if found is None or found.kind is not tokens.TokenKind.DATA_PLANE:
            raise Unauthenticated("unknown, revoked or malformed data-plane token")
        return found.id

    async def StreamSnapshots(  # type: ignore[override]
        self, request_iterator: Any, context: Context
    ) -> None:
        try:
            credential_id = await self._authenticate(context)
        except (Unauthenticated, Unavailable) as error:
            # The database down: UNAVAILABLE, and the proxy tries again (or another replica).
            await context.abort(to_status(error)[0], error.message)
        stream = _OpenStream(self._publisher.subscribe())
        self._streams.setdefault(credential_id, set()).add(stream)
        try:
            # Checked again once registered: a credential deleted while the first check was
            # in flight is caught here, or its revocation finds this stream.
            try:
                await self._authenticate(context)
            except Unauthenticated:
                stream.revoked = True
            except Unavailable:
                pass  # checked a moment ago; a revocation still finds this stream
            await self._serve(context, stream)
        finally:
            self._publisher.unsubscribe(stream.subscription)
            self._streams.get(credential_id, set()).discard(stream)

    async def _serve(self, context: Context, stream: _OpenStream) -> None:
        first = await context.read()
        if (
            not isinstance(first, pb.StreamSnapshotsRequest)
            or first.WhichOneof("message") != "hello"
        ):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "the first message must be a Hello"
            )
        hello = first.hello
        problem = hello_problem(hello)
        if problem is not None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        applied = (
            Revision(hello.applied_version, hello.applied_hash) if hello.applied_version else None
        )
        generation = self._status.connected(
            hello.node_id, hello.pool or "default", hello.build_version, applied
        )
        log.info("proxy %s connected (applied version %d)", hello.node_id, hello.applied_version)
        state = StreamState(applied)
        previous = self._status.rejection(hello.node_id)
        if previous is not None:
            # A reconnect is not a reason to offer the same bad snapshot again.
            state.rejected.add(previous.revision)
        reader = asyncio.create_task(self._read(context, state, hello.node_id))
        waiter: asyncio.Task[None] | None = None
        try:
            while not reader.done():
                if stream.revoked:
                    await context.abort(
                        grpc.StatusCode.UNAUTHENTICATED, "the data-plane credential was revoked"
                    )
                published = self._publisher.latest
                send = state.next_send(published.revision if published else None)
                if send is not None and published is not None:
                    await context.write(_response(send, published))
                    self._status.sent(hello.node_id, send.revision.version)
                waiter = asyncio.create_task(stream.subscription.wait())
                await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
        finally:
            if waiter is not None:
                # Also when this handler is cancelled mid-wait: a waiter left pending
                # would never finish once the subscription is gone.
                waiter.cancel()
            reader.cancel()
            try:
                # After an abort the pending read fails with AbortError, not CancelledError.
                with contextlib.suppress(asyncio.CancelledError, grpc.aio.AbortError):
                    await reader
            finally:
                self._status.disconnected(hello.node_id, generation)
                log.info("proxy %s disconnected", hello.node_id)

    async def _read(self, context: Context, state: StreamState, node_id: str) -> None:
        while True:
            message = await context.read()
            if not isinstance(message, pb.StreamSnapshotsRequest):
                return  # EOF: the proxy closed its side
            kind = message.WhichOneof("message")
            if kind == "ack":
                ack = message.ack
                if state.on_ack(ack.nonce, Revision(ack.version, ack.hash)):
                    self._status.acked(node_id, Revision(ack.version, ack.hash))
            elif kind == "nack":
                nack = message.nack
                text = nack.message[:REJECTION_MESSAGE_MAX]
                if state.on_nack(nack.nonce, text) and state.last_rejection:
                    self._status.rejected(node_id, state.last_rejection)
                    log.warning("proxy %s rejected snapshot %d: %s", node_id, nack.version, text)
