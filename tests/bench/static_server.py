"""A canned-response HTTP/1.1 server: the cheapest thing wrk can talk to.

It answers every request with the same small JSON body and does no other work, so wrk's
throughput against it bounds what the load generator itself can produce on this machine.
Run as `python -m tests.bench.static_server [HOST:PORT]`; it prints
`keyway: static server listening on HOST:PORT` once it accepts connections.
"""

from __future__ import annotations

import asyncio
import re
import socket
import sys
from typing import cast

import uvloop

_BODY = b'{"id":"static","object":"chat.completion","choices":[]}'
_RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(_BODY),
    _BODY,
)
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


class _Canned(asyncio.Protocol):
    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport.
        self._transport = cast(asyncio.WriteTransport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data
        answers = 0
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            match = _CONTENT_LENGTH.search(buffer, 0, end + 2)
            size = end + 4 + (int(match.group(1)) if match else 0)
            if len(buffer) < size:
                break
            buffer = buffer[size:]
            answers += 1
        self._buffer = buffer
        if answers and self._transport is not None:
            self._transport.write(_RESPONSE * answers)


async def _serve(listen: str) -> None:
    host, _, port = listen.rpartition(":")
    sock = socket.create_server((host or "127.0.0.1", int(port)), backlog=2048)
    server = await asyncio.get_running_loop().create_server(_Canned, sock=sock)
    bound = sock.getsockname()
    print(f"keyway: static server listening on {bound[0]}:{bound[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    uvloop.run(_serve(argv[0] if argv else "127.0.0.1:0"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
