"""Every page of the console in Chinese, in the browser: from the accounts page, every link
a signed-in system admin can follow (over an account with licenses, a registered product
with usage, a reservation, a user) is visited; each page is Chinese with no English message
or word left (the user's data aside) and makes no JavaScript error."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Error

from satellite.api.context import Services
from tests.conftest import ENHANCED, Api
from tests.helpers.api import new_agent, new_product, new_token, reserved_code, setup_voice
from tests.helpers.browser import PageErrors, make_user, sign_in
from tests.helpers.console import assert_chinese_html

pytestmark = pytest.mark.browser

MAX_PAGES = 80  # a bound on the walk: more pages than the console has for this world
# A page of each of these the walk must have reached.
AREAS = (
    "/licenses",
    "/product-instances/",
    "/reservations/",
    "/export-keys",
    "/tokens",
    "/alerts",
    "/sync",
    "/satellites",
    "/events",
    "/users",
    "/clients",
)


def _worth_visiting(href: str, base_url: str) -> str | None:
    """A link's path and query when it is a console page of this server: not an asset, not
    a language switch (the page itself again), not a file download."""
    parts = urlsplit(href)
    if parts.scheme and f"{parts.scheme}://{parts.netloc}" != base_url:
        return None
    path = parts.path
    if not path.startswith("/") or path.startswith("/static/") or "lang=" in parts.query:
        return None
    if path.endswith(("/authorization-code", "/sync/request")):
        return None  # files (their own tests download them)
    return path + (f"?{parts.query}" if parts.query else "")


async def test_every_page_a_system_admin_reaches_is_chinese(
    base_url: str,
    server: TestServer,
    services: Services,
    admin: Api,
    browser: Browser,
    tmp_path: Path,
    state_dir: Path,
) -> None:
    await setup_voice(admin, enhanced=3, cuwl=2)
    product = new_product(tmp_path, state_dir, "SLR0001")
    product.enable()
    await reserved_code(admin, product.request(), cuwl=1)
    agent = new_agent(tmp_path, server, "FCH0001")
    await agent.register(await new_token(admin, description="phones"))
    await agent.report_usage({ENHANCED: 5})  # more than the pool: out of compliance, an alert
    password = await make_user(services, "zhang", "system-admin")
    # What the world's data says stays as it is: names, the products' identities, the
    # catalog's license names, the server-written description of the default account.
    data = [
        *("Acme", "Voice", "DEFAULT", "zhang", "phones", "pytest", "FCH0001", "SLR0001", "UCM"),
        *("Default virtual account", "first system admin (created by init)"),
        *(entry.display_name for entry in services.catalog),
        *(entry.tag for entry in services.catalog),
    ]

    context = await browser.new_context(
        locale="zh-CN", extra_http_headers={"Accept-Language": "zh-CN"}
    )
    try:
        page = await context.new_page()
        errors = PageErrors()
        errors.watch(page)
        await sign_in(page, base_url, "zhang", password)
        queue, seen = deque(["/accounts"]), {"/accounts"}
        visited = 0
        while queue and visited < MAX_PAGES:
            path = queue.popleft()
            try:
                response = await page.goto(base_url + path)
            except Error as exc:
                if "Download is starting" in str(exc):
                    continue
                raise
            visited += 1
            assert response is not None
            assert response.status == 200, (path, response.status)
            assert_chinese_html(path, await page.content(), data)
            for href in await page.locator("a[href]").evaluate_all(
                "links => links.map(link => link.href)"
            ):
                found = _worth_visiting(href, base_url)
                if found and found not in seen:
                    seen.add(found)
                    queue.append(found)
        await errors.assert_none(page)
    finally:
        await context.close()
    # The walk reached the pages of every area (and stopped before its bound).
    assert not queue, f"more than {MAX_PAGES} pages"
    for area in AREAS:
        assert any(area in path for path in seen), (area, sorted(seen))
