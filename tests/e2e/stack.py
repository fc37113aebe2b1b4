"""Keyway as users run it: separate processes on loopback.

A mock upstream, a control plane and a proxy, each started with the real
`keyway` command; the test talks to them only over their public interfaces
(gRPC admin API, HTTP, the mock's observation endpoint).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import openai
from keyway.v1 import (
    access_key_configurations_pb2 as cfg,
)
from keyway.v1 import (
    access_key_configurations_pb2_grpc,
    access_keys_pb2,
    access_keys_pb2_grpc,
    accounts_pb2,
    accounts_pb2_grpc,
    data_planes_pb2,
    data_planes_pb2_grpc,
    provider_keys_pb2,
    provider_keys_pb2_grpc,
)
from openai.types.chat import ChatCompletionMessageParam

KEYWAY = str(Path(sys.executable).parent / "keyway")
# The control plane's HTTP listener on a free port (its default, 8081, may be taken).
HTTP_ANY = ("--http-listen", "127.0.0.1:0")
_HTTP_API = re.compile(r"keyway: HTTP API on (\S+)")
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello"}]
_LISTENING = re.compile(r"listening on (?:https?://)?(\S+:\d+)")


class Process:
    """A `keyway …` child whose output is collected, and which is always reaped."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.args = args
        self.lines: list[str] = []
        self._address = threading.Event()
        self.address = ""
        self.proc = subprocess.Popen(
            [KEYWAY, "--log-level", "INFO", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            match = _LISTENING.search(line)
            if match and line.startswith("keyway:") and not self._address.is_set():
                self.address = match.group(1)
                self._address.set()

    def wait_listening(self, timeout: float = 20) -> str:
        if not self._address.wait(timeout):
            self.stop()
            raise RuntimeError(f"{self.name} did not start:\n" + "\n".join(self.lines))
        return self.address

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, as when a machine dies."""
        self.proc.kill()
        self.stop()

    def respawn(self, **replace: str) -> Process:
        """The same command again, with `--flag value` pairs replaced (e.g. listen=...)."""
        args = list(self.args)
        for flag, value in replace.items():
            args[args.index("--" + flag.replace("_", "-")) + 1] = value
        return Process(self.name, args)

    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Traffic:
    """Clients calling the proxy in a loop; every failure is kept."""

    def __init__(self, stack: Stack, token: str, clients: int = 3) -> None:
        self.failures: list[BaseException] = []
        self.served = 0
        self._stop = threading.Event()
        self._client = openai.OpenAI(
            api_key=token, base_url=f"{stack.proxy_url}/v1", max_retries=0, timeout=10
        )
        stack.clients.append(self._client)
        self._threads = [threading.Thread(target=self._run) for _ in range(clients)]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._client.chat.completions.create(model="gpt-4o", messages=HELLO)
                self.served += 1
            except Exception as error:  # any failure fails the test
                self.failures.append(error)

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


@dataclass
class Stack:
    data_dir: Path
    mock: Process
    control_plane: Process
    proxy: Process
    channel: grpc.Channel
    admin_token: str
    processes: list[Process] = field(default_factory=list)
    clients: list[Any] = field(default_factory=list)
    """SDK clients made by tests; closed with the stack so no socket leaks."""

    @property
    def mock_url(self) -> str:
        return f"http://{self.mock.address}"

    @property
    def proxy_url(self) -> str:
        return f"http://{self.proxy.address}"

    @property
    def http_url(self) -> str:
        """The control plane's HTTP API, as its start-up line names it."""
        for line in self.control_plane.lines:
            if match := _HTTP_API.match(line):
                return match.group(1)
        raise AssertionError("the control plane printed no HTTP API line")

    @property
    def operator_token(self) -> str:
        return (self.data_dir / "operator.token").read_text().strip()

    @property
    def account_id(self) -> str:
        """The account of `admin_token` (the one made on first start)."""
        stub = accounts_pb2_grpc.AccountServiceStub(self.channel)
        return stub.GetAccount(accounts_pb2.GetAccountRequest(), metadata=self.auth).account.id

    @property
    def auth(self) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {self.admin_token}"),)

    # -- admin helpers ---------------------------------------------------------------

    def add_provider_key(self, provider: str, value: str, name: str = "") -> str:
        stub = provider_keys_pb2_grpc.ProviderKeyServiceStub(self.channel)
        key = stub.CreateProviderKey(
            provider_keys_pb2.CreateProviderKeyRequest(
                provider_key=provider_keys_pb2.ProviderKey(
                    provider_id=provider, name=name or value[-12:]
                ),
                value=value,
            ),
            metadata=self.auth,
        ).provider_key
        return key.id

    def rotate_provider_key(self, key_id: str, value: str) -> None:
        stub = provider_keys_pb2_grpc.ProviderKeyServiceStub(self.channel)
        stub.RotateProviderKey(
            provider_keys_pb2.RotateProviderKeyRequest(id=key_id, value=value),
            metadata=self.auth,
        )

    def delete_provider_key(self, key_id: str) -> None:
        stub = provider_keys_pb2_grpc.ProviderKeyServiceStub(self.channel)
        stub.DeleteProviderKey(
            provider_keys_pb2.DeleteProviderKeyRequest(id=key_id), metadata=self.auth
        )

    def provider_key(self, key_id: str) -> provider_keys_pb2.ProviderKey:
        stub = provider_keys_pb2_grpc.ProviderKeyServiceStub(self.channel)
        return stub.GetProviderKey(
            provider_keys_pb2.GetProviderKeyRequest(id=key_id), metadata=self.auth
        ).provider_key

    def add_configuration(self, doc: dict[str, Any]) -> str:
        from google.protobuf import json_format

        message = json_format.ParseDict(doc, cfg.AccessKeyConfiguration())
        stub = access_key_configurations_pb2_grpc.AccessKeyConfigurationServiceStub(self.channel)
        created = stub.CreateAccessKeyConfiguration(
            cfg.CreateAccessKeyConfigurationRequest(configuration=message), metadata=self.auth
        ).configuration
        return created.id

    def add_route(self, name: str, provider: str, key_ids: list[str], **more: Any) -> str:
        """A configuration whose one rule tries these keys of `provider` in order."""
        steps = [{"type": "user", "keys": [{"id": k} for k in key_ids]}]
        rules = [{"provider": provider, "steps": steps}]
        return self.add_configuration({"name": name, "router": {"rules": rules}, **more})

    def add_access_key(self, configuration_id: str = "") -> tuple[str, str]:
        stub = access_keys_pb2_grpc.AccessKeyServiceStub(self.channel)
        created = stub.CreateAccessKey(
            access_keys_pb2.CreateAccessKeyRequest(
                access_key=access_keys_pb2.AccessKey(name="e2e", configuration_id=configuration_id)
            ),
            metadata=self.auth,
        )
        return created.access_key.id, created.token

    def delete_access_key(self, key_id: str) -> None:
        stub = access_keys_pb2_grpc.AccessKeyServiceStub(self.channel)
        stub.DeleteAccessKey(access_keys_pb2.DeleteAccessKeyRequest(id=key_id), metadata=self.auth)

    def data_planes(self) -> list[data_planes_pb2.DataPlane]:
        stub = data_planes_pb2_grpc.DataPlaneServiceStub(self.channel)
        response = stub.ListDataPlanes(data_planes_pb2.ListDataPlanesRequest(), metadata=self.auth)
        return list(response.data_planes)

    def published_version(self, timeout: float = 10) -> int:
        """The version of a published snapshot that holds every write to our account.

        Asked of the control plane (etags are opaque): the account's snapshot status turns
        PUBLISHED once its latest write is in the published snapshot.
        """
        stub = accounts_pb2_grpc.AccountServiceStub(self.channel)
        version = 0

        def published() -> bool:
            nonlocal version
            status = stub.GetAccount(
                accounts_pb2.GetAccountRequest(), metadata=self.auth
            ).account.snapshot_status
            version = status.published_version
            return status.state == accounts_pb2.ACCOUNT_SNAPSHOT_STATE_PUBLISHED

        wait_until(published, timeout, "our latest write to be published")
        return version

    def wait_synced(self, timeout: float = 10) -> None:
        """Until every connected proxy serves a snapshot with our latest write."""
        written = self.published_version(timeout)

        def synced() -> bool:
            nodes = [
                n
                for n in self.data_planes()
                if n.state != data_planes_pb2.DATA_PLANE_STATE_DISCONNECTED
            ]
            return bool(nodes) and all(
                n.state == data_planes_pb2.DATA_PLANE_STATE_IN_SYNC and n.applied_version >= written
                for n in nodes
            )

        wait_until(synced, timeout, "proxies to apply the latest snapshot")

    # -- mock upstream observation -------------------------------------------------------

    def upstream_requests(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = httpx.get(f"{self.mock_url}/_mock/requests").json()
        return records

    def reset_upstream(self) -> None:
        httpx.post(f"{self.mock_url}/_mock/reset")


@contextmanager
def running_stack(
    data_dir: Path,
    *,
    mock_latency_ms: float = 0.0,
    control_plane_args: Sequence[str] = (),
    proxy_args: Sequence[str] = (),
) -> Iterator[Stack]:
    processes: list[Process] = []
    channel: grpc.Channel | None = None
    stack: Stack | None = None
    try:
        mock = Process(
            "mock upstream",
            ["mock-upstream", "--listen", "127.0.0.1:0", "--latency-ms", f"{mock_latency_ms:g}"],
        )
        processes.append(mock)
        mock_address = mock.wait_listening()
        control_plane = Process(
            "control plane",
            [
                "control-plane",
                "--listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
                "--data-dir",
                str(data_dir),
                "--provider-base-url",
                f"openai=http://{mock_address}/v1",
                "--provider-base-url",
                f"anthropic=http://{mock_address}/v1",
                *control_plane_args,
            ],
        )
        processes.append(control_plane)
        cp_address = control_plane.wait_listening()
        proxy = Process(
            "proxy",
            [
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--control-plane",
                cp_address,
                "--data-plane-token-file",
                str(data_dir / "data-plane.token"),
                "--cache-dir",
                str(data_dir / "proxy-cache"),
                "--node-id",
                "e2e-proxy",
                *proxy_args,
            ],
        )
        processes.append(proxy)
        proxy.wait_listening()
        channel = grpc.insecure_channel(cp_address)
        stack = Stack(
            data_dir=data_dir,
            mock=mock,
            control_plane=control_plane,
            proxy=proxy,
            channel=channel,
            admin_token=(data_dir / "admin.token").read_text().strip(),
            processes=processes,
        )
        stack.wait_synced()
        yield stack
    finally:
        if stack is not None:
            for client in stack.clients:
                client.close()
        if channel is not None:
            channel.close()
        for process in reversed(processes):
            process.stop()
