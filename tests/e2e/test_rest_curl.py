"""The README's REST quickstart, run with real curl against a control plane process: the
reference product's create call as written (host and token aside), its key serving an SDK
call through a proxy, and a rotation that keeps the id while the next request uses the new
value."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import openai

from .stack import Stack

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"```sh\n(.*?)```", re.DOTALL)


def quickstart_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index("<!-- rest-quickstart")
    end = text.index("<!-- /rest-quickstart -->")
    return _BLOCK.findall(text[start:end])


def bash(script: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def served_by(stack: Stack, token: str) -> tuple[str, str]:
    """(provider key id, mock label) of one chat completion through the proxy."""
    client = openai.OpenAI(api_key=token, base_url=f"{stack.proxy_url}/v1", max_retries=0)
    stack.clients.append(client)
    stack.reset_upstream()
    reply = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Hello"}]
    )
    labels = [r["label"] for r in stack.upstream_requests()]
    assert len(labels) == 1
    return reply.headers["x-keyway-provider-key-id"], labels[0]


def test_the_readme_curl_quickstart_adds_uses_and_rotates_a_key(
    stack: Stack, tmp_path: Path
) -> None:
    create, rotate = quickstart_blocks()
    assert (
        """curl -X POST $KEYWAY_HTTP/provider-keys -H "Authorization: Bearer $API_KEY" """
        """-H "Content-Type: application/json" \\\n  -d '{"providerId": "openai", """
        """"name": "My OpenAI Key", "value": "sk-mock-ok-my-rest-key"}'"""
    ) in create, "the reference product's create call, as it documents it"
    env = {"KEYWAY_HTTP": stack.http_url, "API_KEY": stack.admin_token}
    ids = bash(create + '\necho "$PK $CFG $TOKEN"', env, tmp_path).split()
    key_id, configuration_id, token = ids[-3:]
    assert key_id.startswith("pk_")
    assert configuration_id.startswith("akc_")
    assert token.startswith("kwak_")
    stack.wait_synced()
    assert served_by(stack, token) == (key_id, "ok-my-rest-key")

    rotated = json.loads(bash(rotate, {**env, "PK": key_id}, tmp_path))
    assert rotated["providerKey"]["id"] == key_id
    assert "my-rotated-key" not in json.dumps(rotated)  # the value is never echoed
    stack.wait_synced()
    assert served_by(stack, token) == (key_id, "ok-my-rotated-key")
