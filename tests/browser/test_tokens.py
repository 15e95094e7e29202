"""The registration tokens page in a real browser: create a token through the form and
copy it to the clipboard with the page's button (copy.js, no inline script)."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from satellite.api.context import Services
from tests.helpers.browser import SCREENSHOT_SIZE, PageErrors, make_user, screenshot, sign_in

pytestmark = pytest.mark.browser


async def test_create_a_token_and_copy_it_to_the_clipboard(
    base_url: str, services: Services, browser: Browser
) -> None:
    password = await make_user(services, "tara", "account-admin", ["Acme"])
    context = await browser.new_context(viewport=SCREENSHOT_SIZE, locale="en-US")  # type: ignore[arg-type]
    try:
        await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
        page = await context.new_page()
        errors = PageErrors()
        errors.watch(page)
        await sign_in(page, base_url, "tara", password)
        async with page.expect_navigation():
            await page.locator("table#accounts a", has_text="Acme").click()
        async with page.expect_navigation():
            await page.locator("table#virtual-accounts a.tokens").first.click()
        await expect(page.locator("h1")).to_contain_text("DEFAULT")

        form = page.locator("form#create-token")
        await form.locator("input[name=description]").fill("lab phones")
        await form.locator("input[name=number_of_uses]").fill("5")
        async with page.expect_navigation():
            await form.locator("button[type=submit]").click()
        token = (await page.locator("#new-token-value").inner_text()).strip()
        assert len(token) > 20
        await expect(page.locator("table#tokens")).to_contain_text("lab phones")

        button = page.locator("#new-token button[data-copy]")
        await button.click()
        await expect(button).to_have_text("Copied")
        assert await page.evaluate("navigator.clipboard.readText()") == token
        await screenshot(page, "tokens")
        # Served over plain HTTP to another host there is no clipboard API: the token is
        # selected instead, for the user's own Ctrl+C.
        await page.evaluate("Object.defineProperty(navigator, 'clipboard', {value: undefined})")
        await button.click()
        assert await page.evaluate("window.getSelection().toString().trim()") == token
        await errors.assert_none(page)
    finally:
        await context.close()
