"""An SLR reservation round trip through the page, as an operator does it: the request code
from the real agent pasted, licenses chosen, reserved; the authorization code copied and
downloaded as a file, which the agent installs; its confirmation code entered; the
reservation settled. Then the virtual account's export keys page."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from satellite.api.context import Services
from satellite_agent.export import ExportControl
from tests.conftest import ENHANCED, Api
from tests.helpers.api import EXPORT_KEY, FEATURE, VOICE, new_agent, new_product, new_token
from tests.helpers.browser import SCREENSHOT_SIZE, PageErrors, make_user, screenshot, sign_in

pytestmark = pytest.mark.browser


async def test_an_slr_round_trip_through_the_page(
    base_url: str,
    services: Services,
    admin: Api,
    server: TestServer,
    browser: Browser,
    state_dir: Path,
    tmp_path: Path,
) -> None:
    status, body = await admin.post(
        "/api/v1/accounts", {"name": "Acme", "exportControlledAllowed": True}
    )
    assert status == 200, body
    assert (await admin.post("/api/v1/accounts/Acme/virtual-accounts", {"name": "Voice"}))[0] == 200
    for tag, quantity in ((ENHANCED, 10), (EXPORT_KEY, 2)):
        status, body = await admin.post(
            VOICE + "/license-pool", {"entitlementTag": tag, "quantity": quantity}
        )
        assert status == 200, body
    password = await make_user(services, "sara", "account-admin", ["Acme"])
    product = new_product(tmp_path, state_dir, "SLRWEB1")
    product.enable()
    request_code = product.request()

    context = await browser.new_context(
        viewport=SCREENSHOT_SIZE,  # type: ignore[arg-type]
        locale="en-US",
        accept_downloads=True,
    )
    try:
        await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
        page = await context.new_page()
        errors = PageErrors()
        errors.watch(page)
        await sign_in(page, base_url, "sara", password)
        async with page.expect_navigation():
            await page.locator("table#accounts a", has_text="Acme").click()
        voice = page.locator("table#virtual-accounts tr", has_text="Voice")
        async with page.expect_navigation():
            await voice.locator("a.reservations").click()
        await expect(page.locator("h1")).to_contain_text("Voice")

        form = page.locator("form#reserve")
        await form.locator("textarea[name=request_code]").fill(request_code)
        row = form.locator(f'tr:has(input[name=tag][value="{ENHANCED}"])')
        await expect(row.locator("td").nth(1)).to_have_text("10")  # available
        await row.locator("input[name=quantity]").fill("3")
        async with page.expect_navigation():
            await form.locator("button[type=submit]").click()
        shown = page.locator("#authorization-code")
        await expect(shown).to_contain_text("<specificPLR>")
        code = (await shown.inner_text()).strip()
        await screenshot(page, "reservation")

        copy = page.locator("#authorization button[data-copy]")
        await copy.click()
        await expect(copy).to_have_text("Copied")
        assert await page.evaluate("navigator.clipboard.readText()") == code

        async with page.expect_download() as started:
            await page.locator("#download-code").click()
        download = await started.value
        assert download.suggested_filename.startswith("AuthorizationCode_")
        saved = tmp_path / download.suggested_filename
        await download.save_as(saved)
        confirmation = product.install(saved.read_text())
        assert product.authorized() == {ENHANCED: 3}

        confirm = page.locator("form#confirm")
        await confirm.locator("textarea[name=confirmation_code]").fill(confirmation)
        async with page.expect_navigation():
            await confirm.locator("button[type=submit]").click()
        await expect(page.locator("#reservation-status")).to_have_text("Reserved")
        await expect(page.locator("table#confirmed-licenses")).to_contain_text("3")

        # The export keys page, with a key granted to a registered product.
        agent = new_agent(tmp_path, server, "EXPWEB1")
        await agent.register(await new_token(admin))
        await ExportControl(agent).request(FEATURE)
        await page.goto(base_url + "/accounts/Acme/virtual-accounts/Voice/export-keys")
        await expect(page.locator("table#export-keys")).to_contain_text(FEATURE)
        await expect(page.locator("table#export-keys")).to_contain_text("Granted")
        await screenshot(page, "export-keys")
        await errors.assert_none(page)
    finally:
        await context.close()
