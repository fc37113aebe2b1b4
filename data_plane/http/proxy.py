"""One model call: authenticate, resolve, fail over, relay.

A raw ASGI endpoint: the hot path reads the routing table once, does dict
lookups, and hands bytes between the client and aiohttp without building
request or response objects.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from data_plane.formats import ApiFormat
from data_plane.routing.admission import Admission, AdmissionLimits, Refusal, Ticket
from data_plane.routing.cooldowns import Cooldowns
from data_plane.routing.engine import Attempt, Decision, Exhausted, Failover, Wait, attributed
from data_plane.routing.outcome import Outcome, OutcomeKind, classify
from data_plane.routing.policy import FailoverPolicy
from data_plane.routing.table import Caller, Provider, RoutingTable
from data_plane.shared.tokens import ACCESS_PREFIX, is_well_formed, token_sha256
from data_plane.state import ProxyState
from data_plane.upstream.client import Opened, Upstream, outcome_of
from data_plane.usage import UsageRecorder

from .body import RequestFields, needs_worker, read_fields, rewrite
from .errors import KeywayError, envelope
from .headers import CORS, forwarded, forwarded_query, new_request_id, relayed, with_credentials
from .resolve import Resolution, resolve
from .sse import EventFramer, stream_error_event
from .surfaces import Surface

log = logging.getLogger("keyway.data_plane.proxy")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = (b"content-type", b"application/json")
T = TypeVar("T")

MAX_BODY_BYTES = 64 * 1024 * 1024
"""Room for OpenAI's largest vision request (50 MB of images, base64-encoded) and
Anthropic's 32 MB request limit."""


def _body_worker() -> Executor:
    # One thread: a large body is scanned off the event loop, but scans hold the GIL in
    # short slices, so a second one in parallel would only slow the loop down further.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="keyway-body")


@dataclass(frozen=True, slots=True)
class ProxyOptions:
    policy: FailoverPolicy = field(default_factory=FailoverPolicy)
    stream_idle_timeout: float = 60.0
    """Seconds without a byte from upstream before a started stream is ended."""
    max_body_bytes: int = MAX_BODY_BYTES
    forward_organization: bool = False
    admission: AdmissionLimits = field(default_factory=AdmissionLimits)
    max_stream_duration: float = 1800.0
    """Seconds a response may take to relay, once started (a stream trickling a byte a
    minute would otherwise hold its connections for ever)."""

    def __post_init__(self) -> None:
        for name in ("stream_idle_timeout", "max_stream_duration"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.max_body_bytes < 1:
            raise ValueError("max_body_bytes must be at least 1")


def loop_clock() -> float:
    """The event loop's clock: the one its timers, and so upstream timeouts, run on."""
    return asyncio.get_running_loop().time()


@dataclass(slots=True)
class Gateway:
    """What every request shares within one proxy process."""

    state: ProxyState
    upstream: Upstream
    usage: UsageRecorder
    options: ProxyOptions = field(default_factory=ProxyOptions)
    cooldowns: Cooldowns = field(default_factory=Cooldowns)
    clock: Callable[[], float] = loop_clock
    wall: Callable[[], float] = time.time
    body_worker: Executor = field(default_factory=_body_worker)
    """Where bodies too large to scan on the event loop are read and rewritten."""
    admission: Admission = field(init=False)

    def __post_init__(self) -> None:
        self.admission = Admission(self.options.admission)

    async def off_loop(self, body: bytes, work: Callable[..., T], *args: Any) -> T:
        """`work(body, *args)` on the body worker (for bodies that `needs_worker`)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.body_worker, work, body, *args)


class ClientGoneError(Exception):
    """The client disconnected; nothing more can be sent."""


_TOO_LONG = "ran too long"


class _UpstreamBrokeError(Exception):
    """The upstream broke or stalled after the response had started."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def presented_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer":
                return token.strip().decode("latin-1")
        elif name == b"x-api-key":
            return value.strip().decode("latin-1")
    return None


def serving(state: ProxyState, now: float) -> RoutingTable | None:
    """The table requests may use: none once `--max-snapshot-age` has passed unconfirmed,
    since revocations made since then may be missing from it."""
    if state.expired(now):
        raise KeywayError(
            "snapshot_expired",
            f"the routing snapshot has not been confirmed for {state.stale_seconds(now):.0f} s "
            f"(more than --max-snapshot-age {state.max_age:g} s)",
        )
    return state.table


def authenticate(table: RoutingTable | None, headers: list[tuple[bytes, bytes]]) -> Caller:
    if table is None:
        raise KeywayError("not_ready", "the proxy has not loaded a routing snapshot yet")
    token = presented_token(headers)
    if not token:
        raise KeywayError("missing_access_key", "no access key: send Authorization: Bearer <key>")
    if not is_well_formed(token, ACCESS_PREFIX):
        raise KeywayError("malformed_access_key", "the access key is malformed")
    caller = table.callers.get(token_sha256(token))
    if caller is None:
        raise KeywayError("invalid_access_key", "the access key is unknown or revoked")
    if caller.disabled:
        raise KeywayError(
            "access_key_disabled",
            f"the access key {caller.access_key_id} is disabled; an admin can enable it again "
            f"(keyway admin access-keys enable {caller.access_key_id})",
        )
    return caller


async def send_error(
    send: Send, error: KeywayError, fmt: ApiFormat, headers: list[tuple[bytes, bytes]]
) -> None:
    body = envelope(error, fmt)
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [*headers, _JSON, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _too_large(limit: int) -> KeywayError:
    return KeywayError("request_too_large", f"request body is over {limit} bytes")


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def _read_body(receive: Receive, headers: list[tuple[bytes, bytes]], limit: int) -> bytes:
    declared = _declared_length(headers)
    if declared is not None and declared > limit:
        raise _too_large(limit)  # before buffering a byte of it
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _retry_after(seconds: float) -> tuple[bytes, bytes]:
    return (b"retry-after", str(max(1, math.ceil(seconds))).encode())


def _exhausted_error(result: Exhausted) -> tuple[KeywayError, list[tuple[bytes, bytes]]]:
    attempts = [
        {
            "provider": a.provider,
            "model": a.model,
            "provider_key_id": a.key_id,
            "status": a.status,
            "reason": a.reason,
        }
        for a in result.attempts
    ]
    error = KeywayError(result.code, result.message, None, {"attempts": attempts})
    extra = [] if result.retry_after is None else [_retry_after(result.retry_after)]
    return error, extra


def _log_failed(
    request_id: str, attempt: Attempt, outcome: Outcome, then: Attempt | Wait | Exhausted
) -> None:
    if isinstance(then, Attempt):
        after = f"failing over to {then.candidate.provider} key {then.key_id}"
    elif isinstance(then, Wait):
        after = f"waiting {then.seconds:.3g}s for a rate limit to reset"
    else:
        after = f"nothing left to try ({then.code})"
    status = f"{outcome.status} " if outcome.status else ""
    log.info(
        "%s: %s key %s -> %s%s; %s",
        request_id,
        attempt.candidate.provider,
        attempt.key_id,
        status,
        outcome.reason,
        after,
    )


class ModelCall:
    """The ASGI endpoint for one surface."""

    def __init__(self, surface: Surface, gateway: Gateway) -> None:
        self.surface = surface
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = new_request_id()
        out: list[tuple[bytes, bytes]] = [(b"x-keyway-request-id", request_id.encode()), *CORS]
        task = asyncio.current_task()
        assert task is not None
        watcher: asyncio.Task[None] | None = None
        ticket: Ticket | None = None
        gone = False

        async def watch() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            gone = True
            task.cancel()

        g = self.gateway
        try:
            # The state's clock is time.monotonic, like the snapshot client that updates it.
            caller = authenticate(serving(g.state, time.monotonic()), scope["headers"])
            admitted = g.admission.admit(
                caller.access_key_id,
                caller.account.id,
                g.clock(),
                concurrency=caller.policy.concurrency,
                requests_per_minute=caller.policy.requests_per_minute,
            )
            if isinstance(admitted, Refusal):
                error = KeywayError(admitted.code, admitted.message)
                await send_error(
                    send, error, self.surface.format, [*out, _retry_after(admitted.retry_after)]
                )
                return
            ticket = admitted
            body = await _read_body(receive, scope["headers"], g.options.max_body_bytes)
            watcher = asyncio.create_task(watch())
            fields = (
                await g.off_loop(body, read_fields) if needs_worker(body) else read_fields(body)
            )
            resolution = resolve(caller, (fields.model, *fields.fallbacks), self.surface.format)
            if resolution.rejected:
                out.append((b"x-keyway-rejected-models", ", ".join(resolution.rejected).encode()))
            g.usage.access_key(caller.access_key_id, g.wall())
            await self._fail_over(scope, send, caller, body, fields, resolution, out, request_id)
        except KeywayError as error:
            await send_error(send, error, self.surface.format, out)
        except ClientGoneError:
            pass
        except asyncio.CancelledError:
            if not gone:
                raise
            # The client left: upstream work was cancelled with this task.
            task.uncancel()
        finally:
            if watcher is not None:
                watcher.cancel()
            if ticket is not None:
                g.admission.release(ticket)

    async def _fail_over(
        self,
        scope: Scope,
        send: Send,
        caller: Caller,
        body: bytes,
        fields: RequestFields,
        resolution: Resolution,
        out: list[tuple[bytes, bytes]],
        request_id: str,
    ) -> None:
        g = self.gateway
        engine = Failover(resolution.candidates, g.options.policy, g.cooldowns, g.clock())
        suffix = self.surface.upstream_suffix + forwarded_query(
            scope.get("query_string", b""), self.surface.query
        )
        # The same for every attempt: computed once per request, not per key.
        client_headers = forwarded(scope["headers"], g.options.forward_organization)
        # One rewritten body at a time, reused while attempts stay on its upstream model:
        # memory stays at twice the body however many fallbacks there are.
        payload_model: str | None = None
        payload = body
        tries = 0
        failed: tuple[Attempt, Outcome] | None = None
        while True:
            step = engine.next_attempt(g.clock())
            if failed is not None:
                # Logged once the next step is known: "failing over" only if there is one.
                _log_failed(request_id, *failed, step)
                failed = None
            if isinstance(step, Wait):
                await asyncio.sleep(step.seconds)
                continue
            if isinstance(step, Exhausted):
                error, extra = _exhausted_error(step)
                if tries:
                    out.append((b"x-keyway-attempts", str(tries).encode()))
                await send_error(send, error, self.surface.format, [*out, *extra])
                return
            tries += 1
            upstream_model = step.candidate.upstream_model
            if upstream_model != payload_model:
                payload = (
                    await g.off_loop(body, rewrite, upstream_model, fields)
                    if needs_worker(body)
                    else rewrite(body, upstream_model, fields)
                )
                payload_model = upstream_model
            provider = caller.account.providers[step.candidate.provider]
            headers = with_credentials(client_headers, provider, caller.account.keys[step.key_id])
            opened, first, outcome = await self._attempt(step, provider, headers, payload, suffix)
            outcome = attributed(step, outcome)
            decision = engine.record(step, outcome, g.clock())
            g.usage.provider_key(step.key_id, outcome, g.wall())
            if decision is Decision.CONTINUE:
                if opened is not None:
                    # Pooled again when its (small) error body is complete.
                    opened.release()
                failed = step, outcome
                continue
            assert opened is not None
            out.append((b"x-keyway-attempts", str(tries).encode()))
            if decision is Decision.SERVE:
                out += [
                    (b"x-keyway-provider", step.candidate.provider.encode()),
                    (b"x-keyway-model", step.candidate.upstream_model.encode()),
                    (b"x-keyway-provider-key-id", step.key_id.encode()),
                ]
            await self._relay(send, opened, first, out, request_id)
            return

    async def _attempt(
        self,
        step: Attempt,
        provider: Provider,
        headers: dict[str, str],
        payload: bytes,
        suffix: str,
    ) -> tuple[Opened | None, bytes, Outcome]:
        started = self.gateway.clock()
        opened = await self.gateway.upstream.open(
            provider.base_url + suffix,
            headers,
            payload,
            step.timeout,
            public_only=provider.public_only,
        )
        if isinstance(opened, Outcome):
            return None, b"", opened
        outcome = classify(opened.status, opened.headers, self.gateway.wall())
        if outcome.kind is not OutcomeKind.SUCCESS:
            return opened, b"", outcome
        # Commit to this upstream only once it has produced its first byte:
        # until then another key can still take over invisibly.
        remaining = max(0.001, step.timeout - (self.gateway.clock() - started))
        try:
            first = await opened.next_chunk(remaining)
        except asyncio.CancelledError:
            # The client left while the provider was thinking: stop it now.
            opened.close()
            raise
        except Exception as error:  # mapped by the upstream module's table
            opened.close()
            return None, b"", outcome_of(error)
        return opened, first, outcome

    async def _pull(self, opened: Opened, deadline: float) -> bytes:
        g = self.gateway
        left = deadline - g.clock()
        if left <= 0:
            raise _UpstreamBrokeError(_TOO_LONG)
        try:
            return await opened.next_chunk(min(g.options.stream_idle_timeout, left))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if not isinstance(error, TimeoutError):
                raise _UpstreamBrokeError("broke") from error
            too_long = g.clock() >= deadline - 1e-3  # the timer may fire a hair early
            raise _UpstreamBrokeError(_TOO_LONG if too_long else "stalled") from error

    async def _relay(
        self,
        send: Send,
        opened: Opened,
        first: bytes,
        out: list[tuple[bytes, bytes]],
        request_id: str,
    ) -> None:
        headers = relayed(opened.raw_headers)
        is_sse = opened.headers.get("content-type", "").startswith("text/event-stream")
        # SSE is relayed on event boundaries, so that if the upstream breaks
        # mid-event the client gets a clean error event, not half an event.
        framer = EventFramer() if is_sse else None
        last = b""
        deadline = self.gateway.clock() + self.gateway.options.max_stream_duration
        try:
            await send(
                {"type": "http.response.start", "status": opened.status, "headers": headers + out}
            )
            # Only a served response has its first bytes read already; a
            # fail-fast one is relayed from its beginning.
            data = first or await self._pull(opened, deadline)
            while data:
                if framer is not None:
                    data = framer.feed(data)
                if opened.at_eof() and (framer is None or not framer.holding):
                    # The end has arrived too: these bytes go out with it, in
                    # one message (one write for a chunked body), below.
                    last = data
                    break
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                data = await self._pull(opened, deadline)
            if framer is not None and framer.holding:
                await send({"type": "http.response.body", "body": framer.rest(), "more_body": True})
        except _UpstreamBrokeError as error:
            opened.close()
            log.warning(
                "%s: upstream stream %s after the response started", request_id, error.reason
            )
            if not is_sse:
                # A JSON body cannot be amended; ending the connection early
                # makes the client's parser fail instead of reading half an answer.
                raise
            if error.reason == _TOO_LONG:
                limit = self.gateway.options.max_stream_duration
                message = f"the stream ran past the proxy's limit of {limit:g}s"
                code = "stream_too_long"
            else:
                message, code = f"upstream stream {error.reason}", "upstream_stream_error"
            event = stream_error_event(
                self.surface.events,
                f"{message}; the answer is incomplete",
                request_id,
                code,
                framer,
            )
            await send({"type": "http.response.body", "body": event, "more_body": True})
        except BaseException:
            # Cancelled (the client left) or the client side failed: stop the provider too.
            opened.close()
            raise
        else:
            opened.release()
        await send({"type": "http.response.body", "body": last, "more_body": False})
