"""The console attacked with hostile input (tests/console/test_hostile_input.py and
test_bad_input_pages.py): its routes from the app's router, their path parameters filled
with the names of a small world, a signed-in attacker sending raw requests and checking
each answer (never a 5xx, always a page or the file asked for, nothing written when
refused)."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import asyncpg
from aiohttp.test_utils import TestServer
from multidict import CIMultiDictProxy
from yarl import URL

from tests.conftest import ENHANCED, Api
from tests.helpers.api import (
    new_agent,
    new_product,
    new_token,
    reserved_code,
    setup_voice,
)
from tests.helpers.console import Visitor, create_user

# Routes of other layers than the console (and its assets).
NOT_CONSOLE = (
    *("/api", "/backend", "/devices", "/device", "/sync/v1", "/healthz", "/readyz", "/oauth"),
    "/static",
)
# Not attacked with a session: they end it or start one (attacked without one).
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
FILE_TYPES = (
    "text/plain",
    "application/xml",
    "application/octet-stream",
    "application/gzip",
    "application/x-satellite-sync",  # a registration request (any token goes in it)
)
_FORM = re.compile(r"<form\b[^>]*\baction=\"([^\"]+)\"[^>]*>(.*?)</form>", re.S)
_FIELD = re.compile(r"<(?:input|select|textarea)\b[^>]*\bname=\"([^\"]+)\"")
MARKUP_NAME = "<img src=x onerror=alert(1)> \"q\" 'a'"
MARKUP_TEXT = "<script>alert(1)</script> \"q\" 'a'"


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


async def world(admin: Api, server: TestServer, tmp_path: Path, state_dir: Path) -> dict[str, str]:
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


def form_fields(pages: dict[str, str]) -> dict[str, list[str]]:
    """Each form action's field names, as the pages' forms have them."""
    fields: dict[str, list[str]] = {}
    for text in pages.values():
        for action, inner in _FORM.findall(text):
            names = fields.setdefault(html.unescape(action).split("?")[0], [])
            for name in _FIELD.findall(inner):
                if name != "csrf" and name not in names:
                    names.append(name)
    return fields


async def root(admin: Api, visitors: Callable[..., Visitor]) -> tuple[Visitor, str]:
    await setup_voice(admin, enhanced=1)
    password = await create_user(admin, "root", "system-admin", [])
    visitor = visitors()
    await visitor.sign_in("root", password)
    return visitor, (await visitor.get("/accounts")).csrf


async def raw(
    visitor: Visitor, method: str, path: str, **kw: object
) -> tuple[int, str, str, CIMultiDictProxy[str]]:
    url = visitor.base.join(URL(path, encoded=True))
    async with visitor.session.request(method, url, allow_redirects=False, **kw) as response:  # type: ignore[arg-type]
        return response.status, response.content_type, await response.text(), response.headers
