"""The product instances pages: the list searched, filtered and paged by the operation,
the detail (registration, authorization per license, export keys, the usage chart),
transfer and remove; the real agent registers the products."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path

import asyncpg
from aiohttp.test_utils import TestServer

from satellite_agent.client import Agent
from satellite_agent.export import ExportControl
from tests.conftest import BASIC, ENHANCED, Api
from tests.helpers.api import ACCOUNT, FEATURE, VOICE, new_agent, new_token, setup_voice
from tests.helpers.console import Visitor, assert_chinese, create_user
from tests.helpers.devices import devices, product_id, register, snapshot
from tests.helpers.export import add_keys
from tests.helpers.licenses import BASIC_NAME, ENHANCED_NAME

PAGE = "/accounts/Acme/virtual-accounts/Voice/product-instances"
LAB_PAGE = "/accounts/Acme/virtual-accounts/Lab/product-instances"


def serials(page: str) -> list[str]:
    """The UDI serial numbers of the list's rows, in order."""
    table = page.split('<table id="product-instances">')[1].split("</table>")[0]
    return re.findall(r"<code>UCM</code> <code>([^<]+)</code>", table)


def links(page: str) -> dict[str, str]:
    found = re.findall(r'<a rel="(prev|next)" href="([^"]+)"', page)
    return {rel: href.replace("&amp;", "&") for rel, href in found}


async def signed_in(
    admin: Api, visitors: Callable[..., Visitor], role: str = "account-admin", lang: str = "en"
) -> Visitor:
    name = {"account-admin": "ann", "account-viewer": "victor"}[role]
    password = await create_user(admin, name, role, ["Acme"])
    visitor = visitors(lang)
    await visitor.sign_in(name, password)
    return visitor


async def add_lab(admin: Api) -> None:
    status, body = await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Lab"})
    assert status == 200, body


async def test_search_filter_and_page_through_the_list(
    admin: Api,
    visitors: Callable[..., Visitor],
    server: TestServer,
    tmp_path: Path,
    db: asyncpg.Connection,
) -> None:
    await setup_voice(admin)
    token = await new_token(admin)
    agents: list[Agent] = []
    for n in range(1, 28):  # one more than a page of registered ones, and one to deregister
        agent = new_agent(tmp_path, server, f"FCH{n:04}")
        await agent.register(token)
        agents.append(agent)
    await db.execute(
        "UPDATE product_instances SET hostname = 'cucm-pub.example.net' "
        "WHERE udi_serial = 'FCH0002'"
    )
    await agents[26].deregister()
    visitor = await signed_in(admin, visitors)

    first = await visitor.get(PAGE)
    assert first.status == 200
    assert first.headers["Cache-Control"] == "no-store"
    assert serials(first.text) == [f"FCH{n:04}" for n in range(1, 26)]
    assert "Shown: 1-25 · Total: 26" in first.text
    assert list(links(first.text)) == ["next"]
    assert f'href="{PAGE}/{product_id(agents[0])}"' in first.text
    second = await visitor.get(links(first.text)["next"])
    assert serials(second.text) == ["FCH0026"]
    assert links(second.text) == {"prev": f"{PAGE}?state=Registered&offset=0"}

    # Each filter, done by the operation (the same as the API's and the CLI's).
    for query, expected in (
        ("?host_name=PUB.example", ["FCH0002"]),
        ("?udi_serial=FCH0003", ["FCH0003"]),
        ("?udi_pid=ISR4431", []),
        ("?product=UCM&udi_serial=FCH0004", ["FCH0004"]),
        ("?state=Deregistered", ["FCH0027"]),
        ("?state=Removed", []),
    ):
        page = await visitor.get(PAGE + query)
        assert page.status == 200, query
        assert serials(page.text) == expected, query
    assert "No product instances match." in (await visitor.get(PAGE + "?state=Removed")).text
    # Every state: 27; the filters stay on the paging links and in the form.
    host = socket.gethostname()
    every = await visitor.get(f"{PAGE}?state=all&host_name={host}")
    assert "Total: 26" in every.text  # one of 27 has another host name now
    following = links(every.text)["next"]
    assert f"host_name={host}" in following
    assert "state=all" in following
    assert '<option value="all" selected>' in every.text
    assert f'name="host_name" maxlength="256" value="{host}"' in every.text
    last = await visitor.get(following)
    assert serials(last.text) == ["FCH0027"]

    for query in (
        "?offset=ten",
        "?offset=-1",
        "?offset=" + "9" * 19,
        "?state=gone",
        "?udi_pid=" + "P" * 200,
        "?host_name=" + "h" * 300,
    ):
        refused = await visitor.get(PAGE + query)
        assert refused.status == 400, query
        assert 'class="error"' in refused.text, query
        assert 'id="product-instances"' not in refused.text
    far = await visitor.get(PAGE + "?offset=" + "9" * 18)
    assert far.status == 200
    assert serials(far.text) == []
    assert "Total: 26" in far.text
    assert "status &#39;gone&#39; is not one of" in (await visitor.get(PAGE + "?state=gone")).text


async def test_the_detail_shows_registration_authorization_export_keys_and_a_chart(
    admin: Api, visitors: Callable[..., Visitor], server: TestServer, tmp_path: Path
) -> None:
    status, body = await admin.post(
        "/api/v1/accounts", {"name": "Acme", "exportControlledAllowed": True}
    )
    assert status == 200, body
    assert (await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Voice"}))[0] == 200
    for tag, quantity in ((ENHANCED, 5), (BASIC, 10)):
        status, body = await admin.post(
            VOICE + "/license-pool", {"entitlementTag": tag, "quantity": quantity}
        )
        assert status == 200, body
    await add_keys(admin, 1)
    agent = await register(admin, tmp_path, server, "FCH0001")
    for usage in ({ENHANCED: 3}, {ENHANCED: 7, BASIC: 2}):
        await agent.report_usage(usage)
    await ExportControl(agent).request(FEATURE)
    quiet = await register(admin, tmp_path, server, "FCH0002", share=False)
    visitor = await signed_in(admin, visitors)

    page = await visitor.get(f"{PAGE}/{product_id(agent)}")
    assert page.status == 200
    assert page.headers["Cache-Control"] == "no-store"
    registration = page.text.split('id="registration"')[1].split("</dl>")[0]
    assert f"<code>{product_id(agent)}</code>" in registration
    assert "<code>FCH0001</code>" in registration
    assert socket.gethostname() in registration
    assert '<dd id="state">Registered</dd>' in registration
    assert "Authorization renewal due" in registration
    assert '<span id="authorization">Authorized</span>' in page.text
    per_license = page.text.split('id="authorization-per-license"')[1].split("</table>")[0]
    rows = re.findall(
        r"<tr>\s*<td>([^<]+)</td>\s*<td>(\d+)</td>\s*<td>(\d+)</td>\s*"
        r"<td>(\d+)</td>\s*<td[^>]*>([^<]+)</td>",
        per_license,
    )
    assert rows == [
        (BASIC_NAME, "2", "2", "10", "In compliance"),
        (ENHANCED_NAME, "7", "7", "5", "Out of compliance"),
    ]
    # One chart per license, its text alternative saying what it shows.
    charts = re.findall(r"<svg .*?</svg>", page.text, flags=re.S)
    assert len(charts) == 2
    assert (
        f'<title id="usage-chart-1-title">Usage of {ENHANCED_NAME} over time</title>' in charts[1]
    )
    assert "7 in use by this product" in charts[1]
    assert "(2 reports shown); the virtual account owns 5." in charts[1]
    assert charts[1].count("<circle") == 2
    assert "style=" not in page.text
    keys = page.text.split('id="export-keys"')[1].split("</table>")[0]
    assert f"<code>{FEATURE}</code>" in keys
    assert "<td>Granted</td>" in keys
    assert 'id="usage-history"' in page.text

    # A product that reported nothing and shares no host name: still a whole page.
    empty = await visitor.get(f"{PAGE}/{product_id(quiet)}")
    assert empty.status == 200
    assert "<h1>PID:UCM SN:FCH0002</h1>" in empty.text
    assert "This product has reported no usage." in empty.text
    assert "No export keys." in empty.text
    assert "<svg" not in empty.text


async def test_transfer_and_remove_through_the_detail_page(
    admin: Api,
    visitors: Callable[..., Visitor],
    server: TestServer,
    tmp_path: Path,
    db: asyncpg.Connection,
) -> None:
    await setup_voice(admin, enhanced=10)
    await add_lab(admin)
    agent = await register(admin, tmp_path, server, "FCH0001")
    await agent.report_usage({ENHANCED: 4})
    product = product_id(agent)
    visitor = await signed_in(admin, visitors)
    page = await visitor.get(f"{PAGE}/{product}")
    assert '<option value="Lab">Lab</option>' in page.text
    assert '<option value="Voice">' not in page.text  # not where it is already

    moved = await visitor.post(
        f"{PAGE}/{product}/transfer", {"csrf": page.csrf, "target": "Lab"}, follow=False
    )
    assert moved.status == 303
    assert moved.headers["Location"] == f"{LAB_PAGE}/{product}"
    assert (await devices(admin))["totalRecords"] == 0
    [there] = (await devices(admin, ACCOUNT + "/virtual-accounts/Lab"))["devices"]
    assert there["licenseUsage"][0]["quantity"] == 4
    shown = await visitor.get(f"{LAB_PAGE}/{product}")
    assert '<dd><a href="/accounts/Acme/virtual-accounts/Lab">Lab</a></dd>' in shown.text
    assert (await visitor.get(f"{PAGE}/{product}")).status == 404  # not Voice's any more

    removed = await visitor.post(f"{LAB_PAGE}/{product}/remove", {"csrf": page.csrf}, follow=False)
    assert removed.status == 303
    assert removed.headers["Location"] == LAB_PAGE
    status, detail = await admin.get(f"{ACCOUNT}/virtual-accounts/Lab/devices/{product}")
    assert (status, detail["status"], detail["licenseUsage"]) == (200, "Removed", [])
    after = await visitor.get(f"{LAB_PAGE}/{product}")
    assert '<dd id="state">Removed</dd>' in after.text
    assert 'id="transfer"' not in after.text
    assert 'id="remove"' not in after.text
    assert serials((await visitor.get(LAB_PAGE)).text) == []


async def test_transfer_and_remove_the_products_chosen_on_the_list(
    admin: Api,
    visitors: Callable[..., Visitor],
    server: TestServer,
    tmp_path: Path,
    db: asyncpg.Connection,
) -> None:
    await setup_voice(admin)
    await add_lab(admin)
    agents = [await register(admin, tmp_path, server, f"FCH000{n}") for n in range(1, 5)]
    ids = [product_id(agent) for agent in agents]
    visitor = await signed_in(admin, visitors)
    query = "?udi_pid=UCM"
    page = await visitor.get(PAGE + query)
    assert page.text.count('type="checkbox" name="product"') == 4
    assert f'action="{PAGE}/transfer?udi_pid=UCM"' in page.text

    before = await snapshot(db)
    for form, status, words in (
        ([("target", "Lab")], 400, "Choose the product instances first."),
        ([("target", "Nowhere"), ("product", ids[0])], 404, "&#39;Nowhere&#39; not found"),
        ([("target", "Lab"), ("product", "not-a-uuid")], 404, "not-a-uuid"),
        ([("target", "Lab"), ("product", ids[0]), ("product", ids[0])], 400, "named twice"),
    ):
        refused = await visitor.post(f"{PAGE}/transfer{query}", [("csrf", page.csrf), *form])
        assert refused.status == status, form
        assert words in refused.text, form
        assert serials(refused.text) == ["FCH0001", "FCH0002", "FCH0003", "FCH0004"]
    assert await snapshot(db) == before

    moved = await visitor.post(
        f"{PAGE}/transfer{query}",
        [("csrf", page.csrf), ("target", "Lab"), ("product", ids[0]), ("product", ids[2])],
        follow=False,
    )
    assert moved.status == 303
    assert moved.headers["Location"] == PAGE + query
    assert serials((await visitor.get(PAGE)).text) == ["FCH0002", "FCH0004"]
    assert serials((await visitor.get(LAB_PAGE)).text) == ["FCH0001", "FCH0003"]

    removed = await visitor.post(
        f"{PAGE}/remove", [("csrf", page.csrf), ("product", ids[1])], follow=False
    )
    assert (removed.status, removed.headers["Location"]) == (303, PAGE)
    assert serials((await visitor.get(PAGE)).text) == ["FCH0004"]
    assert serials((await visitor.get(PAGE + "?state=Removed")).text) == ["FCH0002"]
    # Ended products have no checkbox: nothing to transfer or remove.
    ended = await visitor.get(PAGE + "?state=all")
    assert ended.text.count('type="checkbox" name="product"') == 1


async def test_refused_changes_show_the_page_with_the_operations_words(
    admin: Api,
    visitors: Callable[..., Visitor],
    server: TestServer,
    tmp_path: Path,
    db: asyncpg.Connection,
) -> None:
    await setup_voice(admin)
    agent = await register(admin, tmp_path, server, "FCH0001")
    product = product_id(agent)
    visitor = await signed_in(admin, visitors)
    page = await visitor.get(f"{PAGE}/{product}")
    before = await snapshot(db)
    for form, status, words in (
        ({"target": "Nowhere"}, 404, "virtual account &#39;Nowhere&#39; not found"),
        ({"target": "Voice"}, 400, "is in virtual account &#39;Voice&#39; already"),
        ({"target": ""}, 400, None),
        ({"target": "x" * 5000}, 400, None),
        ({}, 400, None),
    ):
        refused = await visitor.post(f"{PAGE}/{product}/transfer", {"csrf": page.csrf} | form)
        assert refused.status == status, form
        assert 'class="error"' in refused.text, form
        assert 'id="registration"' in refused.text, form  # the detail page again
        if words:
            assert words in refused.text, form
    long_code = await visitor.post(
        f"{PAGE}/{product}/remove", {"csrf": page.csrf, "return_code": "r" * 3000}
    )
    assert long_code.status == 400
    for path in (
        f"{PAGE}/00000000-0000-4000-8000-000000000000",
        f"{PAGE}/not-a-uuid",
        f"{PAGE}/{'x' * 3000}",
    ):
        assert (await visitor.get(path)).status == 404, path
        for action in ("transfer", "remove"):
            posted = await visitor.post(f"{path}/{action}", {"csrf": page.csrf, "target": "Voice"})
            assert posted.status in (400, 404), (path, action)
    assert await snapshot(db) == before


async def test_a_viewer_sees_no_write_controls_and_a_forged_write_is_refused(
    admin: Api,
    visitors: Callable[..., Visitor],
    server: TestServer,
    tmp_path: Path,
    db: asyncpg.Connection,
) -> None:
    await setup_voice(admin)
    await add_lab(admin)
    agent = await register(admin, tmp_path, server, "FCH0001")
    product = product_id(agent)
    viewer = await signed_in(admin, visitors, "account-viewer")
    listing = await viewer.get(PAGE)
    assert serials(listing.text) == ["FCH0001"]
    page = await viewer.get(f"{PAGE}/{product}")
    assert page.status == 200
    assert 'method="post"' not in page.text.replace('id="sign-out" method="post"', "")
    before = await snapshot(db)
    assert 'type="checkbox"' not in listing.text
    for action, form in (("transfer", {"target": "Lab"}), ("remove", {})):
        forged = await viewer.post(f"{PAGE}/{product}/{action}", {"csrf": page.csrf} | form)
        assert forged.status == 403, action
        assert "You may not do this." in forged.text
        chosen = await viewer.post(
            f"{PAGE}/{action}", {"csrf": page.csrf, "product": product} | form
        )
        assert chosen.status == 403, action
    assert await snapshot(db) == before


async def test_another_accounts_products_are_not_found(
    admin: Api,
    visitors: Callable[..., Visitor],
    server: TestServer,
    tmp_path: Path,
    db: asyncpg.Connection,
) -> None:
    await setup_voice(admin)
    agent = await register(admin, tmp_path, server, "FCH0001")
    product = product_id(agent)
    assert (await admin.post("/api/v1/accounts", {"name": "Globex"}))[0] == 200
    password = await create_user(admin, "gil", "account-admin", ["Globex"])
    other = visitors()
    await other.sign_in("gil", password)
    own = await other.get("/accounts/Globex/virtual-accounts/DEFAULT/product-instances")
    assert own.status == 200
    assert serials(own.text) == []
    before = await snapshot(db)
    assert (await other.get(PAGE)).status == 404
    assert (await other.get(f"{PAGE}/{product}")).status == 404
    for action in ("transfer", "remove"):
        posted = await other.post(f"{PAGE}/{product}/{action}", {"csrf": own.csrf, "target": "x"})
        assert posted.status == 404, action
    assert (
        await other.get("/accounts/Globex/virtual-accounts/Nope/product-instances")
    ).status == 404
    assert await snapshot(db) == before


async def test_every_page_and_refusal_in_chinese(
    admin: Api, visitors: Callable[..., Visitor], server: TestServer, tmp_path: Path
) -> None:
    await setup_voice(admin, enhanced=10)
    await add_lab(admin)
    agent = await register(admin, tmp_path, server, "FCH0001")
    await agent.report_usage({ENHANCED: 3})
    await agent.report_usage({ENHANCED: 5})
    quiet = await register(admin, tmp_path, server, "FCH0002", share=False)
    ended = await register(admin, tmp_path, server, "FCH0003", share=False)
    ended_id = product_id(ended)
    await ended.deregister()
    visitor = await signed_in(admin, visitors, lang="zh-CN,zh;q=0.9")
    detail = f"{PAGE}/{product_id(agent)}"
    pages = [
        await visitor.get(PAGE),
        await visitor.get(PAGE + "?state=all"),
        await visitor.get(PAGE + "?state=Removed"),  # none match
        await visitor.get(PAGE + "?offset=x"),  # the form again, with its error
        await visitor.get(detail),
        await visitor.get(f"{PAGE}/{product_id(quiet)}"),  # no usage, no host name
        await visitor.get(f"{PAGE}/{ended_id}"),  # ended
        await visitor.get(f"{PAGE}/nope"),  # not found
    ]
    page = pages[4]
    pages.append(await visitor.post(detail + "/transfer", {"csrf": page.csrf, "target": "Nope"}))
    pages.append(await visitor.post(PAGE + "/remove", {"csrf": page.csrf}))  # none chosen
    assert [p.status for p in pages] == [200, 200, 200, 400, 200, 200, 200, 404, 404, 400]
    assert "请先选择产品实例。" in pages[-1].text
    # Dates and words the Chinese way on the chart too (its axis, legend and text alternative).
    [chart] = re.findall(r"<svg .*?</svg>", page.text, flags=re.S)
    assert re.search(r">\d{4}年\d{1,2}月\d{1,2}日 [\d:]+ UTC</text>", chart)
    assert "本产品使用中" in chart
    assert "虚拟账户拥有 10 个。</desc>" in chart
    data = (
        "Acme",
        "ann",
        "Voice",
        "Lab",
        "DEFAULT",
        ENHANCED_NAME,
        socket.gethostname(),
        "PID:UCM SN:FCH0002",
        "PID:UCM SN:FCH0003",
        "UCM 15.0",
        # the operations' own words, English as in the API
        "offset",
        "virtual account 'Nope' not found in account 'Acme'",
    )
    for each in pages:
        assert_chinese(each, data)
