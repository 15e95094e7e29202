"""A plain-HTTP visitor of the console: its own cookie jar (one per person), forms posted
as a browser posts them, the CSRF token read from the page."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
from babel.messages.pofile import read_po
from yarl import URL

from satellite.console import i18n
from tests.conftest import Api

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


@dataclass
class Page:
    status: int
    url: URL
    text: str
    headers: Any  # the answer's headers (a multidict)
    cookies: Any  # the Set-Cookie headers' morsels

    @property
    def csrf(self) -> str:
        match = _CSRF.search(self.text)
        assert match, "the page has no form with a CSRF token"
        return match.group(1)


class Visitor:
    def __init__(self, api: Api, accept_language: str = "en") -> None:
        self.base = api.client.make_url("")
        self.jar = aiohttp.CookieJar(unsafe=True)  # the test server is 127.0.0.1
        self.session = aiohttp.ClientSession(
            cookie_jar=self.jar, headers={"Accept-Language": accept_language}
        )

    async def close(self) -> None:
        await self.session.close()

    async def _page(self, response: aiohttp.ClientResponse) -> Page:
        return Page(
            response.status,
            response.url,
            await response.text(),
            response.headers,
            response.cookies,
        )

    async def get(self, path: str, *, follow: bool = True) -> Page:
        async with self.session.get(self.base.join(URL(path)), allow_redirects=follow) as r:
            return await self._page(r)

    async def post(
        self, path: str, form: dict[str, str] | list[tuple[str, str]], *, follow: bool = True
    ) -> Page:
        """``form`` as pairs when a field repeats (checkboxes)."""
        async with self.session.post(
            self.base.join(URL(path)), data=form, allow_redirects=follow
        ) as r:
            return await self._page(r)

    async def sign_in(self, username: str, password: str, *, follow: bool = True) -> Page:
        form = await self.get("/sign-in")
        return await self.post(
            "/sign-in",
            {"username": username, "password": password, "csrf": form.csrf},
            follow=follow,
        )

    def cookie(self, name: str) -> str | None:
        for morsel in self.jar:
            if morsel.key == name:
                return morsel.value
        return None


PASSWORD = "a long password!"


async def create_user(
    admin: Api, username: str, role: str, accounts: list[str], password: str = PASSWORD
) -> str:
    status, body = await admin.post(
        "/api/v1/users",
        {"username": username, "password": password, "role": role, "accounts": accounts},
    )
    assert status == 200, body
    return password


def catalog(language: i18n.Language) -> dict[str, str]:
    """The messages of ``language``'s catalog: msgid -> msgstr."""
    with i18n.po_path(language).open("rb") as po:
        return {m.id: str(m.string) for m in read_po(po) if m.id and isinstance(m.id, str)}


def visible_text(page: str) -> str:
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def assert_chinese(page: Page, data: Iterable[str] = ()) -> None:
    """``page`` is in Chinese with no English message or word left: besides ``data`` (what
    the test's users typed: names, descriptions), the language link's own name, and
    ``<code>`` (tokens, codes, identifiers: data, not words)."""
    assert_chinese_html(str(page.url), page.text, data)


def assert_chinese_html(url: str, page: str, data: Iterable[str] = ()) -> None:
    """As ``assert_chinese``, for a page's HTML from anywhere (a browser's, say)."""
    assert '<html lang="zh-CN">' in page, url
    text = visible_text(re.sub(r"<code\b[^>]*>[^<]*</code>", " ", page))
    # Product instance ids shown as text (a page's title): a random id's group of hex
    # letters ("decf") is not an English word.
    text = _UUID.sub(" ", text)
    # The language link names itself in its own language.
    text = text.replace("English", "")
    for item in sorted(data, key=len, reverse=True):
        text = text.replace(item, "")
    for message in catalog(i18n.ENGLISH):
        assert message not in text, (url, message)
    assert not re.search(r"\b[A-Za-z]{4,}\b", text), (url, text)
