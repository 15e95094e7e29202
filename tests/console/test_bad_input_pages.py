"""Each finding of the hostile input sweep (tests/console/test_hostile_input.py) by
itself: bad input no page showed itself is a page with its status (400, 413), never a
500 or the API's problem document, and nothing is written; a redirect keeps the list's
query without breaking its header; a name a browser would resolve away is refused."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable
from pathlib import Path

import asyncpg
from aiohttp.test_utils import TestServer
from yarl import URL

from tests.conftest import Api
from tests.helpers.api import snapshot
from tests.helpers.console import Visitor, create_user
from tests.helpers.hostile import fill, raw, root, world


async def test_a_body_that_is_not_the_multipart_it_claims_is_a_400_page(
    admin: Api, visitors: Callable[..., Visitor], db: asyncpg.Connection
) -> None:
    visitor, csrf = await root(admin, visitors)
    before = await snapshot(db)
    cut_off = b'--b\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n' + csrf.encode()
    anonymous = visitors()
    await anonymous.get("/sign-in")  # (its CSRF cookie: the form is read past it)
    for who, path, body, kind in (
        (anonymous, "/sign-in", b"csrf=x", "multipart/form-data"),  # no boundary
        (visitor, "/accounts/Acme/virtual-accounts", cut_off, "multipart/form-data; boundary=b"),
    ):
        status, content_type, text, _ = await raw(
            who, "POST", path, data=body, headers={"Content-Type": kind}
        )
        assert (status, content_type) == (400, "text/html"), (path, status, text[:300])
        assert "The form could not be read." in text
    assert await snapshot(db) == before


async def test_nul_in_a_path_or_query_is_a_400_page_not_a_problem_document(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    visitor, _ = await root(admin, visitors)
    for path in ("/events?action=a%00b", "/accounts/a%00b/licenses"):
        status, content_type, text, headers = await raw(visitor, "GET", path)
        assert (status, content_type) == (400, "text/html"), (path, status, text[:300])
        assert "must not contain U+0000 (NUL)" in html.unescape(text)
        assert headers["Content-Security-Policy"].startswith("default-src 'self'")
        assert headers["Cache-Control"] == "no-store"


async def test_nul_in_a_form_field_is_a_400_page(
    admin: Api, visitors: Callable[..., Visitor], db: asyncpg.Connection
) -> None:
    visitor, csrf = await root(admin, visitors)
    before = await snapshot(db)
    for path, field in (("/users/disable", "user"), ("/clients/disable", "client")):
        page = await visitor.post(path, {"csrf": csrf, field: "a\x00b"})
        assert page.status == 400, (path, page.status, page.text[:300])
        assert "A field holds the character U+0000, which none takes." in page.text
    # In the visitor's language: the console's own words.
    chinese = await visitor.post("/users/disable?lang=zh-CN", {"csrf": csrf, "user": "a\x00b"})
    assert chinese.status == 400
    assert "某个字段含有字符 U+0000" in chinese.text
    assert await snapshot(db) == before


async def test_more_form_fields_than_are_read_is_a_413_page(
    admin: Api, visitors: Callable[..., Visitor], db: asyncpg.Connection
) -> None:
    visitor, csrf = await root(admin, visitors)
    before = await snapshot(db)
    page = await visitor.post(
        "/accounts/Acme/virtual-accounts", [("csrf", csrf), *[("name", "x")] * 2000]
    )
    assert page.status == 413
    assert '<html lang="en">' in page.text
    # A body over the server's limit (api.max_body_bytes) too.
    body = io.BytesIO(f"csrf={csrf}&description={'x' * 2_000_000}".encode())
    status, content_type, text, _ = await raw(
        visitor,
        "POST",
        "/accounts/Acme/virtual-accounts",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (status, content_type) == (413, "text/html"), (status, text[:300])
    assert await snapshot(db) == before


async def test_a_path_name_longer_than_an_operation_takes_is_a_400_page(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    visitor, _ = await root(admin, visitors)
    status, content_type, text, _ = await raw(
        visitor, "GET", "/accounts/Acme/virtual-accounts/" + "x" * 200 + "/licenses"
    )
    assert (status, content_type) == (400, "text/html"), (status, text[:300])


async def test_the_list_kept_after_a_post_cannot_inject_a_header(
    admin: Api,
    server: TestServer,
    visitors: Callable[..., Visitor],
    tmp_path: Path,
    state_dir: Path,
) -> None:
    # The list's filters ride on the POST's query and come back in the redirect's Location.
    names = await world(admin, server, tmp_path, state_dir)
    password = await create_user(admin, "root", "system-admin", [])
    visitor = visitors()
    await visitor.sign_in("root", password)
    path = fill("/accounts/{account}/virtual-accounts/{va}/product-instances", names)
    page = await visitor.get(path)
    hostile = "host_name=%0D%0ASet-Cookie:%20injected=1%22%E4%B8%AD&state=all"
    status, _, text, headers = await raw(
        visitor,
        "POST",
        f"{path}/remove?{hostile}",
        data={"csrf": page.csrf, "product": names["instance"]},
    )
    assert status == 303, (status, re.findall(r"class=\"error[^>]*>([^<]*)", text))
    assert "injected" not in headers.getall("Set-Cookie", [""])[0]
    location = URL(headers["Location"])
    assert location.path == path
    assert location.query["host_name"] == '\r\nSet-Cookie: injected=1"中'
    assert location.query["state"] == "all"


async def test_a_name_a_browser_would_resolve_away_is_refused(
    admin: Api, visitors: Callable[..., Visitor], db: asyncpg.Connection
) -> None:
    # "/accounts/Acme/virtual-accounts/.." is "/accounts/Acme" to a browser (and to any URL
    # library): a virtual account so named could never be reached by its link.
    visitor, csrf = await root(admin, visitors)
    before = await snapshot(db)
    for name in (".", ".."):
        page = await visitor.post("/accounts/Acme/virtual-accounts", {"csrf": csrf, "name": name})
        assert page.status == 400, (name, page.status)
        status, body = await admin.post("/api/v1/accounts", {"name": name})
        assert 400 <= status < 500, (name, status, body)
    assert await snapshot(db) == before
    # Dots inside a name are fine.
    page = await visitor.post("/accounts/Acme/virtual-accounts", {"csrf": csrf, "name": "..a."})
    assert page.status == 200, page.status
