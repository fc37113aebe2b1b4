"""The port in front of the upstream HTTP client: all the request path asks of it.

As httpx puts its client's policy over a small transport interface, the proxy's
failover and relay stages talk only to a `Transport` and the `Response`s it opens.
`client.AiohttpTransport` is the one real implementation (aiohttp: the only code that
talks to providers); tests put an in-process fake in its place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from data_plane.routing.outcome import Outcome


class Response(Protocol):
    """An upstream response whose status and headers are known; its body not yet read."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Looked up by lowercase name."""
        ...

    @property
    def raw_headers(self) -> Iterable[tuple[bytes, bytes]]:
        """As received, for relaying to the client."""
        ...

    async def next_chunk(self, idle_timeout: float) -> bytes:
        """Whatever bytes have arrived (b"" at the end). Raises `TimeoutError` when none
        arrive within `idle_timeout`, another exception when the connection broke."""
        ...

    def at_eof(self) -> bool:
        """True once the whole body has arrived and been read."""
        ...

    def close(self) -> None:
        """Drops the connection: the provider sees the request cancelled."""

    def release(self) -> None:
        """Gives a fully read response's connection back to the pool."""


class Transport(Protocol):
    async def open(
        self,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeout_s: float,
        *,
        public_only: bool = False,
    ) -> Response | Outcome:
        """POSTs `body` and waits for the status line and headers, within `timeout_s`.
        A failure to get that far is an `Outcome` (never an exception)."""
        ...

    def outcome_of(self, error: Exception) -> Outcome:
        """What an exception raised by `Response.next_chunk` means for failover."""
        ...
