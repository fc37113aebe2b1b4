"""The web console in a real browser against a real control plane, proxy and mock upstream:
the quickstart done by clicking (a provider key, an access key, a configuration, the first
SDK request, the key's last use), and what must never happen (a secret on a page, in the
cookie, in browser storage or in the log; markup in a name run as markup)."""

from __future__ import annotations

import json
import re

import httpx
import openai
import pytest
from playwright.sync_api import Browser, Page, expect

from .browser import console_page, sign_in
from .stack import Stack, wait_until

XSS = '<img src=x onerror="alert(1)">'
VALUE = "sk-mock-ok-console-key-1"
ROTATED = "sk-mock-ok-console-key-2"


def served_label(stack: Stack, token: str) -> str:
    client = openai.OpenAI(api_key=token, base_url=f"{stack.proxy_url}/v1", max_retries=0)
    stack.clients.append(client)
    stack.reset_upstream()
    reply = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Hello"}]
    )
    assert reply.choices
    labels = [r["label"] for r in stack.upstream_requests()]
    assert len(labels) == 1
    return str(labels[0])


def storage(page: Page) -> str:
    return str(
        page.evaluate("JSON.stringify([{...localStorage}, {...sessionStorage}, document.cookie])")
    )


def test_the_quickstart_in_the_browser_with_secrets_kept_out(
    browser: Browser, stack: Stack
) -> None:
    with console_page(browser, stack.http_url) as page:
        sign_in(page, stack.admin_token)
        secrets_seen: list[str] = []

        def no_secret_on(page: Page) -> None:
            html = page.content()
            for secret in [stack.admin_token, VALUE, ROTATED, *secrets_seen]:
                assert secret not in html
            assert not any(s in storage(page) for s in [stack.admin_token, *secrets_seen])

        # Providers → Built-in → OpenAI → add a key whose name is markup.
        page.get_by_role("tab", name="Built-in").click()
        page.get_by_role("link", name="openai", exact=True).click()
        expect(page.get_by_role("heading", name="API keys")).to_be_visible()
        expect(page.get_by_text("No API keys yet")).to_be_visible()
        page.get_by_label("Key name").fill(XSS)
        page.get_by_label("Key value").fill(VALUE)
        expect(page.get_by_label("Key value")).to_have_attribute("type", "password")
        page.get_by_role("button", name="Add key").click()
        row = page.get_by_role("row").filter(has_text="sk-mock-ok***ey-1")
        expect(row).to_be_visible()
        expect(row.get_by_role("cell").first).to_contain_text(XSS)  # the name, as text
        assert page.locator("table img").count() == 0
        key_id = row.locator("code").first.inner_text()
        assert key_id.startswith("pk_")
        no_secret_on(page)

        # Access keys → create one, copy its token (shown once).
        page.get_by_role("link", name="Access keys").click()
        expect(page.get_by_text("No access keys yet")).to_be_visible()
        page.get_by_label("Access key name").fill("my app")
        page.get_by_role("button", name="Create access key").click()
        reveal = page.get_by_role("region", name="New access key token")
        expect(reveal.get_by_text("shown only once")).to_be_visible()
        token = reveal.get_by_label("Access key token").input_value()
        assert token.startswith("kwak_")
        reveal.get_by_role("button", name="Copy token").click()
        expect(reveal.get_by_text("Copied.")).to_be_visible()
        assert page.evaluate("navigator.clipboard.readText()") == token
        reveal.get_by_role("button", name="I have copied it").click()
        secrets_seen.append(token)
        no_secret_on(page)

        # The official SDK calls the proxy with the copied token; the key's last use shows.
        stack.wait_synced()
        assert served_label(stack, token) == "ok-console-key-1"
        page.get_by_role("link", name="Providers").click()
        page.get_by_role("link", name="openai", exact=True).click()

        def last_used() -> bool:
            page.reload()
            cells = page.get_by_role("row").filter(has_text=key_id).get_by_role("cell")
            return cells.nth(3).inner_text() not in ("never", "")

        wait_until(last_used, 60, "the key's last use to reach the console")

        # Rotate: the id stays, the page says so, and the next request uses the new value.
        page.get_by_role("row").filter(has_text=key_id).get_by_role("button", name="Rotate").click()
        page.get_by_label("New key value").fill(ROTATED)
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status")).to_contain_text(f"the id {key_id} is unchanged")
        expect(page.get_by_role("row").filter(has_text="sk-mock-ok***ey-2")).to_contain_text(key_id)
        stack.wait_synced()
        assert served_label(stack, token) == "ok-console-key-2"
        no_secret_on(page)

        # A configuration naming a key that does not exist: the error sits at that key.
        page.get_by_role("link", name="Configurations").click()
        page.get_by_role("link", name="New configuration").click()
        page.get_by_label("Name", exact=True).fill("Console app")
        page.get_by_role("button", name="Add router rule").click()
        page.get_by_label("Provider of rule 1").fill("openai")
        page.get_by_label("Key 1 of rule 1", exact=True).fill(key_id)
        page.get_by_role("button", name="Add key to rule 1").click()
        page.get_by_label("Key 2 of rule 1", exact=True).fill("pk_doesnotexist00000")
        page.get_by_role("button", name="Create configuration").click()
        bad = page.get_by_label("Key 2 of rule 1", exact=True)
        expect(bad).to_have_attribute("aria-invalid", "true")
        expect(bad).to_have_accessible_description(
            re.compile(r"router\.rules\[0\]\.steps\[0\]\.keys\[1\]\.id")
        )
        page.get_by_role("button", name="Remove key 2 of rule 1").click()
        page.get_by_role("button", name="Create configuration").click()
        expect(page.get_by_role("status")).to_contain_text("Saved Console app")
        configuration_id = page.locator("h1 + p code").inner_text()
        assert configuration_id.startswith("akc_")
        page.get_by_role("tab", name="JSON").click()
        document = json.loads(page.get_by_label("Configuration JSON").input_value())
        assert document["router"]["rules"][0]["steps"][0]["keys"] == [{"id": key_id}]

        # Assign it to the access key.
        page.get_by_role("link", name="Access keys").click()
        page.get_by_label("Configuration of my app").select_option(configuration_id)
        page.get_by_role("button", name="Assign").click()
        expect(page.get_by_role("status")).to_contain_text(f"my app now uses {configuration_id}")
        stack.wait_synced()
        assert served_label(stack, token) == "ok-console-key-2"

        def access_key_used() -> bool:
            page.reload()
            row = page.get_by_role("row").filter(has_text="my app")
            return row.get_by_role("cell").nth(4).inner_text() not in ("never", "")

        wait_until(access_key_used, 60, "the access key's last use to reach the console")

        # Disabled, the key is refused by the proxy; enabled, it serves again.
        page.get_by_role("row").filter(has_text="my app").get_by_role(
            "button", name="Disable"
        ).click()
        expect(page.get_by_role("status")).to_contain_text("Disabled my app")
        stack.wait_synced()
        with pytest.raises(openai.AuthenticationError, match="is disabled"):
            served_label(stack, token)
        page.get_by_role("row").filter(has_text="my app").get_by_role(
            "button", name="Enable"
        ).click()
        expect(page.get_by_role("status")).to_contain_text("Enabled my app")
        stack.wait_synced()
        assert served_label(stack, token) == "ok-console-key-2"

        # Delete is refused while the configuration routes to the key, in plain words.
        page.get_by_role("link", name="Providers").click()
        page.get_by_role("link", name="openai", exact=True).click()
        row = page.get_by_role("row").filter(has_text=key_id)
        row.get_by_role("button", name="Delete").click()
        row.get_by_role("button", name="Delete for good").click()
        expect(row.get_by_role("alert")).to_contain_text(configuration_id)
        assert stack.provider_key(key_id).id == key_id
        no_secret_on(page)

        # The session cookie is opaque, HttpOnly and SameSite=Strict.
        (cookie,) = page.context.cookies()
        assert cookie["httpOnly"]
        assert cookie["sameSite"] == "Strict"
        assert not cookie["secure"]  # plain HTTP on loopback here
        assert stack.admin_token not in cookie["value"]

        # Sign out ends the session on the server, not only in this tab.
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_label("Token")).to_be_visible()
        replay = httpx.get(
            f"{stack.http_url}/provider-keys", cookies={"keyway_session": cookie["value"]}
        )
        assert replay.status_code == 401

    log = stack.control_plane.output()
    for secret in [stack.admin_token, VALUE, ROTATED, token]:
        assert secret not in log


def test_proxies_page_shows_each_proxy_in_sync(browser: Browser, stack: Stack) -> None:
    with console_page(browser, stack.http_url) as page:
        sign_in(page, stack.admin_token)
        stack.wait_synced()
        (proxy,) = stack.data_planes()
        page.get_by_role("link", name="Proxies").click()
        row = page.get_by_role("row").filter(has_text="IN_SYNC")
        expect(row).to_have_count(1)
        cells = row.get_by_role("cell")
        expect(cells.first).to_contain_text(proxy.node_id)  # the admin's opaque label
        assert int(cells.nth(2).inner_text()) == proxy.applied_version
        assert int(cells.nth(3).inner_text()) == proxy.latest_version


def test_a_phone_width_page_fits_and_keeps_its_controls(browser: Browser, stack: Stack) -> None:
    with console_page(browser, stack.http_url, viewport={"width": 390, "height": 844}) as page:
        sign_in(page, stack.admin_token)
        for path in ["providers", "access-keys", "configurations", "proxies"]:
            page.goto(f"/console/#/{path}")
            expect(page.get_by_role("heading", level=1)).to_be_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def test_a_wrong_token_is_refused_next_to_the_field(browser: Browser, stack: Stack) -> None:
    with console_page(browser, stack.http_url) as page:
        page.goto("/")
        page.get_by_label("Token").fill("kwadm_not-a-real-token")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("token")
        assert page.context.cookies() == []


def test_custom_providers_are_created_and_edited_with_the_apis_messages(
    browser: Browser, stack: Stack
) -> None:
    with console_page(browser, stack.http_url) as page:
        sign_in(page, stack.admin_token)
        page.get_by_role("tab", name="Custom").click()
        panel = page.get_by_role("tabpanel")
        expect(panel.get_by_text("No custom providers yet")).to_be_visible()
        form = page.get_by_role("form", name="Add a custom provider")
        form.get_by_label("Provider id").fill("acme")
        form.get_by_label("Name").fill(XSS)
        form.get_by_label("Base URL").fill("http://10.1.2.3/v1")
        form.get_by_label("Models").fill("acme-large, acme-small")
        form.get_by_role("button", name="Add provider").click()
        expect(form.get_by_label("Provider id")).to_have_accessible_description(
            re.compile(r"provider_id: must be 'x-'")
        )
        form.get_by_label("Provider id").fill("x-acme")
        form.get_by_role("button", name="Add provider").click()
        expect(form.get_by_label("Base URL")).to_have_accessible_description(
            re.compile(r"base_url: points at a private or loopback address")
        )
        form.get_by_label("Base URL").fill("https://llm.acme.example/v1")
        form.get_by_role("button", name="Add provider").click()
        expect(page.get_by_role("tab", name="Custom")).to_have_attribute("aria-selected", "true")
        row = page.get_by_role("tabpanel").get_by_role("row").filter(has_text="x-acme")
        expect(row).to_contain_text("acme-large, acme-small")
        expect(row.get_by_role("cell").nth(1)).to_have_text(XSS)

        row.get_by_role("link", name="x-acme").click()
        edit = page.get_by_role("form", name="Edit custom provider")
        expect(edit.get_by_label("Provider id")).to_be_disabled()
        edit.get_by_label("Name").fill("Acme LLM")
        edit.get_by_role("button", name="Save provider").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Acme LLM")
        expect(page.get_by_text("No API keys yet")).to_be_visible()


def console_keys(stack: Stack, account_id: str) -> list[str]:
    """Names of the account's admin API keys the console made."""
    answer = httpx.get(
        f"{stack.http_url}/api-keys",
        params={"accountId": account_id},
        headers={"Authorization": f"Bearer {stack.operator_token}"},
    )
    assert answer.status_code == 200, answer.text
    names = [k["name"] for k in answer.json().get("adminApiKeys", [])]
    return [n for n in names if "console" in n]


def test_the_operator_switches_accounts_and_sees_proxies_unredacted(
    browser: Browser, stack: Stack
) -> None:
    account_id = stack.account_id
    with console_page(browser, stack.http_url) as page:
        sign_in(page, stack.operator_token)
        expect(page.get_by_role("heading", name="Accounts")).to_be_visible()
        expect(page.get_by_role("link", name="Access keys")).to_have_count(0)
        page.get_by_role("link", name="Proxies").click()
        expect(page.get_by_role("row").filter(has_text="e2e-proxy")).to_contain_text("IN_SYNC")

        page.get_by_role("link", name="Accounts").click()
        page.get_by_role("button", name="Work in Default").click()
        expect(page.get_by_role("tab", name="Built-in")).to_be_visible()
        expect(page.get_by_label("Account", exact=True)).to_have_value(account_id)
        assert console_keys(stack, account_id) == ["web console (operator)"]
        page.get_by_role("link", name="Access keys").click()
        expect(page.get_by_role("heading", name="Access keys")).to_be_visible()

        page.get_by_label("Account", exact=True).select_option("")
        expect(page.get_by_role("heading", name="Accounts")).to_be_visible()
        assert console_keys(stack, account_id) == []

        page.get_by_label("Account", exact=True).select_option(account_id)
        expect(page.get_by_role("tab", name="Built-in")).to_be_visible()
        assert console_keys(stack, account_id) == ["web console (operator)"]
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_label("Token")).to_be_visible()
        assert console_keys(stack, account_id) == []
        assert stack.operator_token not in storage(page)
    assert stack.operator_token not in stack.control_plane.output()


def test_a_configuration_is_reordered_in_the_form_and_checked_in_json(
    browser: Browser, stack: Stack
) -> None:
    first = stack.add_provider_key("openai", "sk-mock-ok-order-first", "First")
    second = stack.add_provider_key("openai", "sk-mock-ok-order-second", "Second")
    configuration = stack.add_route("Ordered", "openai", [first, second])
    _, token = stack.add_access_key(configuration)
    stack.wait_synced()
    assert served_label(stack, token) == "ok-order-first"
    with console_page(browser, stack.http_url) as page:
        sign_in(page, stack.admin_token)
        page.goto(f"/console/#/configurations/{configuration}")
        expect(page.get_by_label("Key 1 of rule 1", exact=True)).to_have_value(first)
        page.get_by_role("button", name="Move key 2 of rule 1 up").click()
        expect(page.get_by_label("Key 1 of rule 1", exact=True)).to_have_value(second)
        page.get_by_role("button", name="Save configuration").click()
        expect(page.get_by_role("status")).to_contain_text("Saved Ordered")
        stack.wait_synced()
        assert served_label(stack, token) == "ok-order-second"

        page.get_by_role("tab", name="JSON").click()
        editor = page.get_by_label("Configuration JSON")
        saved = json.loads(editor.input_value())
        assert saved["router"]["rules"][0]["steps"][0]["keys"] == [{"id": second}, {"id": first}]
        editor.fill("{not json")
        page.get_by_role("button", name="Save configuration").click()
        expect(page.get_by_role("alert").filter(has_text="does not parse")).to_be_visible()
        editor.fill(json.dumps({**saved, "limits": {"concurrency": 0, "requestsPerMinut": 5}}))
        page.get_by_role("button", name="Save configuration").click()
        expect(page.get_by_role("alert").filter(has_text="requestsPerMinut")).to_be_visible()
        assert served_label(stack, token) == "ok-order-second"  # nothing was written


def test_keys_are_renamed_and_access_keys_unassigned(browser: Browser, stack: Stack) -> None:
    key_id = stack.add_provider_key("anthropic", "sk-ant-mock-ok-rename-me", "Old name")
    configuration = stack.add_configuration({"name": "Unassign me"})
    access_key, _ = stack.add_access_key(configuration)
    with console_page(browser, stack.http_url) as page:
        sign_in(page, stack.admin_token)
        page.goto("/console/#/providers/anthropic")
        row = page.get_by_role("row").filter(has_text=key_id)
        row.get_by_role("button", name="Rename").click()
        page.get_by_label("New name").fill("New name")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status")).to_contain_text("Renamed to New name")
        assert stack.provider_key(key_id).name == "New name"

        page.goto("/console/#/access-keys")
        row = page.get_by_role("row").filter(has_text=access_key)
        row.get_by_role("combobox").select_option("")
        row.get_by_role("button", name="Assign").click()
        expect(page.get_by_role("status")).to_contain_text("has no configuration now")
        expect(
            page.get_by_role("row").filter(has_text=access_key).get_by_role("combobox")
        ).to_have_value("")


def test_sign_in_works_from_the_keyboard_alone(browser: Browser, stack: Stack) -> None:
    with console_page(browser, stack.http_url) as page:
        page.goto("/")
        expect(page.get_by_label("Token")).to_be_focused()
        page.keyboard.type(stack.admin_token)
        page.keyboard.press("Enter")
        built_in = page.get_by_role("tab", name="Built-in")
        built_in.focus()
        page.keyboard.press("ArrowRight")
        expect(page.get_by_role("tab", name="Custom")).to_be_focused()
        expect(page.get_by_role("tab", name="Custom")).to_have_attribute("aria-selected", "true")
