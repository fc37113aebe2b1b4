"""`keyway demo`: the whole stack against a mock upstream, showing failover.

Everything runs in one process on loopback with a throwaway data directory;
the keys are created through the real admin API, as a user would.
"""

from __future__ import annotations

import asyncio
import signal
import tempfile
from pathlib import Path

import grpc
import httpx
from keyway.v1 import (
    access_keys_pb2,
    access_keys_pb2_grpc,
    provider_keys_pb2,
    provider_keys_pb2_grpc,
)

from control_plane.server import ControlPlane, Settings
from data_plane.mock_upstream.server import MockServer
from data_plane.runner import Proxy, ProxySettings

_KEYS = (
    ("openai", "primary (rate-limited)", "sk-mock-429-30-primary"),
    ("openai", "backup", "sk-mock-ok-backup"),
    ("anthropic", "claude", "sk-mock-ok-claude"),
)


async def _seed(address: str, admin_token: str) -> tuple[str, int]:
    metadata = (("authorization", f"Bearer {admin_token}"),)
    async with grpc.aio.insecure_channel(address) as channel:
        keys = provider_keys_pb2_grpc.ProviderKeyServiceStub(channel)
        for provider, name, value in _KEYS:
            created = await keys.CreateProviderKey(
                provider_keys_pb2.CreateProviderKeyRequest(
                    provider_key=provider_keys_pb2.ProviderKey(provider_id=provider, name=name),
                    value=value,
                ),
                metadata=metadata,
            )
            print(f"  provider key {created.provider_key.id}  {provider:<9} {name}")
        access = await access_keys_pb2_grpc.AccessKeyServiceStub(channel).CreateAccessKey(
            access_keys_pb2.CreateAccessKeyRequest(
                access_key=access_keys_pb2.AccessKey(name="demo")
            ),
            metadata=metadata,
        )
    return access.token, int(access.access_key.etag)


async def run_demo(proxy_listen: str, cp_listen: str) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    with tempfile.TemporaryDirectory(prefix="keyway-demo-") as tmp:
        data_dir = Path(tmp)
        async with MockServer("127.0.0.1:0") as mock:
            urls = {"openai": mock.base_url, "anthropic": mock.base_url}
            cp = ControlPlane(
                Settings(listen=cp_listen, data_dir=data_dir, provider_base_urls=urls)
            )
            await cp.start()
            address = f"127.0.0.1:{cp.port}"
            proxy = Proxy(
                ProxySettings(
                    listen=proxy_listen,
                    control_plane=address,
                    token=cp.tokens.data_plane.read_text(encoding="utf-8").strip(),
                )
            )
            await proxy.start()
            try:
                await _show(proxy, address, cp.tokens.admin.read_text(encoding="utf-8").strip())
                await stopping.wait()
            finally:
                await proxy.stop()
                await cp.stop()


async def _show(proxy: Proxy, address: str, admin_token: str) -> None:
    url = f"http://127.0.0.1:{proxy.port}"
    print(f"\nkeyway demo: mock upstream, control plane {address}, proxy {url}")
    token, revision = await _seed(address, admin_token)
    applied = asyncio.Event()
    proxy.state.listeners.append(
        lambda _, table: applied.set() if table.version >= revision else None
    )
    if proxy.state.table is None or proxy.state.table.version < revision:
        await applied.wait()
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}]}
    async with httpx.AsyncClient(base_url=url) as client:
        for attempt in (1, 2):
            r = await client.post(
                "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {token}"}
            )
            print(
                f"\nrequest {attempt}: {r.status_code}, served by key "
                f"{r.headers['x-keyway-provider-key-id']} after "
                f"{r.headers['x-keyway-attempts']} attempt(s)\n  "
                + r.json()["choices"][0]["message"]["content"]
            )
    print(
        "\nThe first key answers 429: the proxy fails over to the backup and holds the"
        " limited key back until its Retry-After.\nTry it yourself:\n\n"
        f"  export OPENAI_BASE_URL={url}/v1 OPENAI_API_KEY={token}\n"
        "  .venv/bin/python -c 'import openai; print(openai.OpenAI().chat.completions"
        '.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])'
        ".choices[0].message.content)'\n\nPress Ctrl-C to stop.",
        flush=True,
    )
