"""The export keys page of a virtual account: the keys granted from its pool to products
registered by the real agent, the ended ones with ?status=all; any role of the account
reads it, another account's admin gets 404; in Chinese."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aiohttp.test_utils import TestServer

from satellite_agent.export import ExportControl
from tests.conftest import Api
from tests.helpers.api import FEATURE
from tests.helpers.console import Visitor, assert_chinese, create_user
from tests.helpers.export import registered, setup_acme

PAGE = "/accounts/Acme/virtual-accounts/Voice/export-keys"


def rows(text: str) -> str:
    return text.split('<table id="export-keys">')[1].split("</table>")[0]


async def test_granted_keys_and_with_the_ended_ones(
    admin: Api, server: TestServer, tmp_path: Path, visitors: Callable[..., Visitor]
) -> None:
    await setup_acme(admin, keys=2)
    kept = await registered(admin, server, tmp_path, "EXP101")
    returned = await registered(admin, server, tmp_path, "EXP102")
    for agent in (kept, returned):
        await ExportControl(agent).request(FEATURE)
    await ExportControl(returned).give_back(FEATURE)

    password = await create_user(admin, "victor", "account-viewer", ["Acme"])
    viewer = visitors()
    await viewer.sign_in("victor", password)
    account = await viewer.get("/accounts/Acme")
    assert f'href="{PAGE}"' in account.text
    page = await viewer.get(PAGE)
    assert page.status == 200
    assert page.headers["Cache-Control"] == "no-store"
    granted = rows(page.text)
    assert f"<code>{FEATURE}</code>" in granted
    assert f"<code>{kept.state.product_instance_id}</code>" in granted
    assert "PID:UCM SN:EXP101" in granted
    assert "<td>Granted</td>" in granted
    assert "EXP102" not in granted
    assert f'href="{PAGE}?status=all"' in page.text

    every = await viewer.get(PAGE + "?status=all")
    assert every.status == 200
    both = rows(every.text)
    assert "EXP101" in both
    assert "EXP102" in both
    assert "<td>Returned</td>" in both
    assert "(returned by the product)" in both
    assert 'id="show-granted"' in every.text
    assert 'method="post"' not in every.text.replace('id="sign-out" method="post"', "")

    for query in ("?status=returned", "?offset=x", "?offset=" + "9" * 30):
        refused = await viewer.get(PAGE + query)
        assert refused.status == 400, query
        assert 'class="error"' in refused.text
    status, catalog = await admin.get("/api/v1/license-catalog")
    assert status == 200, catalog
    names = [entry["displayName"] for entry in catalog["licenses"]]  # data, not words
    zh = visitors("zh-CN")
    await zh.sign_in("victor", password)
    for path in (PAGE, PAGE + "?status=all", PAGE + "?offset=x"):
        shown = await zh.get(path)
        assert_chinese(shown, data=["Acme", "Voice", "victor", "PID", "UCM", *names])


async def test_another_account_is_not_found(admin: Api, visitors: Callable[..., Visitor]) -> None:
    await setup_acme(admin, keys=1)
    assert (await admin.post("/api/v1/accounts", {"name": "Globex"}))[0] == 200
    password = await create_user(admin, "gina", "account-admin", ["Globex"])
    outsider = visitors()
    await outsider.sign_in("gina", password)
    assert (await outsider.get(PAGE)).status == 404
    assert (await outsider.get("/accounts/Globex/virtual-accounts/Nope/export-keys")).status == 404
    empty = await outsider.get("/accounts/Globex/virtual-accounts/DEFAULT/export-keys")
    assert empty.status == 200
    assert "No export keys." in empty.text
