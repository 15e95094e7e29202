"""The licenses pages (an account's positions per virtual account; a virtual account's
pool lines with add / change / remove and the license transfer) and a virtual account's
own page (rename, describe, delete), through the operations with the session's principal."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from tests.conftest import BASIC, CUWL, ENHANCED, Api
from tests.helpers.accounts import create_account, create_va, va_names
from tests.helpers.api import new_agent, new_token
from tests.helpers.console import Page, Visitor, assert_chinese, create_user

VOICE = "/accounts/Acme/virtual-accounts/Voice"
PAGE = VOICE + "/licenses"
API_VOICE = "/api/v1/accounts/Acme/virtual-accounts/Voice"
ENHANCED_NAME = "UC Manager Enhanced License (12.x)"
BASIC_NAME = "UC Manager Basic License (12.x)"
CUWL_NAME = "UC Manager CUWL License (12.x)"


async def pool(admin: Api, va: str = "Voice") -> list[tuple[Any, ...]]:
    status, body = await admin.get(f"/api/v1/accounts/Acme/virtual-accounts/{va}/license-pool")
    assert status == 200, body
    return [
        (line["entitlementTag"], line["quantity"], line["licenseType"], line["endDate"])
        for line in body["licenses"]
    ]


async def add_line(admin: Api, tag: str, quantity: int, va: str = "Voice") -> int:
    status, body = await admin.post(
        f"/api/v1/accounts/Acme/virtual-accounts/{va}/license-pool",
        {"entitlementTag": tag, "quantity": quantity},
    )
    assert status == 200, body
    return int(body["license"]["id"])


async def signed_in(
    admin: Api, visitors: Callable[..., Visitor], role: str, language: str = "en"
) -> Visitor:
    await create_account(admin, "Acme")
    await create_va(admin, "Acme", "Voice")
    password = await create_user(admin, "ann", role, ["Acme"])
    visitor = visitors(language)
    await visitor.sign_in("ann", password)
    return visitor


def section(page: Page, va: str) -> str:
    """The account licenses page's section of one virtual account."""
    parts = page.text.split('<section class="virtual-account-licenses">')
    [found] = [p for p in parts if f'/virtual-accounts/{va}/licenses">{va}</a>' in p]
    return found


def rows(html: str) -> list[str]:
    """The text of each body row of the tables in ``html``, cells joined by " | "."""
    out = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html, flags=re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)
        if cells:
            text = " | ".join(re.sub(r"<[^>]+>", " ", c).strip() for c in cells)
            out.append(re.sub(r"\s+", " ", text))
    return out


async def test_account_licenses_show_positions_compliance_and_borrowing(
    admin: Api, visitors: Callable[..., Visitor], server: TestServer, tmp_path: Path
) -> None:
    visitor = await signed_in(admin, visitors, "account-viewer")
    await add_line(admin, BASIC, 2)
    await add_line(admin, CUWL, 5)
    voice = new_agent(tmp_path, server, "FCH0001")
    await voice.register(await new_token(admin))
    await voice.report_usage({BASIC: 4})  # 2 short: borrowed from the CUWL tier above
    default = new_agent(tmp_path, server, "FCH0002")
    await default.register(await new_token(admin, va="DEFAULT"))
    await default.report_usage({ENHANCED: 3})  # nothing bought: out of compliance

    account = await visitor.get("/accounts/Acme")
    assert 'href="/accounts/Acme/licenses"' in account.text
    page = await visitor.get("/accounts/Acme/licenses")
    assert page.status == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert rows(section(page, "DEFAULT")) == [
        f"{ENHANCED_NAME} | 0 | 3 | 0 | -3 | Out of compliance | none"
    ]
    assert 'class="out-of-compliance"' in section(page, "DEFAULT")
    assert rows(section(page, "Voice")) == [
        f"{BASIC_NAME} | 2 | 4 | 0 | 0 | In compliance | 2 borrowed from {CUWL_NAME}",
        f"{CUWL_NAME} | 5 | 0 | 0 | 3 | In compliance | 2 lent to {BASIC_NAME}",
    ]
    assert 'class="out-of-compliance"' not in section(page, "Voice")
    # The virtual account's own page shows the same positions, and its lines, read-only.
    mine = await visitor.get(PAGE)
    assert mine.status == 200
    positions = mine.text.split('<div id="positions">')[1].split("</div>")[0]
    assert rows(positions) == rows(section(page, "Voice"))
    assert rows(mine.text.split('<table id="pool">')[1].split("</table>")[0]) == [
        f"{BASIC_NAME} | 2 | Perpetual | | | | no | Local | Active",
        f"{CUWL_NAME} | 5 | Perpetual | | | | no | Local | Active",
    ]


async def test_add_change_and_remove_a_pool_line_through_the_page(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    visitor = await signed_in(admin, visitors, "account-admin")
    page = await visitor.get(PAGE)
    assert page.status == 200
    assert "No pool lines yet." in page.text
    form = page.text.split('id="add-pool-line"')[1].split("</form>")[0]
    # The license is chosen from the catalog.
    assert f'<option value="{ENHANCED}">{ENHANCED_NAME}</option>' in form
    added = await visitor.post(
        PAGE + "/pool",
        {
            "csrf": page.csrf,
            "entitlement_tag": ENHANCED,
            "quantity": "10",
            "license_type": "PERPETUAL",
            "start_date": "",
            "end_date": "",
            "subscription_id": "",
            "export_restricted": "",
        },
        follow=False,
    )
    assert added.status == 303, added.text
    assert added.headers["Location"] == PAGE
    assert await pool(admin) == [(ENHANCED, 10, "PERPETUAL", None)]
    shown = await visitor.get(PAGE)
    [line_id] = re.findall(r'name="line" value="(\d+)"', shown.text)[:1]
    assert 'class="remove-line"' in shown.text

    changed = await visitor.post(
        PAGE + "/pool/update",
        {
            "csrf": page.csrf,
            "line": line_id,
            "entitlement_tag": ENHANCED,
            "export_restricted": "false",
            "quantity": "20",
            "license_type": "TERM",
            "start_date": "2026-01-01",
            "end_date": "2036-12-31",
            "subscription_id": "Sub-7",
        },
        follow=False,
    )
    assert changed.status == 303, changed.text
    assert await pool(admin) == [(ENHANCED, 20, "TERM", "2036-12-31")]
    shown = await visitor.get(PAGE)
    assert f"{ENHANCED_NAME} | 20 | Term | Jan 1, 2026 | Dec 31, 2036 | Sub-7" in " ".join(
        rows(shown.text.split('<table id="pool">')[1])
    )

    removed = await visitor.post(
        PAGE + "/pool/remove", {"csrf": page.csrf, "line": line_id}, follow=False
    )
    assert removed.status == 303
    assert await pool(admin) == []


async def test_transfer_moves_all_lines_or_none(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    visitor = await signed_in(admin, visitors, "account-admin")
    await create_va(admin, "Acme", "Lab")
    await add_line(admin, ENHANCED, 10)
    await add_line(admin, BASIC, 2)
    page = await visitor.get(PAGE)
    form = page.text.split('id="transfer-licenses"')[1].split("</form>")[0]
    assert '<option value="DEFAULT">DEFAULT</option>' in form
    assert '<option value="Voice">' not in form  # not to itself
    moved = await visitor.post(
        PAGE + "/transfer",
        {
            "csrf": page.csrf,
            "license_0": ENHANCED,
            "quantity_0": "4",
            "target_0": "DEFAULT",
            "license_1": BASIC,
            "quantity_1": "1",
            "target_1": "Lab",
            "license_2": "",
            "quantity_2": "",
            "target_2": "",
        },
        follow=False,
    )
    assert moved.status == 303, moved.text
    assert await pool(admin, "DEFAULT") == [(ENHANCED, 4, "PERPETUAL", None)]
    assert await pool(admin, "Lab") == [(BASIC, 1, "PERPETUAL", None)]
    assert sorted(await pool(admin)) == [
        (BASIC, 1, "PERPETUAL", None),
        (ENHANCED, 6, "PERPETUAL", None),
    ]
    # One line cannot move (only 1 Basic is free): neither does the other.
    refused = await visitor.post(
        PAGE + "/transfer",
        {
            "csrf": page.csrf,
            "license_0": ENHANCED,
            "quantity_0": "1",
            "target_0": "DEFAULT",
            "license_1": BASIC,
            "quantity_1": "5",
            "target_1": "Lab",
        },
    )
    assert refused.status == 409
    assert 'class="error"' in refused.text
    assert await pool(admin, "DEFAULT") == [(ENHANCED, 4, "PERPETUAL", None)]
    assert sorted(await pool(admin)) == [
        (BASIC, 1, "PERPETUAL", None),
        (ENHANCED, 6, "PERPETUAL", None),
    ]


async def test_bad_input_is_a_400_page_and_changes_nothing(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    visitor = await signed_in(admin, visitors, "account-admin")
    line = await add_line(admin, ENHANCED, 10)
    page = await visitor.get(PAGE)
    good = {
        "csrf": page.csrf,
        "entitlement_tag": ENHANCED,
        "quantity": "5",
        "license_type": "PERPETUAL",
        "export_restricted": "",
    }
    bad_lines: list[dict[str, str]] = [
        {"quantity": "ten"},
        {"quantity": "-5"},
        {"quantity": "0"},
        {"quantity": "1.5"},
        {"quantity": "²"},
        {"quantity": "٣"},
        {"quantity": ""},
        {"quantity": "99999999"},  # over the API's 10,000,000
        {"quantity": "9" * 40},
        {"entitlement_tag": "regid.nope"},
        {"entitlement_tag": ""},
        {"entitlement_tag": "x" * 5000},
        {"license_type": "FOREVER"},
        {"license_type": "TERM"},  # without an end date
        {"start_date": "yesterday"},
        {"end_date": "2026-13-45"},
        {"start_date": "2030-01-01", "end_date": "2029-01-01", "license_type": "TERM"},
        {"subscription_id": "s" * 101},
        {"export_restricted": "maybe"},
    ]
    for change in bad_lines:
        for path, extra in (("/pool", {}), ("/pool/update", {"line": str(line)})):
            refused = await visitor.post(PAGE + path, good | extra | change)
            assert refused.status == 400, (path, change)
            assert 'class="error"' in refused.text, (path, change)
    for form in ({"line": "abc"}, {"line": ""}, {"line": "1" * 30}):
        refused = await visitor.post(PAGE + "/pool/remove", {"csrf": page.csrf} | form)
        assert refused.status == 400, form
        refused = await visitor.post(PAGE + "/pool/update", good | form)
        assert refused.status == 400, form
    for path in ("/pool/remove", "/pool/update"):
        missing = await visitor.post(PAGE + path, good | {"line": str(line + 1000)})
        assert missing.status == 404, path
        assert 'class="error"' in missing.text
    for form in (
        {},  # no line at all
        {"license_0": ENHANCED, "quantity_0": "x", "target_0": "DEFAULT"},
        {"license_0": ENHANCED, "quantity_0": "-1", "target_0": "DEFAULT"},
        {"license_0": ENHANCED, "quantity_0": "²", "target_0": "DEFAULT"},
        {"license_0": ENHANCED, "quantity_0": "99999999", "target_0": "DEFAULT"},
        {"license_0": "regid.nope", "quantity_0": "1", "target_0": "DEFAULT"},
        {"license_0": ENHANCED, "quantity_0": "1", "target_0": ""},
        {"license_0": ENHANCED, "quantity_0": "1", "target_0": "Voice"},
    ):
        refused = await visitor.post(PAGE + "/transfer", {"csrf": page.csrf} | form)
        assert refused.status == 400, form
        assert 'class="error"' in refused.text, form
    unknown = await visitor.post(
        PAGE + "/transfer",
        {"csrf": page.csrf, "license_0": ENHANCED, "quantity_0": "1", "target_0": "Nope"},
    )
    assert unknown.status == 404
    assert "Nope" in unknown.text
    assert await pool(admin) == [(ENHANCED, 10, "PERPETUAL", None)]
    assert await pool(admin, "DEFAULT") == []


async def test_a_viewer_has_no_write_controls_and_a_forged_write_is_refused(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    viewer = await signed_in(admin, visitors, "account-viewer")
    line = await add_line(admin, ENHANCED, 10)
    for path in (PAGE, VOICE, "/accounts/Acme/licenses"):
        page = await viewer.get(path)
        assert page.status == 200, path
        assert 'method="post"' not in page.text.replace('id="sign-out" method="post"', ""), path
    csrf = page.csrf
    for path, form in (
        (PAGE + "/pool",
         {"entitlement_tag": ENHANCED, "quantity": "1", "license_type": "PERPETUAL"}),
        (
            PAGE + "/pool/update",
            {"line": str(line), "entitlement_tag": ENHANCED, "quantity": "99",
             "license_type": "PERPETUAL"},
        ),
        (PAGE + "/pool/remove", {"line": str(line)}),
        (PAGE + "/transfer", {"license_0": ENHANCED, "quantity_0": "1", "target_0": "DEFAULT"}),
        (VOICE + "/update", {"name": "Forged", "description": "forged"}),
        (VOICE + "/delete", {}),
    ):  # fmt: skip
        forged = await viewer.post(path, {"csrf": csrf} | form)
        assert forged.status == 403, path
        assert 'class="error"' in forged.text
    assert await pool(admin) == [(ENHANCED, 10, "PERPETUAL", None)]
    assert await pool(admin, "DEFAULT") == []
    assert await va_names(admin, "Acme") == ["DEFAULT", "Voice"]


async def test_another_accounts_admin_finds_nothing(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    await create_account(admin, "Globex")
    await create_va(admin, "Globex", "Voice")
    status, body = await admin.post(
        "/api/v1/accounts/Globex/virtual-accounts/Voice/license-pool",
        {"entitlementTag": ENHANCED, "quantity": 3},
    )
    assert status == 200, body
    line = str(body["license"]["id"])
    visitor = await signed_in(admin, visitors, "account-admin")
    csrf = (await visitor.get(PAGE)).csrf
    other = "/accounts/Globex/virtual-accounts/Voice"
    for path in ("/accounts/Globex/licenses", other + "/licenses", other):
        assert (await visitor.get(path)).status == 404, path
    for path, form in (
        (other + "/licenses/pool", {"entitlement_tag": ENHANCED, "quantity": "1",
                                    "license_type": "PERPETUAL", "export_restricted": ""}),
        (other + "/licenses/pool/remove", {"line": line}),
        (other + "/licenses/transfer",
         {"license_0": ENHANCED, "quantity_0": "1", "target_0": "DEFAULT"}),
        (other + "/update", {"name": "Mine", "description": ""}),
        (other + "/delete", {}),
    ):  # fmt: skip
        assert (await visitor.post(path, {"csrf": csrf} | form)).status == 404, path
    # Its own line through another account's path is not found either.
    mine = await add_line(admin, ENHANCED, 1)
    removed = await visitor.post(other + "/licenses/pool/remove", {"csrf": csrf, "line": str(mine)})
    assert removed.status == 404
    assert (await visitor.get("/accounts/Acme/virtual-accounts/Nope/licenses")).status == 404
    status, body = await admin.get("/api/v1/accounts/Globex/virtual-accounts/Voice/license-pool")
    assert [line["quantity"] for line in body["licenses"]] == [3]
    assert await va_names(admin, "Globex") == ["DEFAULT", "Voice"]
    assert await pool(admin) == [(ENHANCED, 1, "PERPETUAL", None)]


async def test_rename_describe_and_delete_a_virtual_account_on_its_page(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    visitor = await signed_in(admin, visitors, "account-admin")
    account = await visitor.get("/accounts/Acme")
    assert f'href="{VOICE}"' in account.text
    page = await visitor.get(VOICE)
    assert page.status == 200
    assert 'id="update-virtual-account"' in page.text
    assert 'id="delete-virtual-account"' in page.text

    renamed = await visitor.post(
        VOICE + "/update",
        {"csrf": page.csrf, "name": "Phones", "description": "desk phones"},
        follow=False,
    )
    assert renamed.status == 303
    phones = "/accounts/Acme/virtual-accounts/Phones"
    assert renamed.headers["Location"] == phones
    assert await va_names(admin, "Acme") == ["DEFAULT", "Phones"]
    shown = await visitor.get(phones)
    assert "<dd>desk phones</dd>" in shown.text
    assert (await visitor.get(VOICE)).status == 404

    for form, status, words in (
        ({"name": "default", "description": ""}, 409, "already exists"),
        ({"name": "", "description": ""}, 400, "name must be"),
        ({"name": "a/b", "description": ""}, 400, "name must be"),
        ({"name": "x" * 101, "description": ""}, 400, "name must be"),
        ({"name": "Phones", "description": "x" * 501}, 400, "description must be"),
    ):
        refused = await visitor.post(phones + "/update", {"csrf": page.csrf} | form)
        assert refused.status == status, form
        assert words in refused.text, form
    assert await va_names(admin, "Acme") == ["DEFAULT", "Phones"]

    # The default: its name stays, it has no delete button, and a forged delete is refused
    # in the operation's words.
    default = await visitor.get("/accounts/Acme/virtual-accounts/DEFAULT")
    assert 'id="delete-virtual-account"' not in default.text
    assert 'name="name" value="DEFAULT" required maxlength="100" readonly' in default.text
    for path, form in (("/update", {"name": "Main", "description": ""}), ("/delete", {})):
        refused = await visitor.post(
            "/accounts/Acme/virtual-accounts/DEFAULT" + path, {"csrf": page.csrf} | form
        )
        assert refused.status == 409, path
        assert "default" in refused.text

    # Not empty: refused with what it still holds; emptied, it goes.
    status, body = await admin.post(
        "/api/v1/accounts/Acme/virtual-accounts/Phones/license-pool",
        {"entitlementTag": ENHANCED, "quantity": 1},
    )
    assert status == 200, body
    refused = await visitor.post(phones + "/delete", {"csrf": page.csrf})
    assert refused.status == 409
    assert "still holds 1 license line(s)" in refused.text
    assert await va_names(admin, "Acme") == ["DEFAULT", "Phones"]
    line = body["license"]["id"]
    status, body = await admin.post(
        f"/api/v1/accounts/Acme/virtual-accounts/Phones/license-pool/{line}/delete"
    )
    assert status == 200, body
    deleted = await visitor.post(phones + "/delete", {"csrf": page.csrf}, follow=False)
    assert deleted.status == 303
    assert deleted.headers["Location"] == "/accounts/Acme"
    assert await va_names(admin, "Acme") == ["DEFAULT"]


async def test_chinese_pages_and_errors(admin: Api, visitors: Callable[..., Visitor]) -> None:
    visitor = await signed_in(admin, visitors, "account-admin", "zh-CN,zh;q=0.9")
    await add_line(admin, BASIC, 2)
    status, body = await admin.post(
        API_VOICE + "/license-pool",
        {"entitlementTag": CUWL, "quantity": 3, "licenseType": "TERM",
         "startDate": "2020-01-01", "endDate": "2020-12-31"},
    )  # fmt: skip
    assert status == 200, body
    page = await visitor.get(PAGE)
    csrf = page.csrf
    pages = [
        page,
        await visitor.get("/accounts/Acme/licenses"),
        await visitor.get("/accounts/Acme"),
        await visitor.get(VOICE),
        await visitor.get("/accounts/Acme/virtual-accounts/DEFAULT"),
        await visitor.get("/accounts/Acme/virtual-accounts/DEFAULT/licenses"),  # empty
        # Refusals worded by the console: in Chinese.
        await visitor.post(PAGE + "/pool", {"csrf": csrf, "quantity": "x"}),
        await visitor.post(
            PAGE + "/pool",
            {"csrf": csrf, "quantity": "1", "license_type": "TERM", "start_date": "x"},
        ),
        await visitor.post(PAGE + "/transfer", {"csrf": csrf, "quantity_0": "x"}),
    ]
    assert "数量须为许可证的整数个数。" in pages[6].text
    assert "日期须写成" in pages[7].text
    assert "数量须为许可证的整数个数。" in pages[8].text
    # Refusals worded by the services are English, as the API's problem documents are:
    # the rest of the page is Chinese.
    english: list[str] = []
    for path, form in (
        (PAGE + "/pool", {"entitlement_tag": "regid.nope", "quantity": "1",
                          "license_type": "PERPETUAL", "export_restricted": ""}),
        (PAGE + "/transfer", {"license_0": BASIC, "quantity_0": "9", "target_0": "DEFAULT"}),
        (VOICE + "/update", {"name": "DEFAULT", "description": ""}),
        (VOICE + "/delete", {}),
    ):  # fmt: skip
        refused = await visitor.post(path, {"csrf": csrf} | form)
        assert refused.status in (400, 409), path
        [detail] = re.findall(r'<p class="error" role="alert">([^<]+)</p>', refused.text)
        english.append(html.unescape(detail))
        pages.append(refused)
    pages.append(await visitor.get("/accounts/Acme/virtual-accounts/Nope/licenses"))
    status, body = await admin.get("/api/v1/license-catalog")
    assert status == 200, body
    names = [entry["displayName"] for entry in body["licenses"]]  # the catalog's, as it is
    data = ("Acme", "ann", "DEFAULT", "Voice", "Default virtual account", "Nope", *names, *english)
    for shown in pages:
        assert_chinese(shown, data)
    assert '<td class="compliance">合规</td>' in pages[0].text
    assert re.search(r"2020年12月31日", pages[0].text)  # a line's end date, the Chinese way
