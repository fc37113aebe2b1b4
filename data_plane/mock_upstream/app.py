"""The mock upstream as a raw ASGI app: OpenAI and Anthropic surfaces, behaviour per key.

Raw ASGI rather than a framework because benchmarks put it behind the proxy
and it must not be the bottleneck, and because disconnect detection has to see
``http.disconnect`` itself (Starlette's BaseHTTPMiddleware would hide it).
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import json
import logging
import secrets
import time
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from data_plane.formats import ApiFormat

from . import payloads as p
from . import sse
from .behaviours import FAILURES, RATE_LIMITS, Behaviour, Failure, Kind, parse_key

_RECORDED_HEADERS = frozenset({"anthropic-version", "anthropic-beta", "openai-organization"})
_INVALID_REQUEST = Failure(400, "", "invalid_request_error", None, "invalid_request_error")
_NOT_FOUND = Failure(404, "", "invalid_request_error", "unknown_url", "not_found_error")
_MISSING_KEY = Failure(401, "", "invalid_request_error", None, "authentication_error")
_SHUTTING_DOWN = Failure(
    503, "The mock upstream is shutting down.", "server_error", None, "api_error"
)
_JSON = (b"content-type", b"application/json")
_SSE = ((b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"))

# uvicorn logs an error whenever an app returns mid-response; for `break` that
# is the point, so that log line is dropped, but only for the request that cut.
_CUTTING: contextvars.ContextVar[bool] = contextvars.ContextVar("mock_cutting", default=False)
_UNFINISHED = "ASGI callable returned without completing response."


class _QuietCuts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (_CUTTING.get() and record.msg == _UNFINISHED)


_QUIET_CUTS = _QuietCuts()


class Outcome(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    CANCELLED = "cancelled"  # the client went away before the response ended
    BROKEN = "broken"  # the mock cut or abandoned the response on purpose


class _Surface(Enum):
    CHAT = "chat"
    RESPONSES = "responses"
    EMBEDDINGS = "embeddings"
    MESSAGES = "messages"
    COUNT_TOKENS = "count_tokens"
    MODELS = "models"


_ROUTES = {
    ("POST", "/v1/chat/completions"): _Surface.CHAT,
    ("POST", "/v1/responses"): _Surface.RESPONSES,
    ("POST", "/v1/embeddings"): _Surface.EMBEDDINGS,
    ("POST", "/v1/messages"): _Surface.MESSAGES,
    ("POST", "/v1/messages/count_tokens"): _Surface.COUNT_TOKENS,
    ("GET", "/v1/models"): _Surface.MODELS,
}


@dataclass(slots=True)
class RecordedRequest:
    method: str
    path: str
    label: str | None  # the key minus `sk-mock-`; None when no key was sent
    model: str | None
    stream: bool
    header_names: tuple[str, ...]
    headers: dict[str, str]  # values of the few headers tests assert on
    body: bytes
    query: str = ""
    status: int = 0
    outcome: Outcome = Outcome.PENDING

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "label": self.label,
            "model": self.model,
            "stream": self.stream,
            "header_names": list(self.header_names),
            "headers": self.headers,
            "body": self.body.decode("utf-8", "replace"),
            "query": self.query,
            "status": self.status,
            "outcome": self.outcome.value,
        }


class MockUpstream:
    """The ASGI app. ``requests`` is the in-process view of what it received.

    Only the latest ``max_records`` (at least) are kept, so that a long
    benchmark does not grow the process without bound.
    """

    def __init__(
        self, latency_ms: float = 0.0, chunk_delay_ms: float = 1.0, max_records: int = 10_000
    ) -> None:
        self.latency_ms = latency_ms
        self.chunk_delay_ms = chunk_delay_ms
        self.max_records = max_records
        self.requests: list[RecordedRequest] = []
        self._parked: set[asyncio.Task[Message]] = set()
        self._released = False
        self._run = secrets.token_hex(4)
        self._counter = itertools.count(1)
        uvicorn_log = logging.getLogger("uvicorn.error")
        if _QUIET_CUTS not in uvicorn_log.filters:
            uvicorn_log.addFilter(_QUIET_CUTS)

    def reset(self) -> None:
        self.requests.clear()

    def keep(self, record: RecordedRequest) -> None:
        self.requests.append(record)
        if len(self.requests) > 2 * self.max_records:
            # Dropping in halves keeps the cost per request constant.
            del self.requests[: -self.max_records]

    def release(self) -> None:
        """End every held or stalled request (so that a server can stop promptly)."""
        self._released = True
        for task in self._parked:
            task.cancel()

    async def settled(self, within: float = 5.0) -> list[RecordedRequest]:
        """The records once none is pending; raises TimeoutError after `within` seconds."""
        async with asyncio.timeout(within):
            # Polling keeps this usable from any task without wiring an event
            # through every place an outcome changes; it is for tests only.
            while any(r.outcome is Outcome.PENDING for r in self.requests):  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        return list(self.requests)

    async def client_left(self, receive: Receive) -> bool:
        """Wait until the client disconnects (True) or `release()` is called (False)."""
        watcher = asyncio.ensure_future(receive())
        self._parked.add(watcher)
        if self._released:
            watcher.cancel()
        try:
            await asyncio.wait((watcher,))
        finally:
            self._parked.discard(watcher)
        return not watcher.cancelled()

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{self._run}{next(self._counter):016x}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method: str = scope["method"]
        path: str = scope["path"]
        if path.startswith("/_mock/"):
            await self._control(method, path, send)
            return
        body = await _read_body(receive)
        if body is not None:
            await _Exchange(self, scope, receive, send, body).run(_ROUTES.get((method, path)))

    async def _control(self, method: str, path: str, send: Send) -> None:
        if (method, path) == ("GET", "/_mock/requests"):
            await _send_json(send, 200, p.dumps([r.to_json() for r in self.requests]))
        elif (method, path) == ("POST", "/_mock/reset"):
            cleared = len(self.requests)
            self.reset()
            await _send_json(send, 200, p.dumps({"cleared": cleared}))
        else:
            await _send_json(send, 404, p.dumps({"error": f"no {method} {path}"}))


class _Exchange:
    """One request: decides the response from the key and records what happened."""

    def __init__(
        self, app: MockUpstream, scope: Scope, receive: Receive, send: Send, body: bytes
    ) -> None:
        self.app = app
        self.receive = receive
        self.send = send
        self.body = body
        self.request_id = app.new_id("req_")
        names: list[str] = []
        kept: dict[str, str] = {}
        bearer = x_api_key = None
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1")
            names.append(name)
            if name == "authorization":
                scheme, _, token = raw_value.decode("latin-1").partition(" ")
                bearer = token.strip() if scheme.lower() == "bearer" else None
            elif name == "x-api-key":
                x_api_key = raw_value.decode("latin-1")
            elif name in _RECORDED_HEADERS:
                kept[name] = raw_value.decode("latin-1")
        path: str = scope["path"]
        self.version = kept.get("anthropic-version")
        # /v1/models serves both SDKs; only Anthropic's sends `anthropic-version`.
        anthropic = path.startswith("/v1/messages") or (
            path == "/v1/models" and self.version is not None
        )
        self.api = ApiFormat.ANTHROPIC if anthropic else ApiFormat.OPENAI
        # Anthropic takes `x-api-key`, and recent SDKs send the key as a bearer token.
        self.key = (x_api_key or bearer) if anthropic else bearer
        self.behaviour = parse_key(self.key) if self.key else None
        self.fields = _json_object(body) if scope["method"] == "POST" else {}
        model = (self.fields or {}).get("model")
        self.model = model if isinstance(model, str) and model else None
        self.record = RecordedRequest(
            method=scope["method"],
            path=path,
            label=self.behaviour.label if self.behaviour else None,
            model=self.model,
            stream=(self.fields or {}).get("stream") is True,
            header_names=tuple(names),
            headers=kept,
            body=body,
            query=scope.get("query_string", b"").decode("latin-1"),
        )
        app.keep(self.record)

    async def run(self, surface: _Surface | None) -> None:
        behaviour = self.behaviour
        if surface is None:
            method, path = self.record.method, self.record.path
            message = f"Unknown request URL: {method} {path}."
            if (method, "/v1" + path) in _ROUTES:
                message += " The mock serves its API under /v1: use a base URL ending in /v1."
            await self.fail(_NOT_FOUND, message)
        elif behaviour is None:
            await self.fail(_MISSING_KEY, _missing_key_message(self.api))
        elif self.api is ApiFormat.ANTHROPIC and not self.version:
            await self.fail(_INVALID_REQUEST, "anthropic-version: header is required")
        elif self.fields is None:
            await self.fail(_INVALID_REQUEST, "The request body is not a valid JSON object.")
        elif surface is _Surface.MODELS:
            await self._behave(surface, behaviour, "", {})
        elif self.model is None:
            await self.fail(_INVALID_REQUEST, "model: field required")
        else:
            await self._behave(surface, behaviour, self.model, self.fields)
        _CUTTING.set(self.record.outcome is Outcome.BROKEN)

    async def _behave(
        self, surface: _Surface, behaviour: Behaviour, model: str, fields: dict[str, Any]
    ) -> None:
        kind = behaviour.kind
        delay = self.app.latency_ms + (behaviour.param if kind is Kind.SLOW else 0.0)
        if kind is Kind.HOLD:
            await self.park()
        elif delay > 0 and not await self.pause(delay / 1000):
            self.record.outcome = Outcome.CANCELLED
        elif kind in FAILURES:
            retry_after = behaviour.param if kind in RATE_LIMITS else None
            await self.fail(FAILURES[kind], retry_after=retry_after)
        elif surface is _Surface.MODELS:
            await self.reply(
                p.ANTHROPIC_MODELS if self.api is ApiFormat.ANTHROPIC else p.OPENAI_MODELS
            )
        elif surface is _Surface.EMBEDDINGS:
            await self._embeddings(model, fields)
        elif surface is _Surface.COUNT_TOKENS:
            await self._count_tokens(fields)
        elif self.record.stream and kind is Kind.TRICKLE:
            await self.trickle(self._frames(surface, model, behaviour.label, fields))
        elif self.record.stream:
            await self.stream(self._frames(surface, model, behaviour.label, fields))
        else:
            await self.reply(p.dumps(self._body(surface, model, behaviour.label)))

    def _body(self, surface: _Surface, model: str, label: str) -> dict[str, Any]:
        pieces = p.text_pieces(model, label)
        prompt = p.prompt_tokens(self.body)
        if surface is _Surface.CHAT:
            return p.chat_completion(
                self.app.new_id("chatcmpl-"), int(time.time()), model, pieces, prompt
            )
        if surface is _Surface.RESPONSES:
            item = p.message_item(self.app.new_id("msg_"), "".join(pieces))
            return p.response_object(
                self.app.new_id("resp_"),
                int(time.time()),
                model,
                [item],
                (prompt, len(pieces)),
            )
        return p.anthropic_message(
            self.app.new_id("msg_"), model, "".join(pieces), self._input_tokens(), len(pieces)
        )

    def _frames(
        self, surface: _Surface, model: str, label: str, fields: dict[str, Any]
    ) -> list[bytes]:
        pieces = p.text_pieces(model, label)
        prompt = p.prompt_tokens(self.body)
        if surface is _Surface.CHAT:
            options = fields.get("stream_options")
            usage = isinstance(options, dict) and options.get("include_usage") is True
            return sse.chat_events(
                self.app.new_id("chatcmpl-"), int(time.time()), model, pieces, prompt, usage
            )
        if surface is _Surface.RESPONSES:
            return sse.responses_events(
                self.app.new_id("resp_"),
                self.app.new_id("msg_"),
                int(time.time()),
                model,
                pieces,
                prompt,
            )
        return sse.messages_events(self.app.new_id("msg_"), model, pieces, self._input_tokens())

    def _input_tokens(self) -> int:
        return p.anthropic_input_tokens(self.fields or {})

    async def _count_tokens(self, fields: dict[str, Any]) -> None:
        # Like Anthropic: the same validation as a Messages call, and only the count back.
        if not isinstance(fields.get("messages"), list):
            await self.fail(_INVALID_REQUEST, "messages: Field required")
        else:
            await self.reply(p.dumps({"input_tokens": p.anthropic_input_tokens(fields)}))

    async def _embeddings(self, model: str, fields: dict[str, Any]) -> None:
        texts = p.embedding_inputs(fields.get("input"))
        dimensions = fields.get("dimensions")
        encoding = fields.get("encoding_format", "float")
        if texts is None:
            await self.fail(_INVALID_REQUEST, "input: expected a string or a list of them")
        elif dimensions is not None and not (
            isinstance(dimensions, int) and not isinstance(dimensions, bool) and dimensions > 0
        ):
            await self.fail(_INVALID_REQUEST, "dimensions: expected a positive integer")
        elif encoding not in ("float", "base64"):
            await self.fail(_INVALID_REQUEST, "encoding_format: expected 'float' or 'base64'")
        else:
            prompt = p.prompt_tokens(self.body)
            as_base64 = encoding == "base64"
            await self.reply(p.dumps(p.embeddings(model, texts, dimensions, as_base64, prompt)))

    # --- sending ------------------------------------------------------------------------------

    def _headers(self, retry_after: float | None = None) -> p.Headers:
        kind = self.behaviour.kind if self.behaviour else None
        hint = _HINTS.get(kind, "seconds") if kind is not None else "seconds"
        return p.limit_headers(self.api, self.request_id, time.time(), retry_after, hint)

    async def fail(
        self, failure: Failure, message: str | None = None, retry_after: float | None = None
    ) -> None:
        body = p.error_body(self.api, failure, self.request_id, message)
        await self.reply(body, failure.status, self._headers(retry_after))

    async def reply(self, body: bytes, status: int = 200, headers: p.Headers | None = None) -> None:
        """A whole JSON body, or half of it for ``break`` and ``stall``."""
        self.record.status = status
        head = [_JSON, (b"content-length", b"%d" % len(body)), *(headers or self._headers())]
        await self.send({"type": "http.response.start", "status": status, "headers": head})
        kind = self.behaviour.kind if self.behaviour else None
        if status == 200 and kind in (Kind.BREAK, Kind.STALL):
            await self.send(
                {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
            )
            await self._interrupt(kind)
            return
        await self.send({"type": "http.response.body", "body": body})
        self.record.outcome = Outcome.COMPLETED

    async def stream(self, frames: list[bytes]) -> None:
        assert self.behaviour is not None
        kind = self.behaviour.kind
        limit = self.behaviour.count if kind in (Kind.BREAK, Kind.STALL) else len(frames)
        self.record.status = 200
        start = [*_SSE, *self._headers()]
        await self.send({"type": "http.response.start", "status": 200, "headers": start})
        watcher = asyncio.ensure_future(self.receive())
        pace = self.app.chunk_delay_ms / 1000
        try:
            for index, frame in enumerate(frames[:limit]):
                if index and pace > 0:
                    await asyncio.wait((watcher,), timeout=pace)
                elif index:
                    await asyncio.sleep(0)  # lets the watcher see a disconnect
                if watcher.done():
                    self.record.outcome = Outcome.CANCELLED
                    return
                last = index == len(frames) - 1
                await self.send(
                    {"type": "http.response.body", "body": frame, "more_body": not last}
                )
        finally:
            watcher.cancel()
        if limit >= len(frames):
            self.record.outcome = Outcome.COMPLETED
        else:
            await self._interrupt(kind)

    async def trickle(self, frames: list[bytes]) -> None:
        """The first event, then the middle ones over and over until the client leaves."""
        assert self.behaviour is not None
        self.record.status = 200
        start = [*_SSE, *self._headers()]
        await self.send({"type": "http.response.start", "status": 200, "headers": start})
        await self.send({"type": "http.response.body", "body": frames[0], "more_body": True})
        middle = frames[1:-1] or frames
        watcher = asyncio.ensure_future(self.receive())
        try:
            for frame in itertools.cycle(middle):
                await asyncio.wait((watcher,), timeout=self.behaviour.param / 1000)
                if watcher.done():
                    break
                await self.send({"type": "http.response.body", "body": frame, "more_body": True})
        finally:
            watcher.cancel()
        self.record.outcome = Outcome.CANCELLED

    async def _interrupt(self, kind: Kind | None) -> None:
        # `break` returns with the response unfinished, so uvicorn closes the
        # connection mid-body; `stall` keeps it open and silent instead.
        if kind is Kind.STALL:
            await self.park()
            if self.record.outcome is Outcome.CANCELLED:
                return
        self.record.outcome = Outcome.BROKEN

    async def park(self) -> None:
        """Wait for the client to leave (cancelled) or the app to be released (broken)."""
        if await self.app.client_left(self.receive):
            self.record.outcome = Outcome.CANCELLED
            return
        if self.record.status == 0:
            await self.fail(_SHUTTING_DOWN)
        self.record.outcome = Outcome.BROKEN

    async def pause(self, seconds: float) -> bool:
        """Sleep unless the client leaves first; True if it is still there."""
        # The body has been read, so `receive()` now only returns on disconnect;
        # a timeout around it is a sleep that notices the client going away.
        try:
            async with asyncio.timeout(seconds):
                await self.receive()
        except TimeoutError:
            return True
        return False


_HINTS = {Kind.RATE_LIMITED_DATE: "date", Kind.RATE_LIMITED_RESET: "reset"}


def _missing_key_message(api: ApiFormat) -> str:
    if api is ApiFormat.ANTHROPIC:
        return "x-api-key header is required"
    return "You didn't provide an API key (Authorization: Bearer <key>)."


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client left before sending it."""
    message = await receive()
    chunks: list[bytes] = []
    while True:
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        message = await receive()


async def _send_json(send: Send, status: int, body: bytes) -> None:
    headers = [_JSON, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
