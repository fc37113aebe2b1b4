"""What a failed connection tells the operator: the provider's host and the OS's reason."""

from __future__ import annotations

import asyncio

from data_plane.routing.outcome import Outcome, OutcomeKind
from data_plane.upstream.client import AiohttpResponse, AiohttpTransport

from .proxies import free_port


async def _open(url: str) -> AiohttpResponse | Outcome:
    upstream = AiohttpTransport()
    await upstream.start()
    try:
        return await upstream.open(url, {}, b"{}", 5.0)
    finally:
        await upstream.close()


async def test_a_refused_connection_names_host_port_and_the_os_error() -> None:
    port = free_port()
    outcome = await _open(f"http://127.0.0.1:{port}/v1/chat/completions")
    assert not isinstance(outcome, AiohttpResponse)
    assert outcome.kind is OutcomeKind.CONNECT_ERROR
    expected = f"Could not connect to provider at 127.0.0.1:{port}: connection refused"
    assert outcome.reason == expected


async def test_a_connection_closed_without_an_answer_says_so() -> None:
    def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()  # accepted, then closed without a byte: no HTTP answer at all

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        outcome = await _open(f"http://127.0.0.1:{port}/v1/messages")
    assert not isinstance(outcome, AiohttpResponse)
    assert outcome.kind is OutcomeKind.CONNECT_ERROR
    assert outcome.reason == "Provider connection broke (server disconnected)"


async def test_a_name_that_does_not_resolve_says_so() -> None:
    outcome = await _open("http://no-such-host.invalid/v1/chat/completions")
    assert not isinstance(outcome, AiohttpResponse)
    assert outcome.reason.startswith("Could not connect to provider at no-such-host.invalid:80: ")
    assert "error -" not in outcome.reason  # the resolver's words, not a bare EAI code
