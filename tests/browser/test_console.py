"""The console's first slice in a real browser, as a person uses it: sign in and out through
the form, a wrong password, what a viewer sees, the language switch; screenshots for docs/.

Written to the contract of the console (forms, ids and cookies named there), not to its
markup otherwise.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from satellite.api.context import Services
from tests.helpers.browser import PageErrors, make_user, screenshot, sign_in

pytestmark = pytest.mark.browser

SESSION = "satellite_session"


async def session_cookie(context: BrowserContext) -> dict[str, object] | None:
    for cookie in await context.cookies():
        if cookie.get("name") == SESSION:
            return dict(cookie)
    return None


async def test_sign_in_and_sign_out_through_the_form(
    base_url: str, services: Services, browser: Browser, context: BrowserContext, page: Page
) -> None:
    password = await make_user(services, "olga", "account-admin", ["Acme", "Globex"])
    await make_user(services, "other", "account-admin", ["Initech"])

    await page.goto(base_url + "/")
    await expect(page).to_have_url(base_url + "/sign-in")
    await screenshot(page, "sign-in")

    await sign_in(page, base_url, "olga", password)
    await expect(page).to_have_url(base_url + "/accounts")
    cookie = await session_cookie(context)
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/"

    await expect(page.locator("h1")).not_to_be_empty()
    names = page.locator("table#accounts tr td")
    await expect(names.filter(has_text=re.compile(r"^\s*Acme\s*$"))).to_have_count(1)
    await expect(names.filter(has_text=re.compile(r"^\s*Globex\s*$"))).to_have_count(1)
    # An account admin sees only its own accounts.
    await expect(names.filter(has_text="Initech")).to_have_count(0)
    await expect(page.locator("header")).to_contain_text("olga")
    await screenshot(page, "accounts")

    # Signed in, / leads to the accounts.
    await page.goto(base_url + "/")
    await expect(page).to_have_url(base_url + "/accounts")

    async with page.expect_navigation():
        await page.locator("form#sign-out [type=submit]").click()
    await expect(page).to_have_url(base_url + "/sign-in")
    await page.goto(base_url + "/accounts")
    await expect(page).to_have_url(base_url + "/sign-in")

    # The session ended on the server: its cookie, kept and sent again, signs no one in.
    replay = await browser.new_context()
    try:
        await replay.add_cookies(
            [{"name": SESSION, "value": str(cookie["value"]), "url": base_url}]
        )
        replayed = await replay.new_page()
        errors = PageErrors()
        errors.watch(replayed)
        await replayed.goto(base_url + "/accounts")
        await expect(replayed).to_have_url(base_url + "/sign-in")
        await errors.assert_none(replayed)
    finally:
        await replay.close()


async def test_a_wrong_password_shows_an_error_and_signs_no_one_in(
    base_url: str, services: Services, context: BrowserContext, page: Page
) -> None:
    await make_user(services, "pavel", "system-admin")
    await sign_in(page, base_url, "pavel", "not the password at all")
    await expect(page.locator(".error")).to_be_visible()
    await expect(page.locator("form#sign-in")).to_be_visible()
    assert await session_cookie(context) is None
    await page.goto(base_url + "/accounts")
    await expect(page).to_have_url(base_url + "/sign-in")


# What sends a change: any form, button or input but the header's sign-out (the language
# switch is links).
WRITE_CONTROLS = "form:not(#sign-out), button:not(#sign-out *), input:not(#sign-out *)"


async def open_account(page: Page, name: str) -> None:
    """From the accounts table, the account's own page, by its link."""
    async with page.expect_navigation():
        await page.locator("table#accounts a", has_text=name).click()


async def test_a_viewer_sees_its_accounts_and_no_write_controls(
    base_url: str, services: Services, browser: Browser, page: Page
) -> None:
    password = await make_user(services, "vera", "account-viewer", ["Acme"])
    admin_password = await make_user(services, "adam", "account-admin", ["Acme", "Other"])
    await sign_in(page, base_url, "vera", password)
    await expect(page).to_have_url(base_url + "/accounts")
    names = page.locator("table#accounts tr td")
    await expect(names.filter(has_text="Acme")).to_have_count(1)
    await expect(names.filter(has_text="Other")).to_have_count(0)
    await expect(page.locator(WRITE_CONTROLS)).to_have_count(0)
    await open_account(page, "Acme")
    await expect(page.locator("h1")).to_contain_text("Acme")
    await expect(page.locator(WRITE_CONTROLS)).to_have_count(0)

    # The same page shows an account admin what it may change: the check above can see them.
    admin_context = await browser.new_context()
    try:
        admin_page = await admin_context.new_page()
        errors = PageErrors()
        errors.watch(admin_page)
        await sign_in(admin_page, base_url, "adam", admin_password)
        await open_account(admin_page, "Acme")
        assert await admin_page.locator(WRITE_CONTROLS).count() > 0
        await errors.assert_none(admin_page)
    finally:
        await admin_context.close()


async def test_the_language_follows_the_browser_and_the_switch(
    base_url: str, services: Services, browser: Browser, page: Page
) -> None:
    # A browser that asks for Chinese gets the console in Chinese.
    chinese = await browser.new_context(locale="zh-CN")
    try:
        asked = await chinese.new_page()
        errors = PageErrors()
        errors.watch(asked)
        await asked.goto(base_url + "/sign-in")
        await expect(asked.locator("html")).to_have_attribute("lang", "zh-CN")
        await errors.assert_none(asked)
    finally:
        await chinese.close()

    # An English browser gets English, and the header's link switches to Chinese for good.
    password = await make_user(services, "li", "account-viewer", ["Acme"])
    await sign_in(page, base_url, "li", password)
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    async with page.expect_navigation():
        await page.locator("header a[href*='lang=zh-CN']").click()
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    await screenshot(page, "accounts-zh-CN")
    await page.goto(base_url + "/accounts")
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    async with page.expect_navigation():
        await page.locator("header a[href*='lang=en']").click()
    await expect(page.locator("html")).to_have_attribute("lang", "en")
