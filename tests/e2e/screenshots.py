"""`make screenshots`: a PNG of each console page, taken in Chromium against a real stack
with a little data in it (two provider keys, a configuration, an access key and a few
requests through the proxy).

    python -m tests.e2e.screenshots OUT_DIR
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import openai

from .browser import chromium, console_page, sign_in
from .stack import running_stack

PAGES = {
    "sign-in": "",
    "providers": "#/providers",
    "provider-keys": "#/providers/openai",
    "access-keys": "#/access-keys",
    "configurations": "#/configurations",
    "configuration-editor": "#/configurations/{configuration}",
    "proxies": "#/proxies",
    "usage": "#/usage",
}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as data, running_stack(Path(data)) as stack:
        primary = stack.add_provider_key("openai", "sk-mock-ok-primary-key", "Primary")
        backup = stack.add_provider_key("openai", "sk-mock-ok-backup-key", "Backup")
        configuration = stack.add_route(
            "My app", "openai", [primary, backup], access={"providers": {"allow": ["openai"]}}
        )
        _, token = stack.add_access_key(configuration)
        stack.wait_synced()
        with openai.OpenAI(api_key=token, base_url=f"{stack.proxy_url}/v1") as client:
            for model in ["gpt-4o", "gpt-4o", "gpt-4o-mini"]:
                client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "Hello"}]
                )
        with chromium() as browser, console_page(browser, stack.http_url) as page:
            page.goto("/")
            page.get_by_label("Token").wait_for()
            page.screenshot(path=str(out / "sign-in.png"))
            sign_in(page, stack.admin_token)
            for name, target in PAGES.items():
                if not target:
                    continue
                page.goto("/console/" + target.format(configuration=configuration))
                page.get_by_role("heading", level=1).wait_for()
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(out / f"{name}.png"), full_page=True)
                print(out / f"{name}.png")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "control_plane/console/screenshots"))
