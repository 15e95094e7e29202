"""The SLR pages of a virtual account over plain HTTP, with request, confirmation and
return codes made by the real agent library: reserve, the authorization code shown and
downloaded, confirm, update, return, force-remove; refusals as pages; the viewer and
another account's admin. (In Chinese: test_reservations_chinese.py.)"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path

import asyncpg
from yarl import URL

from satellite_agent.reservation import Reservations
from tests.conftest import CUWL, ENHANCED, Api
from tests.helpers.api import new_product
from tests.helpers.console import Visitor, create_user
from tests.helpers.reservation_pages import (
    PAGE,
    error_of,
    licenses_form,
    positions,
    post_pairs,
    reserve,
    setup,
    shown_code,
    signed_in,
)


async def test_reserve_download_confirm_update_and_return(
    admin: Api,
    visitors: Callable[..., Visitor],
    state_dir: Path,
    tmp_path: Path,
    db: asyncpg.Connection,
) -> None:
    await setup(admin)
    visitor = await signed_in(visitors, admin)
    account = await visitor.get("/accounts/Acme")
    assert f'href="{PAGE}"' in account.text
    page = await visitor.get(PAGE)
    assert page.status == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert "No reservations." in page.text
    for form in ('id="reserve"', 'id="confirm"', 'id="return"'):
        assert form in page.text
    # The licenses to choose from, with what is available.
    assert re.search(r"<td>[^<]*Enhanced[^<]*</td>\s*<td>5</td>", page.text), page.text

    product = new_product(tmp_path, state_dir, "WEB0001")
    product.enable()
    issued = await reserve(visitor, page.csrf, product.request(), enhanced="2")
    assert issued.status == 200, error_of(issued)
    assert issued.headers["Cache-Control"] == "no-store"
    code = shown_code(issued)
    assert code.startswith("<specificPLR>")
    [product_id] = re.findall(r"<piid>([^<]+)</piid>", code)
    assert 'data-copy="authorization-code"' in issued.text
    download = f"{PAGE}/{product_id}/authorization-code"
    assert f'href="{download}" download' in issued.text
    assert await positions(admin) == {ENHANCED: (2, 3), CUWL: (0, 2)}

    # The code as a file: an attachment with a name, never cached.
    async with visitor.session.get(visitor.base.join(URL(download))) as response:
        assert response.status == 200
        assert response.headers["Content-Disposition"] == (
            f'attachment; filename="AuthorizationCode_{product_id}.txt"'
        )
        assert response.headers["Cache-Control"] == "no-store"
        assert await response.text() == code

    listing = await visitor.get(PAGE)
    row = listing.text.split('<table id="reservations">')[1].split("</table>")[0]
    assert product_id in row
    assert "Awaiting confirmation" in row
    assert "PID:UCM SN:WEB0001" in row

    confirmation = product.install(code)
    confirmed = await visitor.post(
        PAGE + "/confirm", {"csrf": page.csrf, "confirmation_code": confirmation}, follow=False
    )
    assert confirmed.status == 303
    detail_path = f"{PAGE}/{product_id}"
    assert confirmed.headers["Location"] == detail_path
    detail = await visitor.get(detail_path)
    assert '<dd id="reservation-status">Reserved</dd>' in detail.text
    assert 'id="update"' in detail.text
    assert 'id="force-remove"' in detail.text

    # Update: a new code, shown the same way; in transition until it is confirmed.
    pairs = licenses_form(detail.csrf, enhanced="3", cuwl="1")
    updated = await post_pairs(visitor, detail_path + "/update", pairs)
    assert updated.status == 200, error_of(updated)
    new_code = shown_code(updated)
    assert new_code != code
    assert await positions(admin) == {ENHANCED: (3, 2), CUWL: (1, 1)}
    assert "In transition" in (await visitor.get(detail_path)).text
    confirmed = await visitor.post(
        PAGE + "/confirm", {"csrf": page.csrf, "confirmation_code": product.install(new_code)}
    )
    assert '<dd id="reservation-status">Reserved</dd>' in confirmed.text
    assert product.authorized() == {ENHANCED: 3, CUWL: 1}

    returned = await visitor.post(
        PAGE + "/return", {"csrf": page.csrf, "return_code": product.give_back()}
    )
    assert returned.status == 200
    assert str(returned.url.path) == detail_path
    assert '<dd id="reservation-status">Returned</dd>' in returned.text
    assert 'id="update"' not in returned.text
    assert await positions(admin) == {ENHANCED: (0, 5), CUWL: (0, 2)}
    assert "No reservations." in (await visitor.get(PAGE)).text
    every = await visitor.get(PAGE + "?status=all")
    assert product_id in every.text
    assert "Returned" in every.text
    assert 'id="show-active"' in every.text
    actions = [r["action"] for r in await db.fetch("SELECT action FROM events ORDER BY id")]
    assert actions[-5:] == [
        "reservation.created",
        "reservation.confirmed",
        "reservation.updated",
        "reservation.confirmed",
        "reservation.returned",
    ]


async def test_force_remove_needs_a_reason(
    admin: Api,
    visitors: Callable[..., Visitor],
    state_dir: Path,
    tmp_path: Path,
    db: asyncpg.Connection,
) -> None:
    await setup(admin)
    visitor = await signed_in(visitors, admin)
    page = await visitor.get(PAGE)
    product = new_product(tmp_path, state_dir, "WEB0002")
    product.enable()
    product_id = re.findall(
        r"<piid>([^<]+)</piid>",
        shown_code(await reserve(visitor, page.csrf, product.request(), cuwl="2")),
    )[0]
    detail_path = f"{PAGE}/{product_id}"
    for reason in ("", "   ", "x" * 501):
        refused = await visitor.post(
            detail_path + "/force-remove", {"csrf": page.csrf, "reason": reason}
        )
        assert refused.status == 400, reason
        assert "say why" in error_of(refused) or "`reason`" in error_of(refused)
        assert '<dd id="reservation-status">Awaiting confirmation</dd>' in refused.text
    assert await positions(admin) == {ENHANCED: (0, 5), CUWL: (2, 0)}

    removed = await visitor.post(
        detail_path + "/force-remove", {"csrf": page.csrf, "reason": "RMA 4711"}, follow=False
    )
    assert removed.status == 303
    assert removed.headers["Location"] == detail_path
    shown = await visitor.get(detail_path)
    assert '<dd id="reservation-status">Removed</dd>' in shown.text
    assert 'id="force-remove"' not in shown.text
    assert 'id="download-code"' not in shown.text
    assert await positions(admin) == {ENHANCED: (0, 5), CUWL: (0, 2)}
    reason = await db.fetchval(
        "SELECT details->>'reason' FROM events WHERE action = 'reservation.force_removed'"
    )
    assert reason == "RMA 4711"
    gone = await visitor.get(detail_path + "/authorization-code")
    assert gone.status == 404


async def test_refusals_are_pages_with_the_operations_words_and_change_nothing(
    admin: Api,
    visitors: Callable[..., Visitor],
    state_dir: Path,
    tmp_path: Path,
    db: asyncpg.Connection,
) -> None:
    await setup(admin)
    assert (await admin.post("/api/v1/accounts/Acme/virtual-accounts", {"name": "Lab"}))[0] == 200
    visitor = await signed_in(visitors, admin)
    page = await visitor.get(PAGE)
    product = new_product(tmp_path, state_dir, "WEB0003")
    product.enable()
    request = product.request()

    cases: list[tuple[str, dict[str, str], int, str]] = [
        ("garbage", {"enhanced": "1"}, 400, "not valid"),
        ("SLR1-" + "A" * 3000, {"enhanced": "1"}, 400, "2048"),
        ("", {"enhanced": "1"}, 400, "Paste the product's request code."),
        (request, {}, 400, "Choose at least one license"),
        (request, {"enhanced": "0"}, 400, "Choose at least one license"),
        (request, {"enhanced": "6"}, 409, "5 free to reserve"),
        (request, {"enhanced": "abc"}, 400, "Quantities are whole numbers."),
        (request, {"enhanced": "²"}, 400, "Quantities are whole numbers."),
        (request, {"enhanced": "-1"}, 400, "Quantities are whole numbers."),
        (request, {"enhanced": "1" * 40}, 400, "Quantities are whole numbers."),
    ]
    for code, counts, status, words in cases:
        refused = await reserve(visitor, page.csrf, code, **counts)
        assert refused.status == status, (code[:20], counts, refused.text)
        assert words in error_of(refused), (code[:20], counts)
        assert 'id="authorization-code"' not in refused.text
    # The pasted code and the quantities are kept for another try.
    kept = await post_pairs(
        visitor,
        PAGE + "/reserve",
        [
            ("request_code", request),
            ("precedence", "SHORTEST_TERM_FIRST"),
            *licenses_form(page.csrf, enhanced="6"),
        ],
    )
    assert kept.status == 409
    assert html.escape(request) in kept.text
    assert 'name="quantity" min="0" max="999999999" value="6"' in kept.text
    assert '<option value="SHORTEST_TERM_FIRST" selected>' in kept.text
    # Forged fields: an unknown license, tags and quantities that do not pair, a precedence.
    unknown = await post_pairs(
        visitor,
        PAGE + "/reserve",
        [("csrf", page.csrf), ("request_code", request), ("tag", "NOPE"), ("quantity", "1")],
    )
    assert unknown.status in (400, 404), unknown.text
    unpaired = await post_pairs(
        visitor,
        PAGE + "/reserve",
        [("csrf", page.csrf), ("request_code", request), ("tag", ENHANCED)],
    )
    assert unpaired.status == 400
    precedence = await post_pairs(
        visitor,
        PAGE + "/reserve",
        [
            ("request_code", request),
            ("precedence", "RANDOM"),
            *licenses_form(page.csrf, enhanced="1"),
        ],
    )
    assert precedence.status == 400
    assert "Take licenses first from: choose one" in error_of(precedence)

    for path, field in (("/confirm", "confirmation_code"), ("/return", "return_code")):
        for text in ("", "garbage", "C" * 5000):
            refused = await visitor.post(PAGE + path, {"csrf": page.csrf, field: text})
            assert refused.status == 400, (path, text[:10])
            assert 'class="error"' in refused.text
    assert await db.fetchval("SELECT count(*) FROM reservations") == 0
    assert await positions(admin) == {ENHANCED: (0, 5), CUWL: (0, 2)}

    # A code of a product reserved in Voice, entered in Lab: not found there, in the
    # operation's words.
    issued = await reserve(visitor, page.csrf, request, enhanced="1")
    code = shown_code(issued)
    [product_id] = re.findall(r"<piid>([^<]+)</piid>", code)
    lab = "/accounts/Acme/virtual-accounts/Lab/reservations"
    wrong = await visitor.post(
        lab + "/confirm", {"csrf": page.csrf, "confirmation_code": product.install(code)}
    )
    assert wrong.status == 404
    assert error_of(wrong) == (
        f"product instance '{product_id}' holds no reservation in virtual account 'Lab'"
    )
    assert (await visitor.get(f"{lab}/{product_id}")).status == 404
    assert (await visitor.get(f"{lab}/{product_id}/authorization-code")).status == 404
    forced = await visitor.post(
        f"{lab}/{product_id}/force-remove", {"csrf": page.csrf, "reason": "wrong place"}
    )
    assert forced.status == 404
    # Update refusals on the detail page: bad quantities, more than available, nothing.
    detail_path = f"{PAGE}/{product_id}"
    for counts, status in (({"enhanced": "x"}, 400), ({"enhanced": "9"}, 409), ({}, 400)):
        refused = await post_pairs(
            visitor, detail_path + "/update", licenses_form(page.csrf, **counts)
        )
        assert refused.status == status, (counts, refused.text)
        assert 'id="reservation-status"' in refused.text
    # Unknown products, pages and offsets.
    for path in (
        f"{PAGE}/not-a-product",
        f"{PAGE}/{'f' * 5000}",
        f"{PAGE}/00000000-0000-4000-8000-000000000000/authorization-code",
    ):
        assert (await visitor.get(path)).status == 404, path[:80]
    for query in ("?status=bogus", "?offset=-1", "?offset=x", "?offset=" + "9" * 30):
        assert (await visitor.get(PAGE + query)).status == 400, query
    assert await db.fetchval("SELECT count(*) FROM reservations") == 1
    assert await positions(admin) == {ENHANCED: (1, 4), CUWL: (0, 2)}


async def test_a_viewer_sees_no_write_controls_and_a_forged_write_is_refused(
    admin: Api,
    visitors: Callable[..., Visitor],
    state_dir: Path,
    tmp_path: Path,
    db: asyncpg.Connection,
) -> None:
    await setup(admin)
    writer = await signed_in(visitors, admin)
    first = await writer.get(PAGE)
    product = new_product(tmp_path, state_dir, "WEB0004")
    product.enable()
    code = shown_code(await reserve(writer, first.csrf, product.request(), enhanced="1"))
    [product_id] = re.findall(r"<piid>([^<]+)</piid>", code)

    password = await create_user(admin, "victor", "account-viewer", ["Acme"])
    viewer = visitors()
    await viewer.sign_in("victor", password)
    detail_path = f"{PAGE}/{product_id}"
    for path in (PAGE, detail_path):
        page = await viewer.get(path)
        assert page.status == 200
        assert product_id in page.text
        assert 'method="post"' not in page.text.replace('id="sign-out" method="post"', "")
    # Reading the code is the operation's READ: a viewer may download it.
    assert (await viewer.get(detail_path + "/authorization-code")).text == code
    other = new_product(tmp_path, state_dir, "WEB0005")
    other.enable()
    confirmation = product.install(code)
    csrf = page.csrf
    forged = [
        await reserve(viewer, csrf, other.request(), enhanced="1"),
        await viewer.post(PAGE + "/confirm", {"csrf": csrf, "confirmation_code": confirmation}),
        await viewer.post(PAGE + "/return", {"csrf": csrf, "return_code": product.give_back()}),
        await post_pairs(viewer, detail_path + "/update", licenses_form(csrf, enhanced="2")),
        await viewer.post(detail_path + "/force-remove", {"csrf": csrf, "reason": "forged"}),
    ]
    assert [f.status for f in forged] == [403] * 5
    assert all("You may not do this." in f.text for f in forged)
    assert await db.fetchval("SELECT count(*) FROM reservations") == 1
    assert await positions(admin) == {ENHANCED: (1, 4), CUWL: (0, 2)}
    status = await db.fetchval("SELECT status FROM reservations")
    assert status == "active"
    assert "Awaiting confirmation" in (await writer.get(detail_path)).text


async def test_another_account_is_not_found(
    admin: Api,
    visitors: Callable[..., Visitor],
    state_dir: Path,
    tmp_path: Path,
    db: asyncpg.Connection,
) -> None:
    await setup(admin)
    assert (await admin.post("/api/v1/accounts", {"name": "Globex"}))[0] == 200
    writer = await signed_in(visitors, admin)
    product = new_product(tmp_path, state_dir, "WEB0006")
    product.enable()
    first = await writer.get(PAGE)
    code = shown_code(await reserve(writer, first.csrf, product.request(), enhanced="1"))
    [product_id] = re.findall(r"<piid>([^<]+)</piid>", code)

    password = await create_user(admin, "gina", "account-admin", ["Globex"])
    outsider = visitors()
    await outsider.sign_in("gina", password)
    csrf = (await outsider.get("/accounts/Globex")).csrf
    detail_path = f"{PAGE}/{product_id}"
    for path in (PAGE, detail_path, detail_path + "/authorization-code"):
        assert (await outsider.get(path)).status == 404, path
    answers = [
        await reserve(outsider, csrf, "garbage", enhanced="1"),
        await outsider.post(
            PAGE + "/confirm", {"csrf": csrf, "confirmation_code": product.install(code)}
        ),
        await post_pairs(outsider, detail_path + "/update", licenses_form(csrf, enhanced="2")),
        await outsider.post(detail_path + "/force-remove", {"csrf": csrf, "reason": "x"}),
    ]
    assert [a.status for a in answers] == [404] * 4
    assert await db.fetchval("SELECT status FROM reservations") == "active"
    assert Reservations.describe(product.state) == "registered - specific license reservation"
    assert "Awaiting confirmation" in (await writer.get(detail_path)).text
