"""A response's head and first body bytes leave in one write (one send(), one packet)."""

from __future__ import annotations

import asyncio
from typing import Any

from data_plane.http.connections import _MERGE_MAX, _OneWriteHead

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else None


def _writer(transport: _Transport) -> _OneWriteHead:
    return _OneWriteHead(transport, asyncio.get_running_loop())  # type: ignore[arg-type]


async def test_a_whole_response_is_one_write() -> None:
    transport = _Transport()
    writes = _writer(transport)
    writes.write(HEAD)
    assert transport.writes == []
    writes.write(b"ok")
    assert transport.writes == [HEAD + b"ok"]
    await asyncio.sleep(0)  # the scheduled flush was cancelled: nothing more goes out
    assert transport.writes == [HEAD + b"ok"]


async def test_a_head_without_body_yet_goes_out_at_the_end_of_the_iteration() -> None:
    transport = _Transport()
    writes = _writer(transport)
    writes.write(HEAD)
    await asyncio.sleep(0)
    assert transport.writes == [HEAD]
    writes.write(b"data: 1\n\n")  # later body bytes pass straight through
    assert transport.writes == [HEAD, b"data: 1\n\n"]


async def test_a_large_first_body_is_not_copied_onto_the_head() -> None:
    transport = _Transport()
    writes = _writer(transport)
    big = b"x" * (_MERGE_MAX + 1)
    writes.write(HEAD)
    writes.write(big)
    assert transport.writes == [HEAD, big]


async def test_closing_or_flushing_writes_a_held_head_first() -> None:
    transport = _Transport()
    writes = _writer(transport)
    writes.write(HEAD)
    writes.close()
    assert (transport.writes, transport.closed) == ([HEAD], True)
    other = _Transport()
    held = _writer(other)
    held.write(HEAD)
    held.flush()
    held.flush()
    assert other.writes == [HEAD]
    assert held.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest is the transport's
