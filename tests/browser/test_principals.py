"""The users page in a real browser: a system admin creates a user through the form, signs
out, and that user signs in and sees only its account."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from satellite.api.context import Services
from tests.helpers.browser import PageErrors, make_user, screenshot, sign_in

pytestmark = pytest.mark.browser

PASSWORD = "a password for nora"


async def test_a_system_admin_creates_a_user_who_then_signs_in(
    base_url: str, services: Services, page: Page, page_errors: PageErrors
) -> None:
    await make_user(services, "olga", "account-admin", ["Acme", "Globex"])
    admin_password = await make_user(services, "sam", "system-admin")
    await sign_in(page, base_url, "sam", admin_password)
    async with page.expect_navigation():
        await page.locator("header a.users").click()
    await expect(page).to_have_url(base_url + "/users")

    form = page.locator("form#create-user")
    await form.locator("input[name=username]").fill("nora")
    await form.locator("input[name=password]").fill(PASSWORD)
    await form.locator("select[name=role]").select_option("account-viewer")
    await form.locator("select[name=accounts]").select_option(["Globex"])
    async with page.expect_navigation():
        await form.locator("button[type=submit]").click()
    nora = page.locator("table#users tr", has_text="nora")
    await expect(nora).to_contain_text("Account viewer")
    await expect(nora).to_contain_text("Globex")
    await screenshot(page, "users")

    async with page.expect_navigation():
        await page.locator("form#sign-out button").click()
    await sign_in(page, base_url, "nora", PASSWORD)
    await expect(page).to_have_url(base_url + "/accounts")
    names = page.locator("table#accounts tr td")
    await expect(names.filter(has_text=re.compile(r"^\s*Globex\s*$"))).to_have_count(1)
    await expect(names.filter(has_text="Acme")).to_have_count(0)
    await expect(page.locator("header")).to_contain_text("nora")
    await page_errors.assert_none(page)


async def test_a_fresh_system_admin_creates_the_first_account(
    base_url: str, services: Services, page: Page, page_errors: PageErrors
) -> None:
    password = await make_user(services, "sam", "system-admin")
    await sign_in(page, base_url, "sam", password)
    await expect(page).to_have_url(base_url + "/accounts")
    form = page.locator("form#create-account")
    await form.locator("input[name=name]").fill("Acme")
    await form.locator("input[name=domain]").fill("acme.example")
    await form.locator("input[name=export_controlled_allowed]").check()
    async with page.expect_navigation():
        await form.locator("button[type=submit]").click()
    await expect(page).to_have_url(base_url + "/accounts/Acme")
    await expect(page.locator("table#virtual-accounts")).to_contain_text("DEFAULT")
    settings = page.locator("form#update-account")
    await expect(settings.locator("input[name=domain]")).to_have_value("acme.example")
    await expect(settings.locator("input[name=export_controlled_allowed]")).to_be_checked()
    await screenshot(page, "account")
    await page_errors.assert_none(page)
