"""Every console route, from the app's own router, attacked by a signed-in system admin:
no fields, each field of its forms empty, huge, "²", "-1", "1e309", NUL, bytes that are
not UTF-8, markup, repeated; hostile query strings and path parameters; a multipart body
where a urlencoded one is expected and the reverse; a wrong Content-Type. Never a 5xx, the
answer still a page (or the file asked for), and a refused request writes nothing.

And what users type (account and virtual account names, descriptions) is shown escaped
on every page that shows it."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import aiohttp
import asyncpg
from aiohttp.test_utils import TestServer

from satellite_agent.client import Agent
from satellite_agent.state import Identity
from tests.conftest import Api
from tests.helpers.api import base_url
from tests.helpers.console import Visitor, create_user
from tests.helpers.hostile import (
    MARKUP_NAME,
    MARKUP_TEXT,
    QUERY_KEYS,
    QUERY_VALUES,
    REPEATS,
    SESSION_ROUTES,
    UNSHOWN_FIELDS,
    Attacker,
    console_routes,
    counting,
    fill,
    form_fields,
    root,
    world,
)


async def test_no_hostile_input_makes_a_5xx_or_writes_when_refused(
    admin: Api,
    server: TestServer,
    visitors: Callable[..., Visitor],
    db: asyncpg.Connection,
    tmp_path: Path,
    state_dir: Path,
) -> None:
    names = await world(admin, server, tmp_path, state_dir)
    password = await create_user(admin, "root", "system-admin", [])
    visitor = visitors()
    await visitor.sign_in("root", password)
    routes = console_routes(admin)
    assert {r.pattern for r in routes} >= {"/events", "/accounts/{account}/sync", "/users"}

    pages = {}
    for route in routes:
        if route.method == "GET":
            page = await visitor.get(fill(route.pattern, names), follow=False)
            assert page.status < 500, (route, page.status)
            pages[route.pattern] = page.text
    fields = form_fields(pages)
    for pattern, unshown in UNSHOWN_FIELDS.items():
        shown = fields.setdefault(fill(pattern, names), [])
        shown.extend(name for name in unshown if name not in shown)
    attacker = Attacker(visitor, db, await counting(db), (await visitor.get("/accounts")).csrf)

    for route in routes:
        path = fill(route.pattern, names)
        if route.pattern in SESSION_ROUTES:
            continue
        if route.method == "GET":
            for value in QUERY_VALUES:
                query = "&".join(f"{key}={quote(value)}" for key in QUERY_KEYS)
                await attacker.send("GET", f"{path}?{query}", encoded=True)
            await attacker.send("GET", path + "?offset=%FF%FE&since=%FF", encoded=True)
            await attacker.send("GET", path + "?" + "&".join(["offset=1"] * REPEATS))
        else:
            for form in attacker.forms(fields.get(path, [])):
                await attacker.send("POST", path, data=form)
            await _wrong_bodies(attacker, path, fields.get(path, []))
        for hostile in ("x" * 1500, "%00", "a%00b", "%FF", "%2e%2e"):
            if "{" in route.pattern:
                broken = re.sub(r"\{\w+\}", hostile, route.pattern)
                await attacker.send(
                    route.method, broken, data=[("csrf", attacker.csrf)], encoded=True
                )
        if not await attacker.signed_in():  # a route that ends the session: sign in again
            await visitor.sign_in("root", password)
            attacker.csrf = (await visitor.get("/accounts")).csrf
    assert not attacker.found, "\n".join(attacker.found[:60])
    assert attacker.sent > 500
    print(f"{attacker.sent} hostile requests in {time.monotonic() - attacker.started:.1f} s")


async def _wrong_bodies(attacker: Attacker, path: str, fields: list[str]) -> None:
    """A multipart body where a urlencoded one is expected (and, on an upload form, the
    reverse: every form is sent both ways), a wrong Content-Type, a broken multipart."""
    multipart = aiohttp.FormData()
    multipart.add_field("csrf", attacker.csrf)
    for name in fields:
        multipart.add_field(name, "²")
    multipart.add_field("file", b"\xff\x00not a file", filename='x"; name="csrf.bin')
    await attacker.send("POST", path, data=multipart)
    await attacker.send(
        "POST", path, data=[("csrf", attacker.csrf), *[(n, "1") for n in fields], ("file", "x")]
    )
    json_body = '{"csrf": "' + attacker.csrf + '"}'
    await attacker.send("POST", path, data=json_body, headers={"Content-Type": "application/json"})
    await attacker.send("POST", path, data=b"\x00\xff", headers={"Content-Type": "text/plain"})
    await attacker.send(
        "POST", path, data=b"csrf=x", headers={"Content-Type": "multipart/form-data"}
    )
    broken = b'--b\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n' + attacker.csrf.encode()
    await attacker.send(
        "POST", path, data=broken, headers={"Content-Type": "multipart/form-data; boundary=b"}
    )


async def test_hostile_requests_without_a_session_are_refused_as_pages(
    admin: Api, visitors: Callable[..., Visitor], db: asyncpg.Connection
) -> None:
    visitor = visitors()
    attacker = Attacker(visitor, db, await counting(db), (await visitor.get("/sign-in")).csrf)
    for form in attacker.forms(["username", "password"]):
        status = await attacker.send("POST", "/sign-in", data=form)
        assert status in (303, 400, 401, 403, 429), status
    await _wrong_bodies(attacker, "/sign-in", ["username", "password"])
    await attacker.send("POST", "/sign-out", data=[("csrf", "x" * 100_000)])
    assert not attacker.found, "\n".join(attacker.found[:60])


async def test_what_users_type_is_shown_escaped_on_every_page(
    admin: Api, visitors: Callable[..., Visitor], server: TestServer, tmp_path: Path
) -> None:
    status, body = await admin.post(
        "/api/v1/accounts", {"name": MARKUP_NAME, "description": MARKUP_TEXT}
    )
    assert status == 200, body
    base = "/api/v1/accounts/" + quote(MARKUP_NAME, safe="")
    status, body = await admin.post(
        base + "/virtual-accounts", {"name": MARKUP_NAME, "description": MARKUP_TEXT}
    )
    assert status == 200, body
    va = base + "/virtual-accounts/" + quote(MARKUP_NAME, safe="")
    status, body = await admin.post(va + "/tokens", {"description": MARKUP_TEXT})
    assert status == 200, body
    # A product whose type and version (its own words, sent by the agent) are markup.
    agent = Agent(tmp_path / "agent-markup")
    state = agent.init(
        Identity(
            pid="UCM",
            serial_number="FCH0009",
            uuid="6f1e0c5a-0000-4000-8000-000000000009",
            product_type=MARKUP_NAME,
            product_version=MARKUP_TEXT,
        )
    )
    state.transport.url = base_url(server)
    agent.save(state)
    await agent.register(body["tokenInfo"]["token"])
    instance = agent.state.product_instance_id
    assert instance is not None
    password = await create_user(admin, "root", "system-admin", [])
    visitor = visitors()
    await visitor.sign_in("root", password)
    names = {
        "account": MARKUP_NAME,
        "va": MARKUP_NAME,
        "instance": instance,
        "reserved": instance,
        "satellite": "none",
    }
    shown = 0
    for route in console_routes(admin):
        if route.method != "GET" or route.pattern in SESSION_ROUTES:
            continue
        page = await visitor.get(fill(route.pattern, names))
        assert page.status < 500, route
        for raw in ("<img src=x", "<script>alert", "\"q\" 'a'"):
            assert raw not in page.text, (route, raw)
        if html.escape(MARKUP_NAME) in page.text or "&lt;img src=x" in page.text:
            shown += 1
    assert shown >= 5  # the name is on the account's pages, escaped
    # The product's own words too, on its page and in the list.
    path = fill("/accounts/{account}/virtual-accounts/{va}/product-instances", names)
    for page in (await visitor.get(path), await visitor.get(f"{path}/{instance}")):
        assert page.status == 200
        assert "&lt;img src=x onerror=alert(1)&gt;" in page.text


async def test_hostile_languages_and_cookies_are_pages(
    admin: Api, visitors: Callable[..., Visitor], db: asyncpg.Connection
) -> None:
    visitor, _ = await root(admin, visitors)
    attacker = Attacker(visitor, db, await counting(db), "")
    languages = ("x" * 4000, "zh-CN;q=abc, en;q=1e309", "*;q=-1, ²", "<script>", ",,;;=")
    for language in languages:
        for path in ("/accounts", "/sign-in", "/events?lang=" + quote(language)):
            await attacker.send("GET", path, headers={"Accept-Language": language})
    cookies = (
        'satellite_session="\\000"',  # a quoted cookie value unquotes to U+0000
        "satellite_session=" + "x" * 4000,
        'satellite_lang="\\000"; satellite_csrf="\\377"',
        "satellite_session=%00; satellite_lang=<script>",
    )
    for cookie in cookies:
        for path in ("/accounts", "/sign-in", "/events"):
            status = await attacker.send("GET", path, headers={"Cookie": cookie})
            assert status in (200, 303), (cookie, path, status)
    assert not attacker.found, "\n".join(attacker.found[:60])
