"""Product instances in a real browser: a token made through the console's form, a product
registered with it by the real agent, its usage on the list and on its detail's chart."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, Request, expect

from satellite.api.context import Services
from tests.conftest import ENHANCED, Api
from tests.helpers.api import new_agent, new_token
from tests.helpers.browser import PageErrors, make_user, screenshot, sign_in
from tests.helpers.licenses import ENHANCED_NAME

pytestmark = pytest.mark.browser


async def test_a_product_registered_with_a_token_from_the_page_shows_its_usage(
    base_url: str,
    server: TestServer,
    services: Services,
    admin: Api,
    page: Page,
    page_errors: PageErrors,
    tmp_path: Path,
) -> None:
    password = await make_user(services, "tara", "account-admin", ["Acme"])
    status, body = await admin.post(
        "/api/v1/accounts/Acme/virtual-accounts/DEFAULT/license-pool",
        {"entitlementTag": ENHANCED, "quantity": 8},
    )
    assert status == 200, body
    status, body = await admin.post("/api/v1/accounts/Acme/virtual-accounts", {"name": "Lab"})
    assert status == 200, body  # somewhere to transfer to
    await sign_in(page, base_url, "tara", password)
    async with page.expect_navigation():
        await page.locator("table#accounts a", has_text="Acme").click()
    async with page.expect_navigation():
        await page.locator("table#virtual-accounts a.tokens").first.click()
    form = page.locator("form#create-token")
    await form.locator("input[name=description]").fill("phones")
    async with page.expect_navigation():
        await form.locator("button[type=submit]").click()
    token = (await page.locator("#new-token-value").inner_text()).strip()

    # The product registers with the token the page showed, and reports its usage.
    agent = new_agent(tmp_path, server, "FCH0001")
    await agent.register(token)
    for count in (2, 5, 6):
        await agent.report_usage({ENHANCED: count})

    await page.goto(base_url + "/accounts/Acme")
    async with page.expect_navigation():
        await page.locator("table#virtual-accounts a.product-instances").first.click()
    row = page.locator("table#product-instances tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text(socket.gethostname())
    await expect(row).to_contain_text(f"{ENHANCED_NAME}: 6")
    await screenshot(page, "product-instances")

    async with page.expect_navigation():
        await row.locator("a").click()
    await expect(page.locator("#state")).to_have_text("Registered")
    await expect(page.locator("#authorization")).to_have_text("Authorized")
    chart = page.locator("figure.usage-chart svg")
    await expect(chart).to_have_count(1)
    await expect(chart.locator("title")).to_have_text(f"Usage of {ENHANCED_NAME} over time")
    await expect(chart.locator("circle")).to_have_count(3)
    await expect(chart.locator("desc")).to_contain_text("the virtual account owns 8")
    box = await chart.bounding_box()
    assert box is not None
    assert box["width"] > 300  # drawn, not collapsed
    await screenshot(page, "product-instance")
    await page_errors.assert_none(page)


async def test_typing_in_the_search_narrows_the_table_without_a_page_load(
    base_url: str,
    server: TestServer,
    services: Services,
    admin: Api,
    browser: Browser,
    page: Page,
    page_errors: PageErrors,
    tmp_path: Path,
) -> None:
    password = await make_user(services, "tara", "account-admin", ["Acme"])
    token = await new_token(admin, "DEFAULT")
    for serial in ("FCH0001", "FCH0002", "FCH0003"):
        await new_agent(tmp_path, server, serial).register(token)
    listing = base_url + "/accounts/Acme/virtual-accounts/DEFAULT/product-instances"
    await sign_in(page, base_url, "tara", password)
    await page.goto(listing)
    rows = page.locator("table#product-instances tbody tr")
    await expect(rows).to_have_count(3)
    loads: list[str] = []

    def note(request: Request) -> None:
        if request.resource_type == "document":
            loads.append(request.url)

    page.on("request", note)
    search = page.locator("form#instance-filters input[name=udi_serial]")
    await search.press_sequentially("FCH0002")
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text("FCH0002")
    await expect(page).to_have_url(re.compile(r"[?&]udi_serial=FCH0002(&|$)"))
    await expect(search).to_be_focused()  # the form was left as it was being typed
    await page.go_back()  # to the unfiltered list, still without a page load
    await expect(page).to_have_url(listing)
    await expect(rows).to_have_count(3)
    assert loads == []
    # A session that ended meanwhile: the next search leads to the sign-in page.
    await page.context.clear_cookies()
    await search.press_sequentially("FCH")
    await expect(page).to_have_url(base_url + "/sign-in")
    await expect(page.locator("form#sign-in")).to_be_visible()
    await page_errors.assert_none(page)

    # Without script the form is a plain GET.
    plain = await browser.new_context(java_script_enabled=False)
    try:
        bare = await plain.new_page()
        await sign_in(bare, base_url, "tara", password)
        await bare.goto(listing)
        await bare.locator("form#instance-filters input[name=udi_serial]").fill("FCH0003")
        async with bare.expect_navigation():
            await bare.locator("form#instance-filters button[type=submit]").click()
        await expect(bare).to_have_url(re.compile(r"[?&]udi_serial=FCH0003(&|$)"))
        await expect(bare.locator("table#product-instances tbody tr")).to_have_count(1)
    finally:
        await plain.close()
