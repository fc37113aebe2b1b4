"""The console's Usage page against a real stack: a request that failed over shows up in the
charts and the table per day, by model and by provider key, and its request id finds every
attempt it made."""

from __future__ import annotations

import openai
from playwright.sync_api import Browser, expect

from .browser import console_page, sign_in
from .stack import Stack, wait_until


def test_usage_shows_requests_per_day_and_a_request_id_finds_its_attempts(
    browser: Browser, stack: Stack
) -> None:
    limited = stack.add_provider_key("openai", "sk-mock-429-usage-first", "Limited")
    serving = stack.add_provider_key("openai", "sk-mock-ok-usage-second", "Serving")
    configuration = stack.add_route("Usage", "openai", [limited, serving])
    access_key, token = stack.add_access_key(configuration)
    stack.wait_synced()
    client = openai.OpenAI(api_key=token, base_url=f"{stack.proxy_url}/v1", max_retries=0)
    stack.clients.append(client)
    reply = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Hello"}]
    )
    assert reply.headers["x-keyway-attempts"] == "2"
    request_id = reply.headers["x-keyway-request-id"]

    with console_page(browser, stack.http_url) as page:
        sign_in(page, stack.admin_token)
        page.get_by_role("link", name="Usage").click()
        expect(page.get_by_role("heading", name="Usage", exact=True)).to_be_visible()

        def counted() -> bool:
            page.get_by_role("button", name="Show usage").click()
            page.wait_for_load_state("networkidle")
            return page.get_by_role("row").filter(has_text="gpt-4o").count() > 0

        wait_until(counted, 60, "the request to reach the usage page")
        expect(page.get_by_role("img", name="Requests per day by model")).to_be_visible()
        expect(page.get_by_role("img", name="Tokens per day by model")).to_be_visible()
        expect(page.get_by_role("img", name="Cost per day by model")).to_be_visible()

        page.get_by_label("Group by").select_option(label="Provider key")
        page.get_by_role("button", name="Show usage").click()
        expect(page.get_by_role("row").filter(has_text=serving)).to_be_visible()
        page.get_by_label("Group by").select_option(label="Access key")
        page.get_by_role("button", name="Show usage").click()
        expect(page.get_by_role("row").filter(has_text=access_key)).to_be_visible()

        page.get_by_label("Request id").fill(request_id)
        page.get_by_role("button", name="Find request").click()
        attempts = page.get_by_role("table", name=f"Attempts of {request_id}")
        expect(attempts.get_by_role("row").filter(has_text=limited)).to_contain_text("429")
        expect(attempts.get_by_role("row").filter(has_text=serving)).to_contain_text("success")

        page.get_by_label("Request id").fill("req_doesnotexist")
        page.get_by_role("button", name="Find request").click()
        expect(
            page.get_by_role("alert").filter(has_text="no request req_doesnotexist")
        ).to_be_visible()
