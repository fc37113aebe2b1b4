"""HTTP/1.1 by hand on a raw socket, for what an HTTP client library would not send.

Slow, oversized or incomplete requests; `response` reads one answer, `closed` waits
(with a generous bound, never a fixed sleep) until the server drops the connection.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def response(sock: socket.socket) -> Response:
    """One whole response (content-length or chunked); raises if the connection ends first."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += _more(sock)
    head, _, data = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        while not data.endswith(b"0\r\n\r\n"):
            data += _more(sock)
        body = b""
        while True:
            size_line, _, data = data.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                return Response(status, headers, body)
            body, data = body + data[:size], data[size + 2 :]
    size = int(headers.get("content-length", "0"))
    while len(data) < size:
        data += _more(sock)
    return Response(status, headers, data[:size])


def _more(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("the server closed the connection")
    return chunk


def closed(sock: socket.socket, within: float = 20.0) -> bytes:
    """Everything the server sent until it closed the connection; fails after `within` s."""
    deadline = time.monotonic() + within
    received = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"the connection was still open after {within}s")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
