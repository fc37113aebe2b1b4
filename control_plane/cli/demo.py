"""`keyway demo`: the whole stack against a mock upstream, showing failover.

Everything runs in one process on loopback with a throwaway data directory;
the keys are created through the real admin API, as a user would. It prints
how to call it with the OpenAI SDK and how to administer it with
`keyway admin` while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import tempfile
from pathlib import Path

import grpc
import httpx
from keyway.v1 import (
    access_keys_pb2,
    access_keys_pb2_grpc,
    accounts_pb2,
    accounts_pb2_grpc,
    provider_keys_pb2,
    provider_keys_pb2_grpc,
)

from control_plane.bootstrap import ADMIN_FILE
from control_plane.server import ControlPlane, Settings
from data_plane.mock_upstream.server import MockServer
from data_plane.runner import ProxyRunner, ProxySettings

_KEYS = (
    ("openai", "primary (rate-limited)", "sk-mock-429-30-primary"),
    ("openai", "backup", "sk-mock-ok-backup"),
    ("anthropic", "claude", "sk-mock-ok-claude"),
)


async def _seed(address: str, admin_token: str) -> tuple[str, int]:
    """Creates the demo's keys; returns the access token and the snapshot version that
    holds them."""
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
        version = await _published(channel, metadata)
    return access.token, version


async def _published(channel: grpc.aio.Channel, metadata: tuple[tuple[str, str]]) -> int:
    """The version of the first published snapshot with the account's latest write (an
    etag says nothing about it: etags are opaque)."""
    accounts = accounts_pb2_grpc.AccountServiceStub(channel)
    while True:
        response = await accounts.GetAccount(accounts_pb2.GetAccountRequest(), metadata=metadata)
        status = response.account.snapshot_status
        if status.state == accounts_pb2.ACCOUNT_SNAPSHOT_STATE_PUBLISHED:
            return status.published_version
        await asyncio.sleep(0.02)


async def run_demo(proxy_listen: str, cp_listen: str) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    # Whatever started is stopped again, in reverse order, also when a later part fails.
    async with contextlib.AsyncExitStack() as running:
        data_dir = Path(running.enter_context(tempfile.TemporaryDirectory(prefix="keyway-demo-")))
        mock = await running.enter_async_context(MockServer("127.0.0.1:0"))
        urls = {"openai": mock.base_url, "anthropic": mock.base_url}
        cp = ControlPlane(Settings(listen=cp_listen, data_dir=data_dir, provider_base_urls=urls))
        running.push_async_callback(cp.stop)
        await cp.start()
        address = f"{cp_listen.rpartition(':')[0]}:{cp.port}"
        proxy = ProxyRunner(
            ProxySettings(
                listen=proxy_listen,
                control_plane=address,
                token=cp.tokens.data_plane.read_text(encoding="utf-8").strip(),
            )
        )
        running.push_async_callback(proxy.stop)
        await proxy.start()
        await _show(proxy, address, data_dir)
        await stopping.wait()


async def _show(proxy: ProxyRunner, address: str, data_dir: Path) -> None:
    url = f"http://{proxy.settings.listen.rpartition(':')[0]}:{proxy.port}"
    print(f"\nkeyway demo: mock upstream, control plane {address}, proxy {url}")
    admin_token = (data_dir / ADMIN_FILE).read_text(encoding="utf-8").strip()
    token, version = await _seed(address, admin_token)
    applied = asyncio.Event()
    proxy.state.listeners.append(
        lambda _, table: applied.set() if table.version >= version else None
    )
    if proxy.state.table is None or proxy.state.table.version < version:
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
    keyway = _keyway_command()
    print(
        "\nThe first key answers 429: the proxy fails over to the backup and holds the"
        " limited key back until its Retry-After.\n\nCall it yourself:\n\n"
        f"  export OPENAI_BASE_URL={url}/v1 OPENAI_API_KEY={token}\n"
        f"  {Path(sys.executable)} -c 'import openai; print(openai.OpenAI().chat.completions"
        '.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])'
        ".choices[0].message.content)'\n\n"
        f"Administer it (its data dir {data_dir} is deleted when the demo stops):\n\n"
        f"  export KEYWAY_ADDR={address} KEYWAY_DATA_DIR={data_dir}\n"
        f"  {keyway} admin provider-keys list    # LAST ERROR: the rate-limited key\n"
        f"  {keyway} admin access-keys list\n"
        f"  {keyway} admin data-planes list      # the proxy, IN_SYNC\n"
        "\nPress Ctrl-C to stop.",
        flush=True,
    )


def _keyway_command() -> str:
    """How this process was started (`.venv/bin/keyway` under `make demo`), else `keyway`."""
    started = Path(sys.argv[0])
    return str(started) if started.name == "keyway" else "keyway"
