"""Limits on the proxy's client connections, enforced in uvicorn's HTTP protocol.

uvicorn (0.54, httptools) has no cap on the size of request headers (httptools buffers an
unterminated header line without bound), no timeout on reading headers or a body (a
client trickling a byte a second keeps its connection for ever; any byte cancels the
keep-alive timer), and its `limit_concurrency` answers 503 only once a request has been
read. So the protocol is subclassed and enforces:

- `max_header_bytes`: the request line and headers, counted as bytes fed to the parser
  until the headers are complete; over it, 431 and close;
- `header_read_timeout`: from the connection (or from the end of the previous response,
  plus the keep-alive time) until the headers are complete; 408 and close (a close
  without an answer when the client sent nothing);
- `body_read_timeout`: from the end of the headers until the whole body has arrived;
  408 and close, or just close if the response has started;
- `max_connections`: connections beyond it get 503 and are closed at once;
- `keepalive_timeout`: idle time between requests (uvicorn's own timer);
- `write_timeout`: how long a client may leave the response unread (the socket's buffer
  full, uvicorn's writes paused) before it is disconnected; a client reading a stream a
  byte a minute would otherwise hold it, and the upstream request behind it, for ever.

Answers written here use the surface's error envelope; the protocol knows the path once
the request line has been parsed.

Response cycles write through `_OneWriteHead`: uvicorn writes a response's head and its
body in two `transport.write` calls, i.e. two `send()` system calls and two packets for
every whole response; the head is held until the body's first bytes (or the end of the
loop iteration) so that both go out in one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from data_plane.formats import ApiFormat
from data_plane.routing.errors import KeywayError

from .errors import envelope
from .headers import CORS
from .request_id import HEADER, new_request_id


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_header_bytes: int = 32 * 1024
    header_read_timeout: float = 10.0
    body_read_timeout: float = 60.0
    max_connections: int = 4096
    keepalive_timeout: float = 5.0
    write_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.max_header_bytes < 1024:
            raise ValueError("max_header_bytes must be at least 1024")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        for name in (
            "header_read_timeout",
            "body_read_timeout",
            "keepalive_timeout",
            "write_timeout",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")


def raw_error(code: str, message: str, path: bytes = b"") -> bytes:
    """A whole `connection: close` HTTP/1.1 response carrying a Keyway error."""
    error = KeywayError(code, message)
    fmt = ApiFormat.ANTHROPIC if path.startswith(b"/v1/messages") else ApiFormat.OPENAI
    body = envelope(error, fmt)
    head = [
        f"HTTP/1.1 {error.status} {_REASONS[error.status]}".encode(),
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"connection: close",
        HEADER + b": " + new_request_id().encode(),
        *(name + b": " + value for name, value in CORS),
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


_REASONS = {
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


_MERGE_MAX = 64 * 1024
"""Larger first bodies go out in a write of their own rather than be copied to join the head."""


class _OneWriteHead:
    """The connection's transport as uvicorn's response cycles see it.

    A response head (the one write that starts with the status line) is held, and goes out
    joined to the next write, the first body bytes, which a whole response sends in the
    same loop iteration; a head with no body bytes then (a stream still waiting for its
    upstream) goes out at the end of the iteration. Everything else passes straight through.
    """

    __slots__ = ("_flush", "_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._flush: asyncio.Handle | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            if data.startswith(b"HTTP/"):
                self._held = data
                self._flush = self._loop.call_soon(self.flush)
            else:
                self._transport.write(data)
            return
        self._held = None
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if len(data) <= _MERGE_MAX:
            self._transport.write(held + data)
        else:
            self._transport.write(held)
            self._transport.write(data)

    def flush(self) -> None:
        """Writes a held head now (before anything else is written or the connection ends)."""
        held, self._held = self._held, None
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with `limits` enforced (see the module docstring)."""

    limits = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused = False
        self._in_headers = True
        self._header_bytes = 0
        self._request_started = False
        self._awaiting_body = False
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._writes: _OneWriteHead | None = None

    # -- connection ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self._refused = True
            self.transport = transport
            transport.write(raw_error("overloaded", "the proxy is at its connection limit"))
            transport.close()
            return
        super().connection_made(transport)
        self._writes = _OneWriteHead(transport, self.loop)
        self._arm_header_timer(self.limits.header_read_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        if self._refused:
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused or self.transport.is_closing():
            return
        if self._writes is not None:
            self._writes.flush()  # uvicorn may answer a bad request by writing directly
        if self._in_headers:
            room = self.limits.max_header_bytes - self._header_bytes
            if len(data) > room:
                # Feed only what the cap allows; if that does not end the headers, refuse.
                head, rest = data[:room], data[room:]
                self._header_bytes += len(head)
                if head:
                    super().data_received(head)
                if self._in_headers:
                    self._answer("headers_too_large", "request headers are too large")
                elif rest and not self.transport.is_closing():
                    self.data_received(rest)
                else:
                    self._arm_body_timer()
                return
            self._header_bytes += len(data)
        super().data_received(data)
        self._arm_body_timer()

    def _arm_body_timer(self) -> None:
        # Armed only for a body still arriving after this packet: most requests come whole.
        if self._awaiting_body and self._body_timer is None:
            self._body_timer = self.loop.call_later(
                self.limits.body_read_timeout, self._body_timed_out
            )

    # -- parser callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._request_started = True
        if self._header_timer is None:  # else the connection's or keep-alive's still runs
            self._arm_header_timer(self.limits.header_read_timeout)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._cancel(self._header_timer)
        self._header_timer = None
        super().on_headers_complete()
        if self.cycle is not None and self._writes is not None:
            self.cycle.transport = self._writes  # type: ignore[assignment]
        # The body timer starts once this packet is handled, if the body is still arriving.
        self._awaiting_body = True

    def on_message_complete(self) -> None:
        self._awaiting_body = False
        self._cancel(self._body_timer)
        self._body_timer = None
        # Whatever comes next is the next request's headers (or idle keep-alive bytes).
        self._in_headers = True
        self._header_bytes = 0
        self._request_started = False
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline and self._in_headers:
            # Idle keep-alive time, then a request's worth of header time: bytes that do
            # not start a request (bare CRLFs) cannot hold the connection open.
            limits = self.limits
            self._arm_header_timer(limits.keepalive_timeout + limits.header_read_timeout)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(
                self.limits.write_timeout, self._write_timed_out
            )

    def resume_writing(self) -> None:
        self._cancel(self._write_timer)
        self._write_timer = None
        super().resume_writing()

    # -- timers ---------------------------------------------------------------------------

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer, self._write_timer):
            self._cancel(timer)
        self._header_timer = self._body_timer = self._write_timer = None

    def _write_timed_out(self) -> None:
        self._write_timer = None
        if self.cycle is not None:
            self._drop(self.cycle)
        # abort(): close() would wait for the unread buffer to drain, which it will not.
        self.transport.abort()

    def _arm_header_timer(self, seconds: float) -> None:
        self._cancel(self._header_timer)
        self._header_timer = self.loop.call_later(seconds, self._headers_timed_out)

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if not self._request_started:
            self._close()  # an idle connection: nothing to answer
            return
        self._answer("request_timeout", "the request headers took too long to arrive")

    def _body_timed_out(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if self.transport.is_closing() or cycle is None:
            return
        if not cycle.response_started:
            self._answer("request_timeout", "the request body took too long to arrive")
            return
        self._drop(cycle)
        self._close()

    def _close(self) -> None:
        if self._writes is not None:
            self._writes.flush()  # a held response head goes before the end
        self.transport.close()

    def _answer(self, code: str, message: str) -> None:
        """Answers `code` itself and closes; the app, if running, sees a disconnect."""
        path = getattr(self, "url", b"") or b""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            self._drop(cycle)
        self._cancel_timers()
        if self._writes is not None:
            self._writes.flush()
        self.transport.write(raw_error(code, message, path))
        self._close()

    @staticmethod
    def _drop(cycle: Any) -> None:
        # The app's next receive() returns http.disconnect, and what it sends is dropped.
        cycle.disconnected = True
        cycle.message_event.set()


def protocol_class(limits: ConnectionLimits) -> type[LimitedHttpToolsProtocol]:
    """The protocol class for uvicorn's `http=` setting, with these limits."""
    return type("KeywayHttpProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})
