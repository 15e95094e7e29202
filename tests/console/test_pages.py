"""The pages call the operations with the session's principal: a viewer sees no write
controls and a forged write is refused; an account admin sees only its accounts."""

from __future__ import annotations

from collections.abc import Callable

from yarl import URL

from tests.conftest import Api
from tests.helpers.accounts import create_account, va_names
from tests.helpers.console import Visitor, create_user


async def test_a_viewer_sees_no_write_controls_and_a_forged_write_is_refused(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    await create_account(admin, "Acme")
    password = await create_user(admin, "victor", "account-viewer", ["Acme"])
    viewer = visitors()
    await viewer.sign_in("victor", password)
    page = await viewer.get("/accounts/Acme")
    assert page.status == 200
    assert "<h1>Acme</h1>" in page.text
    assert '<table id="virtual-accounts">' in page.text
    assert '<td>DEFAULT <span class="muted">(default)</span></td>' in page.text
    assert "create-virtual-account" not in page.text
    assert 'method="post"' not in page.text.replace('id="sign-out" method="post"', "")
    forged = await viewer.post(
        "/accounts/Acme/virtual-accounts", {"csrf": page.csrf, "name": "Forged"}
    )
    assert forged.status == 403
    assert 'class="error"' in forged.text
    assert await va_names(admin, "Acme") == ["DEFAULT"]


async def test_an_account_admin_sees_only_its_accounts_and_creates_a_virtual_account(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    for name in ("Acme", "Globex"):
        await create_account(admin, name)
    password = await create_user(admin, "ann", "account-admin", ["Acme"])
    visitor = visitors()
    await visitor.sign_in("ann", password)
    listing = await visitor.get("/accounts")
    assert ">Acme</a>" in listing.text
    assert "Globex" not in listing.text
    assert (await visitor.get("/accounts/Globex")).status == 404

    page = await visitor.get("/accounts/Acme")
    assert 'id="create-virtual-account"' in page.text
    created = await visitor.post(
        "/accounts/Acme/virtual-accounts",
        {"csrf": page.csrf, "name": "Lab", "description": "the lab's phones"},
        follow=False,
    )
    assert created.status == 303
    assert created.headers["Location"] == "/accounts/Acme"
    shown = await visitor.get("/accounts/Acme")
    assert "<td>Lab</td>" in shown.text
    assert "<td>the lab&#39;s phones</td>" in shown.text
    assert sorted(await va_names(admin, "Acme")) == ["DEFAULT", "Lab"]

    # Another account's form, forged with a valid token: the account is not found.
    other = await visitor.post(
        "/accounts/Globex/virtual-accounts", {"csrf": page.csrf, "name": "X"}
    )
    assert other.status == 404
    assert await va_names(admin, "Globex") == ["DEFAULT"]
    # A name that cannot be one, or one taken: the page again with the rule, nothing made.
    for name, status in (("a/b", 400), ("lab", 409)):
        refused = await visitor.post(
            "/accounts/Acme/virtual-accounts", {"csrf": page.csrf, "name": name}
        )
        assert refused.status == status, name
        assert 'class="error"' in refused.text
        assert 'href="/?lang=zh-CN"' in refused.text
    assert sorted(await va_names(admin, "Acme")) == ["DEFAULT", "Lab"]


async def test_a_page_no_route_has_is_a_page_for_a_browser_and_a_problem_for_machines(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    browser = visitors("zh-CN")
    page = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    async with browser.session.get(browser.base.join(URL("/no-such-page")), headers=page) as r:
        assert r.status == 404
        assert r.content_type == "text/html"
        assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")
        assert '<html lang="zh-CN">' in await r.text()
    # The sign-out form posts; a link to it typed into the address bar is a GET.
    async with browser.session.get(browser.base.join(URL("/sign-out")), headers=page) as r:
        assert r.status == 405
        assert r.content_type == "text/html"
        assert "POST" in r.headers["Allow"]
    # A machine (no HTML asked for), or a path of the API, keeps its problem document.
    async with browser.session.get(browser.base.join(URL("/no-such-page"))) as r:
        assert r.status == 404
        assert r.content_type == "application/problem+json"
    async with browser.session.get(browser.base.join(URL("/api/v1/nope")), headers=page) as r:
        assert r.status == 404
        assert r.content_type == "application/problem+json"
