"""Smart accounts in the console: a system admin creates one on /accounts and changes it on
its page, through create_account and update_account; others get no controls and a forged
form is refused with nothing changed; refused input is the form again with the rule."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

from tests.conftest import Api
from tests.helpers.accounts import create_account
from tests.helpers.api import new_token
from tests.helpers.console import Page, Visitor, assert_chinese, create_user


async def accounts(admin: Api) -> dict[str, dict[str, Any]]:
    status, body = await admin.get("/api/v1/accounts")
    assert status == 200, body
    return {a["name"]: a for a in body["accounts"]}


async def system_admin(
    admin: Api, visitors: Callable[..., Visitor], language: str = "en"
) -> Visitor:
    password = await create_user(admin, "sam", "system-admin", [])
    visitor = visitors(language)
    await visitor.sign_in("sam", password)
    return visitor


def error_of(page: Page) -> str:
    [detail] = re.findall(r'<p class="error" role="alert">([^<]+)</p>', page.text)
    return html.unescape(detail)


async def test_a_system_admin_creates_an_account_and_changes_it(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    visitor = await system_admin(admin, visitors)
    listing = await visitor.get("/accounts")
    assert "There are no accounts you may see." in listing.text
    assert 'id="create-account"' in listing.text
    created = await visitor.post(
        "/accounts",
        {"csrf": listing.csrf, "name": "Acme", "domain": "acme.example",
         "description": "the phones", "export_controlled_allowed": "on"},
        follow=False,
    )  # fmt: skip
    assert created.status == 303
    assert created.headers["Location"] == "/accounts/Acme"
    acme = (await accounts(admin))["Acme"]
    assert (acme["domain"], acme["description"]) == ("acme.example", "the phones")
    assert acme["exportControlledAllowed"] is True

    shown = await visitor.get("/accounts")
    row = shown.text.split('href="/accounts/Acme">Acme</a>')[1].split("</tr>")[0]
    assert "<td>acme.example</td>" in row
    assert "<td>Allowed</td>" in row
    page = await visitor.get("/accounts/Acme")
    form = page.text.split('id="update-account"')[1].split("</form>")[0]
    assert 'name="domain" maxlength="253" value="acme.example"' in form
    assert 'value="the phones"' in form
    assert 'name="export_controlled_allowed" checked' in form
    # The new account has its default virtual account, where the next step begins.
    assert "DEFAULT" in page.text

    changed = await visitor.post(
        "/accounts/Acme/update",
        {"csrf": page.csrf, "domain": "", "description": "all phones"},
        follow=False,
    )
    assert changed.status == 303
    assert changed.headers["Location"] == "/accounts/Acme"
    acme = (await accounts(admin))["Acme"]
    assert (acme["domain"], acme["description"]) == (None, "all phones")
    assert acme["exportControlledAllowed"] is False
    again = await visitor.get("/accounts/Acme")
    assert 'name="export_controlled_allowed">' in again.text  # not ticked


async def test_refused_input_shows_the_form_again_with_nothing_made(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    await create_account(admin, "Acme", export=True)
    visitor = await system_admin(admin, visitors)
    csrf = (await visitor.get("/accounts")).csrf
    for form, status, words in (
        ({"name": "Acme"}, 409, "already exists"),
        ({"name": ""}, 400, "name"),
        ({"name": "a/b"}, 400, "name"),
        ({"name": "x" * 101}, 400, "name"),
        ({"name": "x" * 100_000}, 400, "name"),
        ({"name": "Globex", "domain": "not a domain!"}, 400, "domain"),
        ({"name": "Globex", "domain": "a" * 300}, 400, "domain"),
        ({"name": "Globex", "description": "d" * 501}, 400, "description"),
        ({}, 400, "name"),
    ):
        refused = await visitor.post("/accounts", {"csrf": csrf} | form)
        assert refused.status == status, form
        assert words in error_of(refused), (form, error_of(refused))
        assert 'id="create-account"' in refused.text
        if form.get("domain") == "not a domain!":
            assert 'value="not a domain!"' in refused.text  # what was typed is kept
    assert list(await accounts(admin)) == ["Acme"]

    # An account holding an export-controlled token cannot disallow export control.
    await new_token(admin, "DEFAULT", exportControlled="Allowed")
    before = (await accounts(admin))["Acme"]
    page = await visitor.get("/accounts/Acme")
    for form, status, words in (
        ({"domain": "not a domain!"}, 400, "domain"),
        ({"description": "d" * 501}, 400, "description"),
        ({"description": "held"}, 409, "export-controlled token"),
    ):
        refused = await visitor.post("/accounts/Acme/update", {"csrf": page.csrf} | form)
        assert refused.status == status, form
        assert words in error_of(refused), (form, error_of(refused))
        assert 'id="update-account"' in refused.text
        assert 'id="virtual-accounts"' in refused.text
        if "domain" in form:
            assert 'name="domain" maxlength="253" value="not a domain!"' in refused.text
    assert (await accounts(admin))["Acme"] == before


async def test_viewers_and_account_admins_get_no_controls_and_forged_forms_are_refused(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    for name in ("Acme", "Globex"):
        await create_account(admin, name)
    before = await accounts(admin)
    users = (("victor", "account-viewer", ["Acme"]), ("ann", "account-admin", ["Acme"]))
    for username, role, scoped in users:
        password = await create_user(admin, username, role, scoped)
        visitor = visitors()
        await visitor.sign_in(username, password)
        listing = await visitor.get("/accounts")
        assert 'id="create-account"' not in listing.text
        page = await visitor.get("/accounts/Acme")
        assert 'id="update-account"' not in page.text
        assert 'id="account-settings"' in page.text  # the settings, read-only
        forged = await visitor.post("/accounts", {"csrf": page.csrf, "name": "Forged"})
        assert forged.status == 403, username
        changed = await visitor.post(
            "/accounts/Acme/update",
            {"csrf": page.csrf, "description": "forged", "export_controlled_allowed": "on"},
        )
        assert changed.status == 403, username
        assert 'class="error"' in changed.text
        # An account it does not see is not found, whatever its role.
        other = await visitor.post("/accounts/Globex/update", {"csrf": page.csrf})
        assert other.status == 404, username
    assert await accounts(admin) == before


async def test_chinese_pages_and_errors(admin: Api, visitors: Callable[..., Visitor]) -> None:
    await create_account(admin, "Acme")
    visitor = await system_admin(admin, visitors, "zh-CN,zh;q=0.9")
    listing = await visitor.get("/accounts")
    csrf = listing.csrf
    pages = [listing, await visitor.get("/accounts/Acme")]
    assert "新建智能账户" in listing.text
    english: list[str] = []
    for path, form in (
        ("/accounts", {"name": "Acme"}),
        ("/accounts", {"name": "a/b", "description": "the phones"}),
        ("/accounts/Acme/update", {"domain": "not a domain!"}),
    ):
        refused = await visitor.post(path, {"csrf": csrf} | form)
        assert refused.status in (400, 409), form
        english.append(error_of(refused))
        pages.append(refused)
    data = ("Acme", "sam", "DEFAULT", "Default virtual account", "a/b", "the phones", *english)
    for shown in pages:
        assert_chinese(shown, data)
