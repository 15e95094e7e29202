"""Version-independent (Flex) UC Manager user licenses through the admin API, the real
agent and the product's reservation library: the catalog marks their tags as ours, they are
SUBSCRIPTION lines with a term, and they cover a version-specific tag of the same or a
lower tier when its own lines run short, never a reservation."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from tests.conftest import (
    BASIC,
    CUWL,
    ENHANCED,
    FLEX_ACCESS,
    FLEX_EA,
    FLEX_ENHANCED,
    FLEX_PROFESSIONAL,
    Api,
)
from tests.helpers.api import (
    ENHANCED_PLUS,
    VOICE,
    licenses,
    new_agent,
    new_product,
    new_token,
    setup_pool,
)
from tests.helpers.cli import Cli, toml_config

FLEX_ENHANCED_NAME = "UC Manager Flex NU Enhanced License (version-independent)"


def day(offset: int) -> str:
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=offset)).isoformat()


def subscription(tag: str, quantity: int, start: int = -10, end: int = 355) -> dict[str, Any]:
    """A yearly subscription line of ``tag`` (days from today)."""
    return {
        "entitlementTag": tag,
        "quantity": quantity,
        "licenseType": "SUBSCRIPTION",
        "startDate": day(start),
        "endDate": day(end),
        "subscriptionId": "Flex-1",
    }


async def report(admin: Api, server: TestServer, tmp_path: Path, usage: dict[str, int]) -> str:
    """A product registered in Voice reports ``usage``; its authorization state."""
    agent = new_agent(tmp_path, server)
    await agent.register(await new_token(admin))
    state = await agent.report_usage(usage)
    assert state.authorization is not None
    result: str = state.authorization["state"]
    return result


async def test_a_version_specific_tag_running_short_is_covered_by_a_version_independent_license(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    await setup_pool(
        admin, {"entitlementTag": ENHANCED, "quantity": 2}, subscription(FLEX_ENHANCED, 5)
    )
    assert await report(admin, server, tmp_path, {ENHANCED: 4}) == "AUTHORIZED"
    view = await licenses(admin)
    assert (view[ENHANCED]["available"], view[ENHANCED]["status"]) == (0, "In Compliance")
    assert view[ENHANCED]["licenseSubstitutions"] == [
        {
            "license": FLEX_ENHANCED_NAME,
            "entitlementTag": FLEX_ENHANCED,
            "quantity": 2,
            "direction": "borrowed",
        }
    ]
    flex = view[FLEX_ENHANCED]
    assert (flex["quantity"], flex["inUse"], flex["available"]) == (5, 0, 3)
    assert flex["licenseSubstitutions"] == [
        {
            "license": "UC Manager Enhanced License (12.x)",
            "entitlementTag": ENHANCED,
            "quantity": 2,
            "direction": "lent",
        }
    ]
    [detail] = flex["licenseDetails"]
    assert detail["licenseType"] == "SUBSCRIPTION"
    assert (detail["startDate"], detail["endDate"], detail["status"]) == (
        day(-10),
        day(355),
        "Active",
    )


async def test_a_version_specific_tag_not_short_takes_nothing_from_a_version_independent_license(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    await setup_pool(
        admin, {"entitlementTag": ENHANCED, "quantity": 10}, subscription(FLEX_ENHANCED, 5)
    )
    assert await report(admin, server, tmp_path, {ENHANCED: 10}) == "AUTHORIZED"
    view = await licenses(admin)
    assert view[ENHANCED]["licenseSubstitutions"] == []
    assert view[FLEX_ENHANCED]["licenseSubstitutions"] == []
    assert view[FLEX_ENHANCED]["available"] == 5


async def test_a_higher_tier_version_independent_license_covers_a_lower_tier(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    await setup_pool(admin, subscription(FLEX_PROFESSIONAL, 3), subscription(FLEX_EA, 1))
    usage = {BASIC: 1, ENHANCED: 1, CUWL: 2}
    assert await report(admin, server, tmp_path, usage) == "AUTHORIZED"
    view = await licenses(admin)
    # Lowest tier first; at the same tier the catalog's order (Flex EA, then Flex NU).
    assert {tag: view[tag]["licenseSubstitutions"][0]["entitlementTag"] for tag in usage} == {
        BASIC: FLEX_EA,
        ENHANCED: FLEX_PROFESSIONAL,
        CUWL: FLEX_PROFESSIONAL,
    }
    assert view[FLEX_PROFESSIONAL]["available"] == view[FLEX_EA]["available"] == 0


async def test_a_shortfall_is_covered_whenever_the_licenses_cover_it(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    """CUWL covers every 12.x tier below it, Flex NU Access only Basic and Essential.
    Basic, short first, took the CUWL (the higher 12.x tier before a version-independent
    license), so Enhanced Plus went out of compliance although the licenses covered both:
    now Basic's loan moves to the Flex Access and the CUWL covers Enhanced Plus."""
    await setup_pool(admin, {"entitlementTag": CUWL, "quantity": 5}, subscription(FLEX_ACCESS, 5))
    usage = {BASIC: 5, ENHANCED_PLUS: 5}
    assert await report(admin, server, tmp_path, usage) == "AUTHORIZED"
    view = await licenses(admin)
    assert {tag: view[tag]["status"] for tag in usage} == dict.fromkeys(usage, "In Compliance")
    assert [s["entitlementTag"] for s in view[BASIC]["licenseSubstitutions"]] == [FLEX_ACCESS]
    assert [s["entitlementTag"] for s in view[ENHANCED_PLUS]["licenseSubstitutions"]] == [CUWL]
    assert (view[CUWL]["available"], view[FLEX_ACCESS]["available"]) == (0, 0)


async def test_a_lower_tier_version_independent_license_never_covers_a_higher_tier(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    await setup_pool(admin, subscription(FLEX_ACCESS, 10), subscription(FLEX_ENHANCED, 10))
    assert await report(admin, server, tmp_path, {ENHANCED_PLUS: 1}) == "OUT_OF_COMPLIANCE"
    view = await licenses(admin)
    assert view[ENHANCED_PLUS]["licenseSubstitutions"] == []
    assert view[ENHANCED_PLUS]["status"] == "Out Of Compliance"
    assert (view[FLEX_ACCESS]["available"], view[FLEX_ENHANCED]["available"]) == (10, 10)


async def test_a_version_independent_license_whose_term_ended_covers_nothing(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    await setup_pool(
        admin,
        subscription(FLEX_PROFESSIONAL, 5, start=-366, end=-1),  # ended yesterday
        subscription(FLEX_PROFESSIONAL, 5, start=1, end=366),  # starts tomorrow
    )
    assert await report(admin, server, tmp_path, {ENHANCED: 1}) == "OUT_OF_COMPLIANCE"
    view = await licenses(admin)
    assert view[ENHANCED]["licenseSubstitutions"] == []
    assert view[FLEX_PROFESSIONAL]["quantity"] == 0
    assert [d["status"] for d in view[FLEX_PROFESSIONAL]["licenseDetails"]] == [
        "Expired",
        "Pending",
    ]


async def test_a_reservation_never_takes_a_version_independent_license_unless_it_reserves_its_tag(
    admin: Api, state_dir: Path, tmp_path: Path
) -> None:
    await setup_pool(
        admin, {"entitlementTag": ENHANCED, "quantity": 1}, subscription(FLEX_ENHANCED, 5)
    )
    product = new_product(tmp_path, state_dir)
    product.enable()

    def asking(tag: str, quantity: int) -> dict[str, Any]:
        return {
            "reservationRequests": [
                {
                    "reservationCode": product.request(),
                    "licenses": [{"entitlementTag": tag, "quantity": quantity}],
                }
            ]
        }

    status, problem = await admin.post(VOICE + "/reserve-licenses", asking(ENHANCED, 2))
    assert status == 409, problem
    assert problem["field"] == "reservationRequests[0].licenses[0].quantity"
    assert "version-independent" in problem["detail"]
    view = await licenses(admin)
    assert (view[ENHANCED]["reserved"], view[FLEX_ENHANCED]["reserved"]) == (0, 0)

    status, body = await admin.post(VOICE + "/reserve-licenses", asking(FLEX_ENHANCED, 2))
    assert status == 200, body
    code = body["authorizationCodes"][0]["authorizationCode"]
    assert f"<tag>{FLEX_ENHANCED}</tag>" in code
    assert "<licenseType>SUBSCRIPTION</licenseType>" in code
    product.install(code)
    # Reserved by the version-independent tag: the product holds that tag and no other.
    assert product.check_usage({FLEX_ENHANCED: 2, ENHANCED: 1}) == {
        FLEX_ENHANCED: "AUTHORIZED",
        ENHANCED: "NOT_AUTHORIZED",
    }
    view = await licenses(admin)
    assert (view[FLEX_ENHANCED]["reserved"], view[FLEX_ENHANCED]["available"]) == (2, 3)
    assert view[ENHANCED]["licenseSubstitutions"] == []


async def test_a_version_independent_license_is_a_subscription_with_a_term(admin: Api) -> None:
    await setup_pool(admin)
    status, problem = await admin.post(
        VOICE + "/license-pool", {"entitlementTag": FLEX_ENHANCED, "quantity": 5}
    )
    assert status == 422, problem
    assert problem["field"] == "licenseType"
    assert "SUBSCRIPTION" in problem["detail"]
    status, problem = await admin.post(
        VOICE + "/license-pool",
        {**subscription(FLEX_ENHANCED, 5), "licenseType": "TERM"},
    )
    assert (status, problem["field"]) == (422, "licenseType")
    no_end = {k: v for k, v in subscription(FLEX_ENHANCED, 5).items() if k != "endDate"}
    status, problem = await admin.post(VOICE + "/license-pool", no_end)
    assert (status, problem["field"]) == (422, "endDate")
    assert (await admin.get(VOICE + "/license-pool"))[1]["licenses"] == []


async def test_the_catalog_marks_the_tags_that_are_ours(admin: Api) -> None:
    status, body = await admin.get("/api/v1/license-catalog")
    assert status == 200, body
    by_tag = {e["entitlementTag"]: e for e in body["licenses"]}
    for tag in (FLEX_ACCESS, FLEX_ENHANCED, FLEX_PROFESSIONAL, FLEX_EA, BASIC):
        assert by_tag[tag]["tagOrigin"] == "satellite"
    for tag in (ENHANCED, CUWL):  # as products report them
        assert by_tag[tag]["tagOrigin"] == "vendor"
    flex = by_tag[FLEX_ENHANCED]
    assert flex["licenseType"] == "SUBSCRIPTION"
    assert flex["standsInFor"][-1] == ENHANCED
    assert by_tag[ENHANCED]["licenseType"] is None
    assert by_tag[ENHANCED]["standsInFor"] == []


def test_the_cli_catalog_shows_where_each_tag_comes_from(
    tmp_path: Path, state_dir: Path, db_dsn: str
) -> None:
    run = Cli(toml_config(tmp_path / "satellite.toml", state_dir, db_dsn), tmp_path)
    out = run("license", "catalog").ok().out
    rows = {line.split()[-1]: line.split() for line in out.splitlines()[1:]}
    assert "satellite" in rows[FLEX_EA]
    assert "vendor" in rows[CUWL]
    shown = run("license", "catalog", "--json").json()
    assert {e["entitlementTag"]: e["tagOrigin"] for e in shown["licenses"]}[FLEX_EA] == "satellite"
