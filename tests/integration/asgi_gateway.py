"""The proxy's ASGI app in-process, over a hand-built snapshot, against the in-loop mock.

No control plane: the routing table comes from `tests/unit/snapshots.py`, so a test can
serve what the control plane would refuse to store today (a key value with a control
character, from before such values were refused). Requests go through httpx's
`ASGITransport`, or straight to the ASGI callable with a hand-made scope for what httpx
would not send. The built-in `openai` and `anthropic` providers point at the mock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from keyway.v1 import snapshot_pb2 as spb
from starlette.types import ASGIApp

from data_plane.http.app import create_app
from data_plane.http.context import ProxyContext, ProxyOptions
from data_plane.mock_upstream.server import MockServer
from data_plane.shared.tokens import ACCESS_PREFIX, BODY_LEN, checksum
from data_plane.snapshot.state import SnapshotState
from data_plane.upstream.client import AiohttpTransport
from data_plane.usage import Observer, ObserveSettings
from tests.unit import snapshots as s


@dataclass
class Harness:
    app: ASGIApp
    http: httpx.AsyncClient
    mock: MockServer
    ctx: ProxyContext

    async def raw(
        self, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """One request straight into the ASGI app: (status, headers, body)."""
        scope = http_scope(method, path, headers)
        sent: list[dict[str, Any]] = []
        delivered = False

        async def receive() -> MutableMapping[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            # Like a server: a disconnect only once the response is complete.
            while not _complete(sent):  # noqa: ASYNC110 - polling a list a test fills
                await asyncio.sleep(0.001)
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(dict(message))

        await self.app(scope, receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return start["status"], list(start.get("headers", [])), content


def http_scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The ASGI scope of one HTTP/1.1 request from a loopback client."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("latin-1", "replace"),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8080),
    }


def _complete(sent: list[dict[str, Any]]) -> bool:
    last = sent[-1] if sent else {}
    return last.get("type") == "http.response.body" and not last.get("more_body", False)


def access_token(seed: str) -> str:
    """A well-formed access key token, distinct per `seed` (a letter or two)."""
    head = ACCESS_PREFIX + (seed * BODY_LEN)[:BODY_LEN]
    return head + checksum(head)


@dataclass(frozen=True)
class Tenant:
    token: str
    keys: tuple[spb.SnapshotProviderKey, ...]
    configuration: spb.SnapshotConfiguration | None = None
    account_id: str = "acct_1"
    access_key_id: str = "ak_1"
    extra_access_keys: tuple[spb.SnapshotAccessKey, ...] = field(default_factory=tuple)


def gateway_snapshot(mock_base_url: str, tenants: Iterable[Tenant]) -> spb.Snapshot:
    accounts: dict[str, spb.SnapshotAccount] = {}
    for tenant in tenants:
        account = accounts.setdefault(tenant.account_id, s.account(tenant.account_id))
        account.provider_keys.extend(tenant.keys)
        config_id = ""
        if tenant.configuration is not None:
            account.configurations.append(tenant.configuration)
            config_id = tenant.configuration.id
        account.access_keys.append(s.access_key(tenant.access_key_id, tenant.token, config_id))
        account.access_keys.extend(tenant.extra_access_keys)
    snap = s.snapshot(*accounts.values())
    for provider in snap.providers:
        provider.base_url = mock_base_url
        provider.private_addresses_allowed = True
    return snap


@asynccontextmanager
async def asgi_gateway(
    tenants: Iterable[Tenant],
    options: ProxyOptions | None = None,
    observer: Observer | None = None,
) -> AsyncIterator[Harness]:
    async with MockServer(chunk_delay_ms=0) as mock:
        state = SnapshotState()
        state.swap(
            s.table(gateway_snapshot(mock.base_url, tenants)), generated_at=0.0, now=time.time()
        )
        upstream = AiohttpTransport()
        await upstream.start()
        observer = observer or Observer.of(ObserveSettings())
        ctx = ProxyContext(state, upstream, observer, options or ProxyOptions())
        app = create_app(ctx)
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as http:
                yield Harness(app, http, mock, ctx)
        finally:
            await upstream.close()
            ctx.body_worker.shutdown(wait=False, cancel_futures=True)
