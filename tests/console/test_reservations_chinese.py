"""Every SLR page and state of the console in Chinese: the list empty and with rows, the
authorization code, a reservation awaiting confirmation, reserved, in transition,
returned and removed, and the refusals (the services' words stay English, as the API's
problem documents do)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Api
from tests.helpers.api import new_product
from tests.helpers.console import Page, Visitor, assert_chinese
from tests.helpers.reservation_pages import (
    PAGE,
    error_of,
    licenses_form,
    post_pairs,
    reserve,
    setup,
    shown_code,
    signed_in,
)


async def test_every_page_and_state_in_chinese(
    admin: Api,
    visitors: Callable[..., Visitor],
    state_dir: Path,
    tmp_path: Path,
) -> None:
    await setup(admin)
    visitor = await signed_in(visitors, admin, "zh-CN")
    data: list[str] = ["Acme", "Voice", "ann", "PID", "UCM", "garbage"]
    status, body = await admin.get("/api/v1/license-catalog")
    assert status == 200, body
    data += [entry["displayName"] for entry in body["licenses"]]

    def chinese(page: Page, *more: str) -> None:
        assert page.status < 500
        assert_chinese(page, data=[*data, *more])

    empty = await visitor.get(PAGE)
    chinese(empty)
    product = new_product(tmp_path, state_dir, "WEB0007")
    product.enable()
    request = product.request()
    issued = await reserve(visitor, empty.csrf, request, enhanced="2")
    chinese(issued)
    code = shown_code(issued)
    [product_id] = re.findall(r"<piid>([^<]+)</piid>", code)
    detail_path = f"{PAGE}/{product_id}"
    chinese(await visitor.get(PAGE))  # awaiting confirmation
    chinese(await visitor.get(detail_path))
    confirmed = await visitor.post(
        PAGE + "/confirm", {"csrf": empty.csrf, "confirmation_code": product.install(code)}
    )
    chinese(confirmed)  # reserved
    updated = await post_pairs(
        visitor, detail_path + "/update", licenses_form(empty.csrf, enhanced="3")
    )
    chinese(updated)
    chinese(await visitor.get(detail_path))  # in transition, two tables
    chinese(await visitor.get(PAGE + "?status=all"))

    # Error states: the console's own words are Chinese; the services' stay English (as
    # the API's problem documents are), so they count as data here.
    for refused in (
        await reserve(visitor, empty.csrf, "", enhanced="1"),
        await reserve(visitor, empty.csrf, request, enhanced="x"),
        await reserve(visitor, empty.csrf, request),
    ):
        assert refused.status == 400
        chinese(refused, request)  # (the pasted code is kept in its field)
    for refused in (
        await reserve(visitor, empty.csrf, "garbage", enhanced="1"),
        await visitor.post(PAGE + "/confirm", {"csrf": empty.csrf, "confirmation_code": "x"}),
        await visitor.post(detail_path + "/force-remove", {"csrf": empty.csrf, "reason": ""}),
    ):
        assert refused.status == 400
        chinese(refused, error_of(refused))
    for missing in (f"{PAGE}/nope", PAGE + "?offset=x"):
        chinese(await visitor.get(missing))
    returned = await visitor.post(
        PAGE + "/confirm",
        {"csrf": empty.csrf, "confirmation_code": product.install(shown_code(updated))},
    )
    chinese(returned)
    chinese(
        await visitor.post(
            PAGE + "/return", {"csrf": empty.csrf, "return_code": product.give_back()}
        )
    )
    other = new_product(tmp_path, state_dir, "WEB0008")
    other.enable()
    removed_id = re.findall(
        r"<piid>([^<]+)</piid>",
        shown_code(await reserve(visitor, empty.csrf, other.request(), cuwl="1")),
    )[0]
    chinese(
        await visitor.post(
            f"{PAGE}/{removed_id}/force-remove", {"csrf": empty.csrf, "reason": "故障"}
        )
    )
    chinese(await visitor.get(PAGE + "?status=all"))
