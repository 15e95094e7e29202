"""Every console route, from the app's own router, attacked by a signed-in system admin:
no fields, each field of its forms empty, huge, "²", "-1", "1e309", NUL, bytes that are
not UTF-8, markup, repeated; hostile query strings and path parameters; a multipart body
where a urlencoded one is expected and the reverse; a wrong Content-Type. Never a 5xx, the
answer still a page (or the file asked for), and a refused request writes nothing.

And what users type (account and virtual account names, descriptions) is shown escaped
on every page that shows it."""

from __future__ import annotations

import html
import io
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import aiohttp
import asyncpg
from aiohttp.test_utils import TestServer
from multidict import CIMultiDictProxy
from yarl import URL

from satellite_agent.client import Agent
from satellite_agent.state import Identity
from tests.conftest import ENHANCED, Api
from tests.helpers.api import (
    base_url,
    new_agent,
    new_product,
    new_token,
    reserved_code,
    setup_voice,
    snapshot,
)
from tests.helpers.console import Visitor, create_user

# Routes of other layers than the console (and its assets).
NOT_CONSOLE = (
    *("/api", "/backend", "/devices", "/device", "/sync/v1", "/healthz", "/readyz", "/oauth"),
    "/static",
)
# Not attacked with a session: they end it or start one (attacked without, below).
SESSION_ROUTES = {"/sign-in", "/sign-out"}
HUGE = "x" * 100_000
VALUES = ("", HUGE, "²", "-1", "1e309", "a\x00b", "<script>alert(1)</script>\"'")
QUERY_KEYS = (
    *("offset", "history_offset", "status", "state", "account", "action", "actor"),
    *("since", "until", "host_name", "udi_pid", "udi_serial", "product", "lang"),
)
# (A query string of the request line stays under aiohttp's limit of a line, 8190 bytes:
# longer, aiohttp's parser refuses the request before the console sees it.)
QUERY_VALUES = tuple(v if v != HUGE else "x" * 400 for v in VALUES)
# Fields of forms this world does not show (nothing to revoke, an account not registered
# for sync, the list's checkboxes outside a form element), as the templates name them.
UNSHOWN_FIELDS = {
    "/accounts/{account}/satellites/tokens/revoke": ["token"],
    "/accounts/{account}/sync/answer": ["answer"],
    "/accounts/{account}/virtual-accounts/{va}/product-instances/remove": ["product"],
    "/accounts/{account}/virtual-accounts/{va}/product-instances/transfer": ["product", "target"],
}
REPEATS = 200
BUDGET_SECONDS = 120  # a bound on the sweep (it takes a fraction of it)
# Files a route may answer with instead of a page.
FILE_TYPES = ("text/plain", "application/xml", "application/octet-stream", "application/gzip")
_FORM = re.compile(r"<form\b[^>]*\baction=\"([^\"]+)\"[^>]*>(.*?)</form>", re.S)
_FIELD = re.compile(r"<(?:input|select|textarea)\b[^>]*\bname=\"([^\"]+)\"")
_MARKUP_NAME = "<img src=x onerror=alert(1)> \"q\" 'a'"
_MARKUP_TEXT = "<script>alert(1)</script> \"q\" 'a'"


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str  # as the router has it: /accounts/{account}/...


def console_routes(api: Api) -> list[Route]:
    found = set()
    for route in api.client.app.router.routes():
        pattern = route.resource.canonical if route.resource else ""
        if route.method == "HEAD" or pattern.startswith(NOT_CONSOLE):
            continue
        found.add(Route(route.method, pattern))
    return sorted(found, key=lambda r: (r.pattern, r.method))


def fill(pattern: str, names: dict[str, str]) -> str:
    """The route's path with each parameter an existing name (quoted as a link has it)."""
    product = names["reserved"] if "/reservations/" in pattern else names["instance"]
    values = {**names, "product": product}
    return re.sub(r"\{(\w+)\}", lambda m: quote(values[m.group(1)], safe=""), pattern)


async def counting(db: asyncpg.Connection) -> str:
    """One query counting the rows of every table, so a snapshot before and after each
    request is one round trip. Not counted: console sessions (a sign-in adds one) and the
    rate limits' counters (a refused sign-in counts against its limit, as it should)."""
    names = await db.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        " AND tablename NOT IN ('sessions', 'rate_limit_counters') ORDER BY tablename"
    )
    tables = [row["tablename"] for row in names]
    counts = ", ".join(f'(SELECT count(*) FROM "{t}") AS "{t}"' for t in tables)  # noqa: S608
    return f"SELECT {counts}"


class Attacker:
    """A signed-in system admin sending raw requests, checking each answer."""

    def __init__(self, visitor: Visitor, db: asyncpg.Connection, counts: str, csrf: str) -> None:
        self.visitor, self.db, self.counts, self.csrf = visitor, db, counts, csrf
        self.sent = 0
        self.found: list[str] = []  # what went wrong, said at the end (all of it at once)
        self.started = time.monotonic()

    async def send(
        self,
        method: str,
        path: str,
        *,
        data: object = None,
        headers: dict[str, str] | None = None,
        encoded: bool = False,
    ) -> int:
        assert time.monotonic() - self.started < BUDGET_SECONDS, "the sweep took too long"
        before = await self.snapshot()
        url = self.visitor.base.join(URL(path, encoded=encoded))
        async with self.visitor.session.request(
            method, url, data=data, headers=headers, allow_redirects=False
        ) as response:
            body = await response.read()
            status, kind = response.status, response.content_type
        self.sent += 1
        where = f"{method} {path[:120]} {str(data)[:120]} {headers or ''}"
        if status >= 500:
            self.found.append(f"{status} {where}: {body[:300]!r}")
        elif status != 303 and not (kind == "text/html" or (status == 200 and kind in FILE_TYPES)):
            self.found.append(f"{status} {kind} {where}: {body[:300]!r}")
        elif 400 <= status < 500 and (after := await self.snapshot()) != before:
            changed = {t: (n, after[t]) for t, n in before.items() if after[t] != n}
            self.found.append(f"{status}, yet written {changed}: {where}")
        return status

    async def snapshot(self) -> dict[str, int]:
        row = await self.db.fetchrow(self.counts)
        assert row is not None
        return dict(row)

    def forms(self, fields: list[str]) -> Iterator[object]:
        """The hostile forms of a route whose forms have ``fields``."""
        csrf = [("csrf", self.csrf)]
        yield csrf  # no fields
        for value in VALUES:
            yield csrf + [(name, value) for name in fields]  # every field at once
        for name in fields:
            for value in VALUES[1:]:
                yield [*csrf, (name, value)]  # one field alone
        yield csrf + [(name, "1") for name in fields] * REPEATS
        # Bytes that are not UTF-8, as a urlencoded body.
        yield ("csrf=" + self.csrf + "".join(f"&{quote(n)}=%FF%FE" for n in fields)).encode()

    async def signed_in(self) -> bool:
        page = await self.visitor.get("/accounts", follow=False)
        return page.status == 200


async def _world(admin: Api, server: TestServer, tmp_path: Path, state_dir: Path) -> dict[str, str]:
    """Acme/Voice with a pool, a registered product with usage, a reservation, a token."""
    await setup_voice(admin, enhanced=3, cuwl=2)
    product = new_product(tmp_path, state_dir, "SLR0001")
    product.enable()
    _, reserved = await reserved_code(admin, product.request(), cuwl=1)
    agent = new_agent(tmp_path, server, "FCH0001")
    await agent.register(await new_token(admin, description="phones"))
    await agent.report_usage({ENHANCED: 1})
    instance = agent.state.product_instance_id
    assert instance is not None
    return {
        "account": "Acme",
        "va": "Voice",
        "instance": instance,
        "reserved": reserved,
        "satellite": "no-such-satellite",
    }


def _form_fields(pages: dict[str, str]) -> dict[str, list[str]]:
    """Each form action's field names, as the pages' forms have them."""
    fields: dict[str, list[str]] = {}
    for text in pages.values():
        for action, inner in _FORM.findall(text):
            names = fields.setdefault(html.unescape(action).split("?")[0], [])
            for name in _FIELD.findall(inner):
                if name != "csrf" and name not in names:
                    names.append(name)
    return fields


async def test_no_hostile_input_makes_a_5xx_or_writes_when_refused(
    admin: Api,
    server: TestServer,
    visitors: Callable[..., Visitor],
    db: asyncpg.Connection,
    tmp_path: Path,
    state_dir: Path,
) -> None:
    names = await _world(admin, server, tmp_path, state_dir)
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
    fields = _form_fields(pages)
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
        "/api/v1/accounts", {"name": _MARKUP_NAME, "description": _MARKUP_TEXT}
    )
    assert status == 200, body
    base = "/api/v1/accounts/" + quote(_MARKUP_NAME, safe="")
    status, body = await admin.post(
        base + "/virtual-accounts", {"name": _MARKUP_NAME, "description": _MARKUP_TEXT}
    )
    assert status == 200, body
    va = base + "/virtual-accounts/" + quote(_MARKUP_NAME, safe="")
    status, body = await admin.post(va + "/tokens", {"description": _MARKUP_TEXT})
    assert status == 200, body
    # A product whose type and version (its own words, sent by the agent) are markup.
    agent = Agent(tmp_path / "agent-markup")
    state = agent.init(
        Identity(
            pid="UCM",
            serial_number="FCH0009",
            uuid="6f1e0c5a-0000-4000-8000-000000000009",
            product_type=_MARKUP_NAME,
            product_version=_MARKUP_TEXT,
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
        "account": _MARKUP_NAME,
        "va": _MARKUP_NAME,
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
        if html.escape(_MARKUP_NAME) in page.text or "&lt;img src=x" in page.text:
            shown += 1
    assert shown >= 5  # the name is on the account's pages, escaped
    # The product's own words too, on its page and in the list.
    path = fill("/accounts/{account}/virtual-accounts/{va}/product-instances", names)
    for page in (await visitor.get(path), await visitor.get(f"{path}/{instance}")):
        assert page.status == 200
        assert "&lt;img src=x onerror=alert(1)&gt;" in page.text


# --- each finding of the sweep, by itself ---------------------------------------------------


async def _root(admin: Api, visitors: Callable[..., Visitor]) -> tuple[Visitor, str]:
    await setup_voice(admin, enhanced=1)
    password = await create_user(admin, "root", "system-admin", [])
    visitor = visitors()
    await visitor.sign_in("root", password)
    return visitor, (await visitor.get("/accounts")).csrf


async def _raw(
    visitor: Visitor, method: str, path: str, **kw: object
) -> tuple[int, str, str, CIMultiDictProxy[str]]:
    url = visitor.base.join(URL(path, encoded=True))
    async with visitor.session.request(method, url, allow_redirects=False, **kw) as response:  # type: ignore[arg-type]
        return response.status, response.content_type, await response.text(), response.headers


async def test_a_body_that_is_not_the_multipart_it_claims_is_a_400_page(
    admin: Api, visitors: Callable[..., Visitor], db: asyncpg.Connection
) -> None:
    visitor, csrf = await _root(admin, visitors)
    before = await snapshot(db)
    cut_off = b'--b\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n' + csrf.encode()
    anonymous = visitors()
    await anonymous.get("/sign-in")  # (its CSRF cookie: the form is read past it)
    for who, path, body, kind in (
        (anonymous, "/sign-in", b"csrf=x", "multipart/form-data"),  # no boundary
        (visitor, "/accounts/Acme/virtual-accounts", cut_off, "multipart/form-data; boundary=b"),
    ):
        status, content_type, text, _ = await _raw(
            who, "POST", path, data=body, headers={"Content-Type": kind}
        )
        assert (status, content_type) == (400, "text/html"), (path, status, text[:300])
        assert "the form could not be read" in text
    assert await snapshot(db) == before


async def test_nul_in_a_path_or_query_is_a_400_page_not_a_problem_document(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    visitor, _ = await _root(admin, visitors)
    for path in ("/events?action=a%00b", "/accounts/a%00b/licenses"):
        status, content_type, text, headers = await _raw(visitor, "GET", path)
        assert (status, content_type) == (400, "text/html"), (path, status, text[:300])
        assert "must not contain U+0000 (NUL)" in html.unescape(text)
        assert headers["Content-Security-Policy"].startswith("default-src 'self'")
        assert headers["Cache-Control"] == "no-store"


async def test_nul_in_a_form_field_is_a_400_page(
    admin: Api, visitors: Callable[..., Visitor], db: asyncpg.Connection
) -> None:
    visitor, csrf = await _root(admin, visitors)
    before = await snapshot(db)
    for path, field in (("/users/disable", "user"), ("/clients/disable", "client")):
        page = await visitor.post(path, {"csrf": csrf, field: "a\x00b"})
        assert page.status == 400, (path, page.status, page.text[:300])
        assert "must not contain U+0000 (NUL)" in html.unescape(page.text)
    assert await snapshot(db) == before


async def test_more_form_fields_than_are_read_is_a_413_page(
    admin: Api, visitors: Callable[..., Visitor], db: asyncpg.Connection
) -> None:
    visitor, csrf = await _root(admin, visitors)
    before = await snapshot(db)
    page = await visitor.post(
        "/accounts/Acme/virtual-accounts", [("csrf", csrf), *[("name", "x")] * 2000]
    )
    assert page.status == 413
    assert '<html lang="en">' in page.text
    # A body over the server's limit (api.max_body_bytes) too.
    body = io.BytesIO(f"csrf={csrf}&description={'x' * 2_000_000}".encode())
    status, content_type, text, _ = await _raw(
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
    visitor, _ = await _root(admin, visitors)
    status, content_type, text, _ = await _raw(
        visitor, "GET", "/accounts/Acme/virtual-accounts/" + "x" * 200 + "/licenses"
    )
    assert (status, content_type) == (400, "text/html"), (status, text[:300])


async def test_hostile_languages_and_cookies_are_pages(
    admin: Api, visitors: Callable[..., Visitor], db: asyncpg.Connection
) -> None:
    visitor, _ = await _root(admin, visitors)
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


async def test_the_list_kept_after_a_post_cannot_inject_a_header(
    admin: Api,
    server: TestServer,
    visitors: Callable[..., Visitor],
    tmp_path: Path,
    state_dir: Path,
) -> None:
    # The list's filters ride on the POST's query and come back in the redirect's Location.
    names = await _world(admin, server, tmp_path, state_dir)
    password = await create_user(admin, "root", "system-admin", [])
    visitor = visitors()
    await visitor.sign_in("root", password)
    path = fill("/accounts/{account}/virtual-accounts/{va}/product-instances", names)
    page = await visitor.get(path)
    hostile = "host_name=%0D%0ASet-Cookie:%20injected=1%22%E4%B8%AD&state=all"
    status, _, text, headers = await _raw(
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
    visitor, csrf = await _root(admin, visitors)
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
