"""No phantom attempts at the total deadline, with real processes, many times over.

Keys [500, slow, good] and a deadline the slow key outlasts. The slow attempt's timer and
the proxy's deadline check must agree: before they shared one clock and a minimum budget
per attempt, 5-9 of 30 runs listed a third attempt on the healthy key, "Provider did not
answer in time", that never reached the upstream.
"""

from __future__ import annotations

import httpx

from .stack import Process, Stack, wait_until

RUNS = 20


def _proxy_with(stack: Stack, *flags: str) -> Process:
    args = list(stack.proxy.args)
    args[args.index("--node-id") + 1] = "e2e-deadline-proxy"
    args[args.index("--cache-dir") + 1] = str(stack.data_dir / "deadline-proxy-cache")
    process = Process("deadline proxy", [*args, *flags])
    stack.processes.append(process)
    process.wait_listening()
    return process


def test_the_healthy_key_is_never_charged_at_the_deadline(stack: Stack) -> None:
    keys = [
        stack.add_provider_key("openai", value)
        for value in ("sk-mock-500-dl", "sk-mock-slow-5000-dl", "sk-mock-ok-dl")
    ]
    doc = {
        "name": "deadline",
        "router": {
            "rules": [
                {
                    "provider": "openai",
                    "steps": [{"type": "user", "keys": [{"id": k} for k in keys]}],
                }
            ]
        },
    }
    _, token = stack.add_access_key(stack.add_configuration(doc))
    proxy = _proxy_with(stack, "--attempt-timeout", "30", "--total-deadline", "0.5")
    stack.wait_synced()
    stack.reset_upstream()
    failing, slow, healthy = keys
    with httpx.Client(base_url=f"http://{proxy.address}", timeout=30) as http:
        for _ in range(RUNS):
            response = http.post(
                "/v1/chat/completions",
                headers={"authorization": f"Bearer {token}"},
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert response.status_code == 504, response.text
            attempts = response.json()["error"]["attempts"]
            assert [a["provider_key_id"] for a in attempts] == [failing, slow], attempts
            assert response.headers["x-keyway-attempts"] == "2"
    labels = {r["label"] for r in stack.upstream_requests()}
    assert labels == {"500-dl", "slow-5000-dl"}
    # Usage reaches the control plane in batches: once the 500s are there, so is the rest.
    wait_until(lambda: stack.provider_key(failing).last_error.status == 500, what="usage")
    assert not stack.provider_key(healthy).HasField("last_error")
    assert not stack.provider_key(slow).HasField("last_error")
