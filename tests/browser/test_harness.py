"""The browser harness itself: the daemon's pages load with no JavaScript error, and a page
that does make one is caught (the check can fail)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Page

from tests.helpers.browser import PageErrors

pytestmark = pytest.mark.browser

BROKEN_HTML = """<!doctype html>
<html lang="en"><head><title>broken</title><script src="/broken.js"></script>
<link rel="stylesheet" href="/missing.css"></head>
<body><h1>broken</h1></body></html>"""
BROKEN_JS = """console.error("logged on purpose");
window.addEventListener("load", () => { throw new Error("thrown on purpose"); });"""


@pytest.fixture
async def broken_site() -> AsyncIterator[str]:
    """A tiny app on 127.0.0.1 whose page logs a console error, throws, and names a
    stylesheet that is not there."""

    async def html(request: web.Request) -> web.Response:
        return web.Response(text=BROKEN_HTML, content_type="text/html")

    async def script(request: web.Request) -> web.Response:
        return web.Response(text=BROKEN_JS, content_type="text/javascript")

    app = web.Application()
    app.router.add_get("/", html)
    app.router.add_get("/broken.js", script)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/"))
    await server.close()


async def test_the_daemon_serves_the_browser_with_no_javascript_error(
    base_url: str, page: Page
) -> None:
    response = await page.goto(base_url + "/healthz")
    assert response is not None
    assert response.status == 200
    response = await page.goto(base_url + "/api/v1/openapi.json")
    assert response is not None
    assert response.status == 200
    assert '"openapi"' in await page.locator("body").inner_text()


async def test_a_page_with_javascript_errors_fails_the_check(
    broken_site: str, page: Page, page_errors: PageErrors
) -> None:
    await page.goto(broken_site, wait_until="load")
    with pytest.raises(AssertionError) as failed:
        await page_errors.assert_none(page)
    assert "logged on purpose" in str(failed.value)
    assert "thrown on purpose" in str(failed.value)
    assert "/missing.css" in str(failed.value)
    # Caught, as it must be; the page fixture's own check at the end has nothing left.
    page_errors.clear()
