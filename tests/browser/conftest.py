"""Fixtures for tests in a real browser: Debian's headless Chromium driven by Playwright.

One Chromium process per session; each test connects to it from its own event loop and
gets a new context (no cookies or storage of another test) and a page whose JavaScript
console errors and uncaught exceptions fail the test. The daemon is the ``server`` fixture
of tests/conftest.py: the app on a real port of 127.0.0.1 with a database of the test's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.helpers.browser import SCREENSHOT_SIZE, PageErrors, run_chromium

TIMEOUT_MS = 15_000


@pytest.fixture(scope="session")
def chromium() -> Iterator[str]:
    """The session's browser: its DevTools endpoint."""
    yield from run_chromium()


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """The session's browser, connected from this test's event loop."""
    async with async_playwright() as playwright:
        connected = await playwright.chromium.connect_over_cdp(chromium)
        try:
            yield connected
        finally:
            await connected.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh context, 1280x800, English unless a test makes its own."""
    opened = await browser.new_context(viewport=SCREENSHOT_SIZE, locale="en-US")  # type: ignore[arg-type]
    opened.set_default_timeout(TIMEOUT_MS)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def page_errors() -> PageErrors:
    return PageErrors()


@pytest.fixture
async def page(context: BrowserContext, page_errors: PageErrors) -> AsyncIterator[Page]:
    """A page of the test's context; a JavaScript error it reported fails the test."""
    opened = await context.new_page()
    page_errors.watch(opened)
    yield opened
    await page_errors.assert_none(opened)


@pytest.fixture
def base_url(server: TestServer) -> str:
    """The daemon's address for the browser."""
    return str(server.make_url("")).rstrip("/")
