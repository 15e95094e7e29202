"""Disconnected mode in a real browser, between two daemons, from registration on: the
upstream's operator creates a satellite token on its satellites page (beside its key
fingerprint); the satellite's operator downloads a registration request from its sync
page; the upstream's operator answers it on the "Answer a sync request" page; the
satellite's operator uploads the answer with the fingerprint. Then a sync round trip the
same way: the sync request downloaded, answered at the upstream, the answer uploaded on
the sync page, which shows what it changed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from satellite.api.context import Services
from satellite.config import Settings
from tests.conftest import AiohttpClient, Api
from tests.helpers.browser import SCREENSHOT_SIZE, PageErrors, make_user, screenshot, sign_in
from tests.helpers.sync import SITE, Upstream, open_upstream, pool, setup_site, setup_upstream
from tests.helpers.sync_console import SATELLITES, small_bundles_settings

pytestmark = pytest.mark.browser


@pytest.fixture
def settings(state_dir: Path, db_dsn: str, tmp_path: Path) -> Settings:
    return small_bundles_settings(state_dir, db_dsn, tmp_path)


@pytest.fixture
async def upstream(
    upstream_state_dir: Path, upstream_dsn: str, tmp_path: Path, aiohttp_client: AiohttpClient
) -> AsyncIterator[Upstream]:
    async with open_upstream(upstream_state_dir, upstream_dsn, tmp_path, aiohttp_client) as up:
        yield up


async def test_a_disconnected_registration_and_sync_round_trip_by_file_in_the_browser(
    base_url: str,
    page: Page,
    page_errors: PageErrors,
    browser: Browser,
    upstream: Upstream,
    admin: Api,
    services: Services,
    tmp_path: Path,
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    password = await make_user(services, "sam", "account-admin", ["Site"])
    await make_user(upstream.services, "uma", "account-admin", ["Acme"])
    upstream_url = upstream.url.rstrip("/")
    # The two daemons are two hosts to their operators: a browser context each (cookies
    # are per host name, not per port, and both listen on 127.0.0.1 here).
    other = await browser.new_context(viewport=SCREENSHOT_SIZE, locale="en-US")  # type: ignore[arg-type]
    try:
        up_page = await other.new_page()
        up_errors = PageErrors()
        up_errors.watch(up_page)

        # At the upstream: a satellite token, and the fingerprint to check its answer by.
        await sign_in(up_page, upstream_url, "uma", password)
        await up_page.goto(upstream_url + SATELLITES)
        fingerprint = await up_page.locator("#upstream-fingerprint").inner_text()
        async with up_page.expect_navigation():
            await up_page.locator("#create-satellite-token button[type=submit]").click()
        token = await up_page.locator("#new-satellite-token-value").inner_text()

        # At the satellite: a registration request downloaded from the sync page.
        await sign_in(page, base_url, "sam", password)
        await page.goto(base_url + "/accounts/Site")
        async with page.expect_navigation():
            await page.locator("#account-pages a.sync").click()
        await expect(page.locator("#not-registered")).to_be_visible()
        await screenshot(page, "sync-register")
        form = page.locator("#registration-request")
        await form.locator("input[name=token]").fill(token)
        await form.locator("input[name=name]").fill("site-1")
        async with page.expect_download() as downloading:
            await form.locator("button[type=submit]").click()
        registration = await downloading.value
        assert registration.suggested_filename == "registration-request-Site.bundle"
        registration_file = tmp_path / "browser-registration.request"
        await registration.save_as(registration_file)

        # At the upstream: answered on its page.
        async with up_page.expect_navigation():
            await up_page.locator("#answer-link").click()
        await up_page.locator("#answer-request input[name=bundle]").set_input_files(
            registration_file
        )
        async with up_page.expect_download() as downloading:
            await up_page.locator("#answer-request button[type=submit]").click()
        registered = await downloading.value
        assert registered.suggested_filename == "registration-answer-Acme.bundle"
        registered_file = tmp_path / "browser-registration.answer"
        await registered.save_as(registered_file)

        # At the satellite: the answer uploaded with the fingerprint: registered.
        await page.reload()
        form = page.locator("#registration-answer")
        await form.locator("input[name=upstream_fingerprint]").fill(fingerprint)
        await form.locator("input[name=answer]").set_input_files(registered_file)
        async with page.expect_navigation():
            await form.locator("button[type=submit]").click()

        # At the satellite: the sync page in disconnected mode, the request downloaded.
        await expect(page.locator("#sync-status td.mode")).to_have_text("Disconnected")
        async with page.expect_download() as downloading:
            await page.locator("#download-request button[type=submit]").click()
        request_file = tmp_path / "browser-request.bundle"
        request = await downloading.value
        assert request.suggested_filename == "sync-request-Site-1.bundle"
        await request.save_as(request_file)

        # At the upstream: answered through its page, the answer downloaded.
        await up_page.goto(upstream_url + SATELLITES)
        async with up_page.expect_navigation():
            await up_page.locator("#answer-link").click()
        await up_page.locator("#answer-request input[name=bundle]").set_input_files(request_file)
        async with up_page.expect_download() as downloading:
            await up_page.locator("#answer-request button[type=submit]").click()
        answer_file = tmp_path / "browser-answer.bundle"
        answer = await downloading.value
        assert answer.suggested_filename == "sync-answer-Acme-1.bundle"
        await answer.save_as(answer_file)

        # Back at the satellite: the answer uploaded; what it changed, and the history.
        await page.reload()
        await page.locator("#upload-answer input[name=answer]").set_input_files(answer_file)
        async with page.expect_navigation():
            await page.locator("#upload-answer button[type=submit]").click()
        await expect(page.locator("#sync-result")).to_contain_text(
            "The answer to request 1 was applied."
        )
        await expect(page.locator("#sync-result")).to_contain_text("added: 1")
        await expect(page.locator("#sync-status td.sequences")).to_have_text("1 / 1")
        history = page.locator("#sync-history tbody tr")
        await expect(history).to_have_count(2)
        await expect(history.first).to_contain_text("Answer uploaded")
        await expect(history.first).to_contain_text("Success")
        [line] = await pool(admin, SITE)  # the licenses the upstream granted
        assert line["quantity"] == 10
        await screenshot(page, "sync")

        # The upstream's view of its satellite after the round trip.
        await up_page.goto(upstream_url + SATELLITES)
        row = up_page.locator("#satellites tbody tr").first
        await expect(row).to_contain_text("site-1")
        await expect(row.locator("td").nth(4)).to_have_text("1")  # requests answered
        await screenshot(up_page, "satellites")
        await up_errors.assert_none(up_page)
        await page_errors.assert_none(page)
    finally:
        await other.close()
