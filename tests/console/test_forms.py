"""The console's number fields take ASCII digits only: "²" (a digit to ``str.isdigit()``,
not to ``int()``) is a 400 page naming what is wrong, on every paged page and in every
form with a number, never a 500; nothing is written."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import pytest

from tests.conftest import Api
from tests.helpers.api import setup_voice, snapshot
from tests.helpers.console import Visitor, create_user

VA = "/accounts/Acme/virtual-accounts/Voice"
OFFSET = "The offset is a whole number."


async def _signed_in(admin: Api, visitors: Callable[..., Visitor]) -> Visitor:
    await setup_voice(admin, enhanced=1)
    password = await create_user(admin, "root", "system-admin", [])
    visitor = visitors()
    await visitor.sign_in("root", password)
    return visitor


@pytest.mark.parametrize(
    "path",
    [
        "/events?offset=²",
        f"{VA}/product-instances?offset=²",
        f"{VA}/export-keys?offset=²",
        f"{VA}/reservations?offset=²",
        "/accounts/Acme/sync?history_offset=²",
        "/events?offset=-1",
        "/events?offset=1e309",
        "/events?offset=" + "9" * 19,
    ],
)
async def test_an_offset_that_is_not_ascii_digits_is_a_400_page(
    admin: Api, visitors: Callable[..., Visitor], path: str
) -> None:
    visitor = await _signed_in(admin, visitors)
    page = await visitor.get(path)
    assert page.status == 400, (path, page.status)
    assert OFFSET in page.text
    assert page.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("field", ["expires_after_days", "number_of_uses"])
async def test_a_superscript_digit_in_the_token_form_is_refused(
    admin: Api, visitors: Callable[..., Visitor], db: asyncpg.Connection, field: str
) -> None:
    visitor = await _signed_in(admin, visitors)
    page = await visitor.get(f"{VA}/tokens")
    before = await snapshot(db)
    refused = await visitor.post(
        f"{VA}/tokens",
        {"csrf": page.csrf, "description": "x", field: "²", "export_controlled": ""},
    )
    assert refused.status == 400
    assert "Expiry days and uses are whole numbers." in refused.text
    assert await snapshot(db) == before


async def test_a_superscript_digit_as_a_satellite_token_expiry_is_refused(
    admin: Api, visitors: Callable[..., Visitor], db: asyncpg.Connection
) -> None:
    visitor = await _signed_in(admin, visitors)
    page = await visitor.get("/accounts/Acme/satellites")
    before = await snapshot(db)
    refused = await visitor.post(
        "/accounts/Acme/satellites/tokens",
        {"csrf": page.csrf, "description": "x", "expires_days": "²"},
    )
    assert refused.status == 400
    assert "The expiry is a whole number of days." in refused.text
    assert await snapshot(db) == before


@pytest.mark.parametrize(
    "since", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-13-01", "²"]
)
async def test_a_moment_no_timestamp_holds_is_a_400_page(
    admin: Api, visitors: Callable[..., Visitor], since: str
) -> None:
    visitor = await _signed_in(admin, visitors)
    page = await visitor.get("/events?since=" + since.replace("+", "%2B"))
    assert page.status == 400, (since, page.status)
    assert "Since and until are dates (YYYY-MM-DD)." in page.text
