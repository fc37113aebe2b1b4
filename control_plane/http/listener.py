"""The control plane's HTTP listener: uvicorn inside the control plane's own event loop.

It follows the gRPC port's transport rules: TLS with the same certificate and key (and
client certificates when `--tls-client-ca` is set), plaintext only on loopback unless
`--allow-insecure-remote`, an exclusive port.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from starlette.types import ASGIApp

from data_plane.shared.serving import EmbeddedServer
from data_plane.shared.startup import bind

WHAT = "HTTP API"


@dataclass(frozen=True, slots=True)
class Tls:
    cert: Path
    key: Path
    client_ca: Path | None = None


class HttpListener:
    """Binds at construction (so `port` is known and a taken port fails early)."""

    def __init__(self, app: ASGIApp, listen: str, tls: Tls | None) -> None:
        sock = bind(listen, WHAT)
        self.port: int = sock.getsockname()[1]
        self.scheme = "http" if tls is None else "https"
        mutual = tls is not None and tls.client_ca is not None
        self._server = EmbeddedServer(
            app,
            sock,
            # h11 refuses a head still incomplete past 16 KiB; httptools has no cap at all.
            http="h11",
            timeout_graceful_shutdown=2,
            ssl_certfile=None if tls is None else str(tls.cert),
            ssl_keyfile=None if tls is None else str(tls.key),
            ssl_ca_certs=str(tls.client_ca) if tls is not None and tls.client_ca else None,
            ssl_cert_reqs=ssl.CERT_REQUIRED if mutual else ssl.CERT_NONE,
        )

    async def start(self) -> None:
        await self._server.start()

    async def stop(self) -> None:
        """Stops accepting, lets in-flight requests end (within a couple of seconds)."""
        await self._server.stop()
