"""The licenses view, alerts and the catalog through the admin API."""

from __future__ import annotations

import datetime as dt
import tomllib

import asyncpg

from satellite.resources import config_dir
from tests.conftest import BASIC, CUWL, ENHANCED, Api, new_client
from tests.helpers.api import EXPORT_KEY
from tests.helpers.events import refuse_events
from tests.helpers.licenses import (
    ALERTS,
    BASIC_NAME,
    CUWL_NAME,
    ENHANCED_NAME,
    LAB_POOL,
    LICENSES,
    POOL,
    add_line,
    alerts,
    day,
    licenses,
    pool,
    setup_account,
)

# --- the licenses view -----------------------------------------------------------------------


async def test_licenses_view_shape(admin: Api) -> None:
    await setup_account(admin)
    await add_line(admin, entitlementTag=ENHANCED, quantity=10)
    await add_line(
        admin, entitlementTag=ENHANCED, quantity=5, licenseType="TERM",
        startDate=day(-10), endDate=day(100), subscriptionId="Sub-7",
    )  # fmt: skip
    body = await licenses(admin)
    assert body["totalRecords"] == 1
    [position] = body["licenses"]
    assert position["license"] == ENHANCED_NAME
    assert position["virtualAccount"] == "DEFAULT"
    assert position["quantity"] == 15
    assert position["inUse"] == 0
    assert position["available"] == 15
    assert position["reserved"] == 0
    assert position["status"] == "In Compliance"
    assert position["licenseSubstitutions"] == []
    assert position["licenseDetails"] == [
        {
            "licenseType": "PERPETUAL",
            "quantity": 10,
            "startDate": None,
            "endDate": None,
            "subscriptionId": None,
            "status": "Active",
        },
        {
            "licenseType": "TERM",
            "quantity": 5,
            "startDate": day(-10),
            "endDate": day(100),
            "subscriptionId": "Sub-7",
            "status": "Active",
        },
    ]


async def test_empty_account_has_no_licenses(admin: Api) -> None:
    await setup_account(admin)
    assert await licenses(admin) == {"totalRecords": 0, "licenses": []}


async def test_expired_and_pending_term_lines_do_not_count(admin: Api) -> None:
    await setup_account(admin)
    await add_line(admin, entitlementTag=ENHANCED, quantity=10)
    expired = await add_line(
        admin, entitlementTag=ENHANCED, quantity=4, licenseType="TERM",
        startDate=day(-400), endDate=day(-1),
    )  # fmt: skip
    pending = await add_line(
        admin, entitlementTag=ENHANCED, quantity=7, licenseType="TERM",
        startDate=day(1), endDate=day(365),
    )  # fmt: skip
    assert expired["status"] == "Expired"
    assert pending["status"] == "Pending"
    [position] = (await licenses(admin))["licenses"]
    assert position["quantity"] == 10
    assert position["available"] == 10
    assert [(d["quantity"], d["status"]) for d in position["licenseDetails"]] == [
        (10, "Active"),
        (4, "Expired"),
        (7, "Pending"),
    ]
    statuses = {line["id"]: line["status"] for line in await pool(admin)}
    assert statuses[expired["id"]] == "Expired"
    assert statuses[pending["id"]] == "Pending"


async def test_paging(admin: Api) -> None:
    await setup_account(admin)
    for tag in (CUWL, ENHANCED, BASIC):
        await add_line(admin, entitlementTag=tag, quantity=1)
    everything = await licenses(admin, {"limit": -1})
    assert everything["totalRecords"] == 3
    # Lower tiers first within a family.
    assert [p["license"] for p in everything["licenses"]] == [BASIC_NAME, ENHANCED_NAME, CUWL_NAME]
    assert await licenses(admin) == everything
    assert await admin.post(LICENSES) == (200, everything)  # no body at all
    first = await licenses(admin, {"limit": 2, "offset": 0})
    second = await licenses(admin, {"limit": 2, "offset": 2})
    assert first["totalRecords"] == second["totalRecords"] == 3
    assert first["licenses"] + second["licenses"] == everything["licenses"]
    assert len(first["licenses"]) == 2
    past = await licenses(admin, {"limit": 2, "offset": 5})
    assert past == {"totalRecords": 3, "licenses": []}
    for bad in ({"limit": -2}, {"offset": -1}, {"limit": "all"}):
        status, body = await admin.post(LICENSES, bad)
        assert status == 422, (bad, body)


async def test_virtual_accounts_filter(admin: Api) -> None:
    await setup_account(admin, "Lab", "Branch")
    await add_line(admin, entitlementTag=ENHANCED, quantity=10)
    await add_line(admin, LAB_POOL, entitlementTag=ENHANCED, quantity=3)
    await add_line(admin, LAB_POOL, entitlementTag=BASIC, quantity=2)
    everything = await licenses(admin)
    assert everything["totalRecords"] == 3
    assert [(p["virtualAccount"], p["quantity"]) for p in everything["licenses"]] == [
        ("DEFAULT", 10),
        ("Lab", 2),
        ("Lab", 3),
    ]
    lab = await licenses(admin, {"virtualAccounts": ["Lab"]})
    assert lab["totalRecords"] == 2
    assert {p["virtualAccount"] for p in lab["licenses"]} == {"Lab"}
    both = await licenses(admin, {"virtualAccounts": ["Lab", "DEFAULT"]})
    assert both == everything
    empty = await licenses(admin, {"virtualAccounts": ["Branch"]})
    assert empty == {"totalRecords": 0, "licenses": []}


async def test_unknown_virtual_account_in_filter_is_404(admin: Api) -> None:
    await setup_account(admin, "Lab")
    status, body = await admin.post(LICENSES, {"virtualAccounts": ["Lab", "Nope"]})
    assert status == 404, body
    assert "Nope" in body["detail"]
    assert body["field"] == "virtualAccounts"


async def test_licenses_of_other_accounts_are_404(admin: Api) -> None:
    await setup_account(admin)
    status, body = await admin.post("/api/v1/accounts", {"name": "Globex"})
    assert status == 200, body
    outsider = await new_client(admin, "account-viewer", ["Globex"])
    status, body = await outsider.post(LICENSES, {})
    assert status == 404, body
    status, body = await admin.post("/api/v1/accounts/Nobody/licenses", {})
    assert status == 404, body


# --- alerts ----------------------------------------------------------------------------------


async def test_expiring_term_line_raises_an_alert_and_removing_it_clears_it(admin: Api) -> None:
    await setup_account(admin)
    await add_line(
        admin, entitlementTag=ENHANCED, quantity=50, licenseType="TERM", endDate=day(200)
    )
    assert await alerts(admin) == []
    expiring = await add_line(
        admin, entitlementTag=ENHANCED, quantity=5, licenseType="TERM", endDate=day(10)
    )
    [alert] = await alerts(admin)
    assert alert["messageType"] == "Licenses Expiring"
    assert alert["severity"] == "Minor"
    assert alert["source"] == "DEFAULT"
    assert day(10) in alert["message"]
    assert "5" in alert["message"]
    created = dt.datetime.fromisoformat(alert["createdAt"])
    assert abs(created - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=2)

    status, body = await admin.post(f"{POOL}/{expiring['id']}/delete")
    assert status == 200, body
    assert await alerts(admin) == []
    [cleared] = await alerts(admin, {"includeCleared": True})
    assert cleared["messageType"] == "Licenses Expiring"
    assert cleared["clearedAt"] is not None


async def test_removing_the_last_line_clears_its_alert(admin: Api) -> None:
    await setup_account(admin)
    line = await add_line(
        admin, entitlementTag=BASIC, quantity=5, licenseType="TERM", endDate=day(30)
    )
    assert [a["messageType"] for a in await alerts(admin)] == ["Licenses Expiring"]
    status, body = await admin.post(f"{POOL}/{line['id']}/delete")
    assert status == 200, body
    assert await alerts(admin) == []


async def test_extending_a_line_clears_its_expiry_alert(admin: Api) -> None:
    await setup_account(admin)
    line = await add_line(
        admin, entitlementTag=BASIC, quantity=5, licenseType="TERM", endDate=day(3)
    )
    assert len(await alerts(admin)) == 1
    status, body = await admin.post(
        f"{POOL}/{line['id']}/update",
        {"entitlementTag": BASIC, "quantity": 5, "licenseType": "TERM", "endDate": day(400)},
    )
    assert status == 200, body
    assert await alerts(admin) == []


async def test_no_alert_for_a_term_line_ending_later(admin: Api) -> None:
    await setup_account(admin)
    await add_line(admin, entitlementTag=BASIC, quantity=5, licenseType="TERM", endDate=day(31))
    await add_line(admin, entitlementTag=BASIC, quantity=5)
    assert await alerts(admin) == []


async def test_alerts_stay_with_their_virtual_account(admin: Api) -> None:
    await setup_account(admin, "Lab")
    await add_line(
        admin, LAB_POOL, entitlementTag=BASIC, quantity=5, licenseType="TERM", endDate=day(7)
    )
    line = await add_line(admin, entitlementTag=BASIC, quantity=5)
    status, _ = await admin.post(f"{POOL}/{line['id']}/delete")
    assert status == 200
    [alert] = await alerts(admin)
    assert alert["source"] == "Lab"
    assert alert["virtualAccount"] == "Lab"


async def test_alert_limit(admin: Api) -> None:
    await setup_account(admin)
    for offset in (5, 6, 7):
        await add_line(
            admin, entitlementTag=BASIC, quantity=1, licenseType="TERM", endDate=day(offset)
        )
    assert len(await alerts(admin)) == 3
    status, body = await admin.post(ALERTS)  # no body at all
    assert status == 200, body
    assert len(body["alerts"]) == 3
    assert len(await alerts(admin, {"limit": 2})) == 2
    status, body = await admin.post(ALERTS, {"limit": -2})
    assert status == 422, body


# --- the catalog -----------------------------------------------------------------------------


async def test_license_catalog_lists_the_catalog(admin: Api) -> None:
    with (config_dir() / "catalog.toml").open("rb") as f:
        catalog = tomllib.load(f)
    expected = {
        lic["tag"]: (lic["display_name"], family["name"], tier)
        for family in catalog["families"]
        for tier, lic in enumerate(family["licenses"])
    }
    status, body = await admin.get("/api/v1/license-catalog")
    assert status == 200, body
    got = {
        e["entitlementTag"]: (e["displayName"], e["family"], e["tier"]) for e in body["licenses"]
    }
    assert got == expected
    by_tag = {e["entitlementTag"]: e for e in body["licenses"]}
    assert by_tag[EXPORT_KEY]["exportRestricted"] is True
    assert by_tag[ENHANCED]["exportRestricted"] is False
    assert by_tag[BASIC]["tier"] < by_tag[ENHANCED]["tier"] < by_tag[CUWL]["tier"]


async def test_expiry_alert_follows_a_changed_line(admin: Api) -> None:
    await setup_account(admin)
    line = await add_line(
        admin, entitlementTag=BASIC, quantity=5, licenseType="TERM", endDate=day(20)
    )
    [before] = await alerts(admin)
    assert day(20) in before["message"]
    status, body = await admin.post(
        f"{POOL}/{line['id']}/update",
        {"entitlementTag": BASIC, "quantity": 8, "licenseType": "TERM", "endDate": day(5)},
    )
    assert status == 200, body
    [after] = await alerts(admin)
    assert after["messageType"] == "Licenses Expiring"
    # The open alert tells what is true now: 8 licenses, ending in 5 days.
    assert day(5) in after["message"], after["message"]
    assert "8" in after["message"], after["message"]


async def test_expired_line_raises_an_expired_alert(admin: Api) -> None:
    await setup_account(admin)
    await add_line(
        admin, entitlementTag=BASIC, quantity=5, licenseType="TERM",
        startDate=day(-100), endDate=day(-1),
    )  # fmt: skip
    [alert] = await alerts(admin)
    assert alert["messageType"] == "Licenses Expired"
    assert day(-1) in alert["message"]


async def test_pool_changes_roll_back_with_their_audit_event(
    admin: Api, db: asyncpg.Connection
) -> None:
    await setup_account(admin)
    line = await add_line(admin, entitlementTag=ENHANCED, quantity=10)
    for action in ("license.added", "license.updated", "license.removed"):
        await refuse_events(db, action)
    status, body = await admin.post(
        POOL, {"entitlementTag": BASIC, "quantity": 1, "licenseType": "TERM", "endDate": day(3)}
    )
    assert status == 500, body
    status, body = await admin.post(
        f"{POOL}/{line['id']}/update", {"entitlementTag": ENHANCED, "quantity": 99}
    )
    assert status == 500, body
    status, body = await admin.post(f"{POOL}/{line['id']}/delete")
    assert status == 500, body
    assert await pool(admin) == [line]
    assert await alerts(admin) == []
