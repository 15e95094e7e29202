"""The users and API clients pages: a system admin lists, creates, disables and sets
passwords through the operations of satellite.api.principals; a new client's secret is on
its creation's answer only; others see the lists as the operations answer, and no control."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

from yarl import URL

from tests.conftest import Api, Credentials, login
from tests.helpers.accounts import create_account
from tests.helpers.console import Page, Visitor, assert_chinese, create_user

NEW_PASSWORD = "another long password"


async def post_form(
    visitor: Visitor, path: str, fields: list[tuple[str, str]], *, follow: bool = True
) -> Page:
    """A form with a field given more than once (the accounts a user gets), as browsers post
    a multiple select."""
    url = visitor.base.join(URL(path))
    async with visitor.session.post(url, data=fields, allow_redirects=follow) as r:
        return Page(r.status, r.url, await r.text(), r.headers, r.cookies)


async def api_list(admin: Api, kind: str) -> list[dict[str, Any]]:
    status, body = await admin.get(f"/api/v1/{kind}")
    assert status == 200, body
    items: list[dict[str, Any]] = body["items"]
    return items


def table(page: Page, name: str) -> str:
    return page.text.split(f'<table id="{name}">')[1].split("</table>")[0]


def row(page: Page, name: str, first_cell: str) -> str:
    [found] = [r for r in table(page, name).split("<tr>") if f"<td>{first_cell}</td>" in r]
    return found


async def signed_in_admin(
    admin: Api, visitors: Callable[..., Visitor], language: str = "en"
) -> Visitor:
    for name in ("Acme", "Globex"):
        await create_account(admin, name)
    password = await create_user(admin, "sam", "system-admin", [])
    visitor = visitors(language)
    await visitor.sign_in("sam", password)
    return visitor


async def test_a_system_admin_creates_a_user_sets_its_password_and_disables_it(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    sam = await signed_in_admin(admin, visitors)
    start = await sam.get("/accounts")
    assert 'href="/users"' in start.text
    assert 'href="/clients"' in start.text
    page = await sam.get("/users")
    assert page.status == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert 'id="create-user"' in page.text
    for option in ('value="Acme"', 'value="Globex"', 'value="account-admin"'):
        assert option in page.text.split('id="create-user"')[1], option

    created = await post_form(
        sam,
        "/users",
        [
            ("csrf", page.csrf),
            ("username", "ann"),
            ("password", NEW_PASSWORD),
            ("role", "account-admin"),
            ("accounts", "Acme"),
        ],
        follow=False,
    )
    assert (created.status, created.headers["Location"]) == (303, "/users")
    listing = await sam.get("/users")
    ann_row = row(listing, "users", "ann")
    assert "<td>Account admin</td>" in ann_row
    assert '<td><a href="/accounts/Acme">Acme</a></td>' in ann_row  # linked to its page
    assert "<td>Active</td>" in ann_row
    assert NEW_PASSWORD not in listing.text
    assert "<td>All accounts</td>" in row(listing, "users", "sam")
    [user] = [u for u in await api_list(admin, "users") if u["name"] == "ann"]
    assert (user["role"], user["accounts"], user["disabled"]) == ("account-admin", ["Acme"], False)

    # The new user signs in and sees its account only.
    ann = visitors()
    accounts = await ann.sign_in("ann", NEW_PASSWORD)
    assert accounts.url.path == "/accounts"
    assert ">Acme<" in accounts.text
    assert "Globex" not in accounts.text

    # A new password ends its sessions; the old one no longer signs in.
    changed = await sam.post(
        "/users/password",
        {"csrf": page.csrf, "user": "ann", "password": "a third long password"},
        follow=False,
    )
    assert (changed.status, changed.headers["Location"]) == (303, "/users")
    assert (await ann.get("/accounts")).url.path == "/sign-in"
    assert (await ann.sign_in("ann", NEW_PASSWORD)).status == 401
    assert (await ann.sign_in("ann", "a third long password")).url.path == "/accounts"

    # Disabled: its session ends at once and it cannot sign in again.
    disabled = await sam.post("/users/disable", {"csrf": page.csrf, "user": "ann"}, follow=False)
    assert (disabled.status, disabled.headers["Location"]) == (303, "/users")
    assert (await ann.get("/accounts")).url.path == "/sign-in"
    assert (await ann.sign_in("ann", "a third long password")).status == 401
    ann_row = row(await sam.get("/users"), "users", "ann")
    assert "<td>Disabled</td>" in ann_row
    assert "<form" not in ann_row  # nothing more to do to a disabled user
    [user] = [u for u in await api_list(admin, "users") if u["name"] == "ann"]
    assert user["disabled"] is True


async def test_a_new_clients_secret_is_shown_once_and_the_client_can_be_disabled(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    sam = await signed_in_admin(admin, visitors)
    page = await sam.get("/clients")
    assert page.status == 200
    assert 'id="create-client"' in page.text
    created = await post_form(
        sam,
        "/clients",
        [
            ("csrf", page.csrf),
            ("role", "account-viewer"),
            ("accounts", "Acme"),
            ("accounts", "Globex"),
            ("description", "monitoring"),
        ],
    )
    assert created.status == 200
    assert created.url.path == "/clients"
    assert created.headers["Cache-Control"] == "no-store"
    [client_id] = re.findall(r'<code id="new-client-id">([^<]+)</code>', created.text)
    [secret] = re.findall(r'<code id="new-client-secret">([^<]+)</code>', created.text)
    assert 'data-copy="new-client-secret"' in created.text
    assert secret not in str(created.url)
    # The secret works, for what the role and accounts chosen allow.
    client = await login(admin, Credentials(client_id, secret))
    status, body = await client.get("/api/v1/accounts")
    assert status == 200, body
    assert sorted(a["name"] for a in body["accounts"]) == ["Acme", "Globex"]

    # Never again: not in the list, which names the client.
    listing = await sam.get("/clients")
    assert secret not in listing.text
    assert 'id="new-client"' not in listing.text
    client_row = row(listing, "clients", f"<code>{client_id}</code>")
    for cell in ("Account viewer", "monitoring", "Active"):
        assert f"<td>{cell}</td>" in client_row, cell
    accounts = '<a href="/accounts/Acme">Acme</a>, <a href="/accounts/Globex">Globex</a>'
    assert f"<td>{accounts}</td>" in client_row

    disabled = await sam.post(
        "/clients/disable", {"csrf": page.csrf, "client": client_id}, follow=False
    )
    assert (disabled.status, disabled.headers["Location"]) == (303, "/clients")
    assert (await client.get("/api/v1/accounts"))[0] == 401  # its tokens are revoked
    assert "<td>Disabled</td>" in row(
        await sam.get("/clients"), "clients", f"<code>{client_id}</code>"
    )


async def test_others_see_what_the_operations_answer_and_cannot_write(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    for name in ("Acme", "Globex"):
        await create_account(admin, name)
    passwords = {
        "ann": await create_user(admin, "ann", "account-admin", ["Acme"]),
        "victor": await create_user(admin, "victor", "account-viewer", ["Acme"]),
        "gus": await create_user(admin, "gus", "account-admin", ["Globex"]),
    }
    status, body = await admin.post(
        "/api/v1/clients", {"role": "account-admin", "accounts": ["Acme"]}
    )
    assert status == 200, body
    acme_client = body["clientId"]
    before = (await api_list(admin, "users"), await api_list(admin, "clients"))
    for login_name in ("ann", "victor"):
        visitor = visitors()
        await visitor.sign_in(login_name, passwords[login_name])
        users = await visitor.get("/users")
        assert users.status == 200
        shown = re.findall(r"<tr>\s*<td>([^<]+)</td>", table(users, "users"))
        assert shown == ["ann", "victor"]  # scoped to Acme; gus (Globex) not
        clients = await visitor.get("/clients")
        assert acme_client in clients.text
        assert 'href="/users"' in users.text  # the lists are theirs to see
        for page in (users, clients):
            assert 'method="post"' not in page.text.replace('id="sign-out" method="post"', "")
        forged = [
            ("/users", {"username": "eve", "password": NEW_PASSWORD, "role": "system-admin"}),
            ("/users/disable", {"user": "gus"}),
            ("/users/password", {"user": "gus", "password": NEW_PASSWORD}),
            ("/clients", {"role": "system-admin", "description": "forged"}),
            ("/clients/disable", {"client": acme_client}),
        ]
        for path, form in forged:
            refused = await visitor.post(path, {"csrf": users.csrf} | form)
            assert refused.status == 403, (login_name, path)
            assert "You may not do this." in refused.text
    assert (await api_list(admin, "users"), await api_list(admin, "clients")) == before
    gus = visitors()
    assert (await gus.sign_in("gus", passwords["gus"])).url.path == "/accounts"


async def test_bad_input_shows_the_form_again_and_changes_nothing(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    sam = await signed_in_admin(admin, visitors)
    await create_user(admin, "ann", "account-admin", ["Acme"])
    page = await sam.get("/users")
    before = (await api_list(admin, "users"), await api_list(admin, "clients"))
    good = {"username": "bob", "password": NEW_PASSWORD, "role": "account-admin"}
    user_forms: list[tuple[dict[str, str], int]] = [
        (good | {"password": "short"}, 400),
        (good | {"password": ""}, 400),
        (good | {"password": "x" * 5000}, 400),
        (good | {"role": "root"}, 400),
        (good | {"role": ""}, 400),
        (good | {"accounts": "Nowhere"}, 404),
        (good, 400),  # an account admin needs an account
        (good | {"role": "system-admin", "accounts": "Acme"}, 400),  # it has them all
        (good | {"username": "ann", "accounts": "Acme"}, 409),  # taken
        (good | {"username": "", "accounts": "Acme"}, 400),
        (good | {"username": "bob/x", "accounts": "Acme"}, 400),
        (good | {"username": "b" * 10_000, "accounts": "Acme"}, 400),
    ]
    for form, expected in user_forms:
        refused = await sam.post("/users", {"csrf": page.csrf} | form)
        assert refused.status == expected, form
        assert 'class="error"' in refused.text, form
        assert 'id="create-user"' in refused.text, form
        assert NEW_PASSWORD not in refused.text
    for path, form, expected in [
        ("/users/password", {"user": "ann", "password": "short"}, 400),
        ("/users/password", {"user": "nobody", "password": NEW_PASSWORD}, 404),
        ("/users/password", {"user": "ann"}, 400),
        ("/users/disable", {"user": "nobody"}, 404),
        ("/users/disable", {}, 404),
        ("/clients", {"role": "root"}, 400),
        ("/clients", {"role": "account-viewer", "accounts": "Nowhere"}, 404),
        ("/clients", {"role": "account-viewer", "accounts": "Acme", "description": "d" * 501}, 400),
        ("/clients/disable", {"client": "sat-nobody"}, 404),
    ]:
        refused = await sam.post(path, {"csrf": page.csrf} | form)
        assert refused.status == expected, (path, form)
        assert 'class="error"' in refused.text, (path, form)
        assert 'id="new-client"' not in refused.text
    assert (await api_list(admin, "users"), await api_list(admin, "clients")) == before
    ann = visitors()
    assert (await ann.sign_in("ann", "a long password!")).url.path == "/accounts"


async def test_every_page_and_state_in_chinese(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    sam = await signed_in_admin(admin, visitors, "zh-CN,zh;q=0.9")
    users = await sam.get("/users")
    pages = [users, await sam.get("/clients")]
    form = {"csrf": users.csrf, "username": "bob", "password": NEW_PASSWORD}
    pages.append(await sam.post("/users", form | {"role": "root"}))  # the console's words
    short = await sam.post("/users", form | {"password": "short", "role": "system-admin"})
    pages.append(short)
    await post_form(
        sam,
        "/users",
        [*form.items(), ("role", "account-viewer"), ("accounts", "Acme")],
    )
    pages.append(await sam.get("/users"))  # with an account viewer and its account
    created = await post_form(
        sam,
        "/clients",
        [
            ("csrf", users.csrf),
            ("role", "account-admin"),
            ("accounts", "Globex"),
            ("description", "lab"),
        ],
    )
    pages.append(created)
    [client_id] = re.findall(r'<code id="new-client-id">([^<]+)</code>', created.text)
    await sam.post("/clients/disable", {"csrf": users.csrf, "client": client_id})
    pages.append(await sam.get("/clients"))  # a disabled client
    pages.append(await sam.post("/clients/disable", {"csrf": users.csrf, "client": "x"}))
    bob = visitors("zh-CN")
    await bob.sign_in("bob", NEW_PASSWORD)
    bobs_users = await bob.get("/users")
    pages += [bobs_users, await bob.get("/clients")]
    pages.append(await bob.post("/users/disable", {"csrf": bobs_users.csrf, "user": "sam"}))
    # The services' refusals are English, as the API's problem documents are.
    english = [
        [
            html.unescape(e)
            for e in re.findall(r'<p class="error" role="alert">([^<]+)</p>', page.text)
        ]
        for page in pages
    ]
    assert all("\u4e00" <= char <= "\u9fff" for char in english[2][0].rstrip("。"))
    # What the users typed and the server wrote (the first client's description) is data.
    first_client = "first system admin (created by init)"
    data = ["Acme", "Globex", "sam", "bob", "lab", first_client]
    data += [e for found in english[3:] for e in found]
    for page in pages:
        assert_chinese(page, data)
    assert "系统管理员" in pages[0].text


async def test_the_last_system_admin_cannot_be_disabled(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    sam = await signed_in_admin(admin, visitors)
    page = await sam.get("/clients")
    [first] = await api_list(admin, "clients")  # the first start's client: a system admin
    gone = await sam.post("/clients/disable", {"csrf": page.csrf, "client": first["name"]})
    assert gone.status == 200
    refused = await sam.post("/users/disable", {"csrf": page.csrf, "user": "sam"})
    assert refused.status == 409
    assert "the last system admin" in refused.text
    assert "<td>Active</td>" in row(await sam.get("/users"), "users", "sam")
