"""Where a page names another thing that has a page, it links it: the crumbs of every page
below a virtual account pass through the virtual account's own page; a product instance
and its reservation link each other; an export key links its product instance. The
answers say what the pages show of them (a reservation's ``active``, a pool line's
``editable``), so the pages decide nothing by strings of their own."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from aiohttp.test_utils import TestServer

from satellite_agent.export import ExportControl
from tests.conftest import Api
from tests.helpers.api import FEATURE, new_product
from tests.helpers.console import Visitor, create_user
from tests.helpers.export import registered, setup_acme
from tests.helpers.reservation_pages import PAGE, error_of, reserve, setup, shown_code, signed_in

VOICE = "/accounts/Acme/virtual-accounts/Voice"


def crumbs(text: str) -> str:
    return text.split('<nav class="breadcrumbs"')[1].split("</nav>")[0]


async def test_the_crumbs_of_a_virtual_accounts_pages_pass_through_its_own_page(
    admin: Api, visitors: Callable[..., Visitor], state_dir: Path, tmp_path: Path
) -> None:
    await setup(admin)
    visitor = await signed_in(visitors, admin)
    for page in ("licenses", "product-instances", "tokens", "reservations", "export-keys"):
        shown = await visitor.get(f"{VOICE}/{page}")
        assert shown.status == 200, page
        trail = crumbs(shown.text)
        assert re.findall(r'href="([^"]+)"', trail) == ["/accounts", "/accounts/Acme", VOICE], page
    own = await visitor.get(VOICE)
    assert re.findall(r'href="([^"]+)"', crumbs(own.text)) == ["/accounts", "/accounts/Acme"]

    # One level further down: the list the page belongs to after the virtual account.
    product = new_product(tmp_path, state_dir, "LNK0001")
    product.enable()
    issued = await reserve(visitor, (await visitor.get(PAGE)).csrf, product.request(), cuwl="1")
    assert issued.status == 200, error_of(issued)
    [product_id] = re.findall(r"<piid>([^<]+)</piid>", shown_code(issued))
    for path, listing in (
        (f"{PAGE}/{product_id}", PAGE),
        (f"{VOICE}/product-instances/{product_id}", f"{VOICE}/product-instances"),
    ):
        detail = await visitor.get(path)
        assert detail.status == 200, path
        assert re.findall(r'href="([^"]+)"', crumbs(detail.text)) == [
            "/accounts",
            "/accounts/Acme",
            VOICE,
            listing,
        ]


async def test_a_product_instance_and_its_reservation_link_each_other(
    admin: Api, visitors: Callable[..., Visitor], state_dir: Path, tmp_path: Path
) -> None:
    await setup(admin)
    visitor = await signed_in(visitors, admin)
    product = new_product(tmp_path, state_dir, "LNK0002")
    product.enable()
    issued = await reserve(visitor, (await visitor.get(PAGE)).csrf, product.request(), cuwl="1")
    [product_id] = re.findall(r"<piid>([^<]+)</piid>", shown_code(issued))
    instance_page = f"{VOICE}/product-instances/{product_id}"
    reservation_page = f"{PAGE}/{product_id}"

    reservation = await visitor.get(reservation_page)
    assert f'id="product-instance-link" href="{instance_page}"' in reservation.text
    listing = await visitor.get(PAGE)
    assert f'href="{instance_page}"' in listing.text  # the product column

    instance = await visitor.get(instance_page)
    link = re.search(r'id="reservation-link" href="([^"]+)">([^<]+)</a>', instance.text)
    assert link is not None
    assert link.groups() == (reservation_page, "Awaiting confirmation")
    chinese = await visitor.get(instance_page + "?lang=zh-CN")
    assert 'id="reservation-link"' in chinese.text
    assert ">等待确认</a>" in chinese.text

    # The answer says whether the reservation is active; the page follows it.
    status, body = await admin.get(
        f"/api/v1/accounts/Acme/virtual-accounts/Voice/devices/{product_id}"
    )
    assert status == 200
    assert body["reservation"]["active"] is True
    await visitor.post(
        f"{reservation_page}/force-remove",
        {"csrf": reservation.csrf, "reason": "burnt"},
    )
    status, body = await admin.get(
        f"/api/v1/accounts/Acme/virtual-accounts/Voice/devices/{product_id}"
    )
    assert body["reservation"]["active"] is False
    ended = await visitor.get(reservation_page)
    assert 'id="force-remove"' not in ended.text
    assert 'id="download-code"' not in ended.text


async def test_an_export_key_links_its_product_instance(
    admin: Api, server: TestServer, tmp_path: Path, visitors: Callable[..., Visitor]
) -> None:
    await setup_acme(admin)
    agent = await registered(admin, server, tmp_path, "LNK0003")
    await ExportControl(agent).request(FEATURE)
    product_id = agent.state.product_instance_id
    password = await create_user(admin, "victor", "account-viewer", ["Acme"])
    viewer = visitors()
    await viewer.sign_in("victor", password)
    keys = await viewer.get(f"{VOICE}/export-keys")
    row = keys.text.split('<table id="export-keys">')[1].split("</table>")[0]
    assert f'href="{VOICE}/product-instances/{product_id}"' in row
    assert "<th>Granted on</th>" in keys.text
    instance = await viewer.get(f"{VOICE}/product-instances/{product_id}")
    assert instance.status == 200
    assert "<th>Granted on</th>" in instance.text


async def test_a_pool_line_says_whether_it_may_be_changed_here(admin: Api) -> None:
    await setup(admin)
    status, body = await admin.get("/api/v1/accounts/Acme/virtual-accounts/Voice/license-pool")
    assert status == 200
    assert body["licenses"]
    assert all(line["source"] == "local" and line["editable"] for line in body["licenses"])


async def test_numbers_are_written_for_the_locale(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    await setup(admin)
    visitor = await signed_in(visitors, admin)
    tokens = await visitor.get(f"{VOICE}/tokens")
    created = await visitor.post(
        f"{VOICE}/tokens", {"csrf": tokens.csrf, "description": "lab", "number_of_uses": "1000000"}
    )
    assert created.status == 200
    assert "<td>0 / 1,000,000</td>" in created.text
