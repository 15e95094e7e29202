"""The SLR pages of the console as the plain-HTTP tests drive them: forms with a tag and a
quantity per license, the authorization code and the error a page shows."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

from yarl import URL

from tests.conftest import CUWL, ENHANCED, Api
from tests.helpers.api import licenses, setup_pool
from tests.helpers.console import Page, Visitor, create_user

PAGE = "/accounts/Acme/virtual-accounts/Voice/reservations"
_CODE = re.compile(r'<code id="authorization-code">([^<]*)</code>')


async def post_pairs(visitor: Visitor, path: str, pairs: list[tuple[str, str]]) -> Page:
    """A form with repeated fields (a tag and a quantity per license), as a browser posts it."""
    async with visitor.session.post(visitor.base.join(URL(path)), data=pairs) as response:
        return Page(
            response.status,
            response.url,
            await response.text(),
            response.headers,
            response.cookies,
        )


def licenses_form(csrf: str, **counts: str) -> list[tuple[str, str]]:
    tags = {"enhanced": ENHANCED, "cuwl": CUWL}
    pairs = [("csrf", csrf)]
    for name, tag in tags.items():
        pairs += [("tag", tag), ("quantity", counts.get(name, ""))]
    return pairs


async def reserve(visitor: Visitor, csrf: str, request_code: str, **counts: str) -> Page:
    pairs = [("request_code", request_code), *licenses_form(csrf, **counts)]
    return await post_pairs(visitor, PAGE + "/reserve", pairs)


def shown_code(page: Page) -> str:
    match = _CODE.search(page.text)
    assert match, page.text
    return html.unescape(match.group(1))


def error_of(page: Page) -> str:
    match = re.search(r'<p class="error" role="alert">([^<]*)</p>', page.text)
    assert match, page.text
    return html.unescape(match.group(1))


async def positions(admin: Api) -> dict[str, tuple[int, int]]:
    """(reserved, available) per tag."""
    return {t: (x["reserved"], x["available"]) for t, x in (await licenses(admin)).items()}


async def signed_in(visitors: Callable[..., Visitor], admin: Api, language: str = "en") -> Visitor:
    password = await create_user(admin, "ann", "account-admin", ["Acme"])
    visitor = visitors(language)
    await visitor.sign_in("ann", password)
    return visitor


async def setup(admin: Api) -> None:
    await setup_pool(
        admin,
        {"entitlementTag": ENHANCED, "quantity": 5},
        {"entitlementTag": CUWL, "quantity": 2},
    )
