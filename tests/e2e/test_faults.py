"""Fault scenarios with real processes: things die, traffic keeps flowing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from .stack import HELLO, Stack, Traffic, running_stack, wait_until


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    # Each fault test breaks its stack, so none is shared.
    with running_stack(tmp_path / "keyway") as s:
        yield s


def test_control_plane_killed_and_restarted_under_load(stack: Stack) -> None:
    stack.add_provider_key("openai", "sk-mock-ok-steady")
    _, token = stack.add_access_key()
    stack.wait_synced()
    with Traffic(stack, token) as traffic:
        wait_until(lambda: traffic.served > 20, what="traffic to flow")
        address = stack.control_plane.address
        stack.control_plane.kill()
        served_before = traffic.served
        wait_until(
            lambda: traffic.served > served_before + 50, what="serving without a control plane"
        )
        stack.control_plane = stack.control_plane.respawn(listen=address)
        stack.processes.append(stack.control_plane)
        stack.control_plane.wait_listening()
        # The proxy reconnects, and a write made after the restart reaches it.
        stack.add_provider_key("openai", "sk-mock-ok-after-restart")
        stack.wait_synced(timeout=20)
        served_after = traffic.served
        wait_until(lambda: traffic.served > served_after + 20, what="serving after the restart")
    assert traffic.failures == []


def test_proxy_restarted_while_the_control_plane_is_down_serves_from_its_cache(
    stack: Stack,
) -> None:
    stack.add_provider_key("openai", "sk-mock-ok-cached")
    _, token = stack.add_access_key()
    stack.wait_synced()
    stack.control_plane.kill()
    stack.proxy.kill()
    stack.proxy = stack.proxy.respawn(listen="127.0.0.1:0")
    stack.processes.append(stack.proxy)
    stack.proxy.wait_listening()
    ready = httpx.get(f"{stack.proxy_url}/readyz")
    assert ready.status_code == 200
    metrics = httpx.get(f"{stack.proxy_url}/metrics").text
    assert "keyway_snapshot_from_cache 1" in metrics
    assert "keyway_snapshot_connected 0" in metrics
    client = openai.OpenAI(api_key=token, base_url=f"{stack.proxy_url}/v1", max_retries=0)
    stack.clients.append(client)
    reply = client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert "ok-cached" in (reply.choices[0].message.content or "")
    # A proxy with neither cache nor control plane is alive but not ready.
    bare = stack.proxy.respawn(listen="127.0.0.1:0", cache_dir=str(stack.data_dir / "empty"))
    stack.processes.append(bare)
    address = bare.wait_listening()
    assert httpx.get(f"http://{address}/healthz").status_code == 200
    assert httpx.get(f"http://{address}/readyz").status_code == 503
