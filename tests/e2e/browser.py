"""A real browser for the console tests: Playwright driving Debian's Chromium.

One browser per test module (starting one costs about a second); each test gets a fresh
context, so cookies and storage never leak from one test into the next.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, BrowserContext, Dialog, Page, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # --no-sandbox: the tests run as root in a container, where Chromium's sandbox cannot start.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def console_page(browser: Browser, base_url: str, **options: object) -> Iterator[Page]:
    """A page in a context of its own whose scripts may not throw or alert unnoticed."""
    context: BrowserContext = browser.new_context(base_url=base_url, **options)  # type: ignore[arg-type]
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    failures: list[str] = []

    def dialog(opened: Dialog) -> None:
        failures.append(f"dialog: {opened.message}")
        opened.dismiss()

    page.on("pageerror", lambda error: failures.append(f"script error: {error}"))
    page.on("dialog", dialog)
    try:
        yield page
    finally:
        context.close()
    assert not failures, failures


def sign_in(page: Page, token: str) -> None:
    page.goto("/")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for()
