"""The licenses pages in a real browser: a virtual account short of licenses (a real agent
reports its usage), a pool line added through the page's form with the license chosen from
the catalog, and its compliance seen in colour and words; screenshots for docs/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Page, expect

from satellite.api.context import Services
from tests.conftest import BASIC, CUWL, ENHANCED, Api
from tests.helpers.accounts import create_va
from tests.helpers.api import new_agent, new_token
from tests.helpers.browser import PageErrors, make_user, screenshot, sign_in

pytestmark = pytest.mark.browser


async def test_add_a_pool_line_and_see_compliance(
    base_url: str,
    services: Services,
    admin: Api,
    server: TestServer,
    tmp_path: Path,
    page: Page,
    page_errors: PageErrors,
) -> None:
    password = await make_user(services, "lena", "account-admin", ["Acme"])
    await create_va(admin, "Acme", "Voice", "desk phones")
    status, body = await admin.post(
        "/api/v1/accounts/Acme/virtual-accounts/Voice/license-pool",
        {"entitlementTag": CUWL, "quantity": 2},
    )
    assert status == 200, body
    for serial, va, usage in (
        ("FCH0001", "Voice", {BASIC: 4}),
        ("FCH0002", "DEFAULT", {ENHANCED: 1}),
    ):
        agent = new_agent(tmp_path, server, serial)
        await agent.register(await new_token(admin, va=va))
        await agent.report_usage(usage)

    await sign_in(page, base_url, "lena", password)
    async with page.expect_navigation():
        await page.locator("table#accounts a", has_text="Acme").click()
    async with page.expect_navigation():
        await page.locator("#account-pages a.licenses").click()
    await expect(page.locator("h1")).to_contain_text("Licenses")
    await screenshot(page, "licenses")

    async with page.expect_navigation():
        await page.locator("h2 a", has_text="Voice").click()
    # The row whose license (its first cell) is Basic: the CUWL row names Basic as it lends.
    named_basic = page.locator("td:first-child", has_text=re.compile(r"^UC Manager Basic"))
    basic = page.locator("#positions tr", has=named_basic)
    await expect(basic.locator("td.compliance")).to_have_text("Out of compliance")
    red = await basic.locator("td.compliance").evaluate("cell => getComputedStyle(cell).color")

    form = page.locator("form#add-pool-line")
    await form.locator("select[name=entitlement_tag]").select_option(BASIC)
    await form.locator("input[name=quantity]").fill("2")
    async with page.expect_navigation():
        await form.locator("button[type=submit]").click()
    await expect(page.locator("table#pool")).to_contain_text("UC Manager Basic License (12.x)")
    await expect(basic.locator("td.compliance")).to_have_text("In compliance")
    await expect(basic.locator("td.borrowing")).to_contain_text(
        "2 borrowed from UC Manager CUWL License (12.x)"
    )
    green = await basic.locator("td.compliance").evaluate("cell => getComputedStyle(cell).color")
    assert red != green  # the colour says it too
    await screenshot(page, "pool")
    await page_errors.assert_none(page)
