"""A fake upstream transport: requests answered by an ASGI app in the same event loop.

`ASGIUpstream` implements the proxy's `upstream.transport.Transport` port the way httpx's
`ASGITransport` serves a client: it builds a scope, feeds the body to the app and reads
what the app sends, with no socket in between. Put the mock upstream behind it and the
proxy meets providers that behave like the real ones (rate limits with their headers,
auth errors, streams that break or stall), decided per key, in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from data_plane.http.types import ASGIApp, Message
from data_plane.routing.outcome import Outcome, connection_broke, timeout


class UpstreamBrokeError(ConnectionResetError):
    """The app returned before finishing its response (what a cut connection looks like)."""


@dataclass
class Request:
    """What the transport was asked to send."""

    url: str
    headers: dict[str, str]
    body: bytes
    timeout_s: float
    public_only: bool


class ASGIResponse:
    """One response as the app sends it; the app runs until the body ends or it is closed."""

    def __init__(
        self,
        start: Message,
        messages: asyncio.Queue[Message],
        task: asyncio.Task[None],
        gone: asyncio.Event,
    ) -> None:
        self.status: int = start["status"]
        raw = [(bytes(n).lower(), bytes(v)) for n, v in start.get("headers", [])]
        self.raw_headers: Iterable[tuple[bytes, bytes]] = raw
        self.headers: Mapping[str, str] = {n.decode(): v.decode("latin-1") for n, v in raw}
        self._messages = messages
        self._task = task
        self._gone = gone
        self._eof = False
        self.closed = False
        self.released = False

    async def next_chunk(self, idle_timeout: float) -> bytes:
        if self._eof:
            return b""
        async with asyncio.timeout(idle_timeout):
            message = await self._messages.get()
        if message["type"] == "app.returned":
            raise UpstreamBrokeError("the upstream closed the connection mid-body")
        self._eof = not message.get("more_body", False)
        body: bytes = message.get("body", b"")
        return body

    def at_eof(self) -> bool:
        return self._eof

    def close(self) -> None:
        # As when a connection drops: the app's next receive() is a disconnect.
        self.closed = True
        self._gone.set()

    def release(self) -> None:
        self.released = True


@dataclass
class ASGIUpstream:
    app: ASGIApp
    requests: list[Request] = field(default_factory=list)
    responses: list[ASGIResponse] = field(default_factory=list)

    async def open(
        self,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeout_s: float,
        *,
        public_only: bool = False,
    ) -> ASGIResponse | Outcome:
        self.requests.append(Request(url, dict(headers), body, timeout_s, public_only))
        parts = urlsplit(url)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": parts.scheme,
            "path": parts.path,
            "raw_path": parts.path.encode(),
            "query_string": parts.query.encode(),
            "root_path": "",
            "headers": [(n.lower().encode(), v.encode("latin-1")) for n, v in headers.items()],
            "client": ("127.0.0.1", 1),
            "server": (parts.hostname or "", parts.port or 443),
        }
        messages: asyncio.Queue[Message] = asyncio.Queue()
        delivered = False
        gone = asyncio.Event()

        async def receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            await messages.put(message)

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            finally:
                gone.set()
                await messages.put({"type": "app.returned"})

        task = asyncio.create_task(run())
        try:
            async with asyncio.timeout(timeout_s):
                start = await messages.get()
        except TimeoutError:
            task.cancel()
            return timeout()
        except asyncio.CancelledError:
            task.cancel()
            raise
        if start["type"] != "http.response.start":
            return connection_broke("the upstream closed the connection before answering")
        response = ASGIResponse(start, messages, task, gone)
        self.responses.append(response)
        return response

    def outcome_of(self, error: Exception) -> Outcome:
        if isinstance(error, TimeoutError):
            return timeout()
        return connection_broke(str(error).lower())

    async def aclose(self) -> None:
        """Ends what is still running (a held request, say), as a server shutting down."""
        for response in self.responses:
            response.close()
            response._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await response._task
