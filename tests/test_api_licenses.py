"""License pools, the licenses view, alerts and the catalog through the admin API."""

from __future__ import annotations

import datetime as dt
import tomllib
from typing import Any

import asyncpg

from satellite.resources import config_dir
from tests.conftest import BASIC, CUWL, ENHANCED, Api, Credentials, new_client

POOL = "/api/v1/accounts/Acme/virtual-accounts/DEFAULT/license-pool"
LAB_POOL = "/api/v1/accounts/Acme/virtual-accounts/Lab/license-pool"
LICENSES = "/api/v1/accounts/Acme/licenses"
ALERTS = "/api/v1/accounts/Acme/alerts"
EXPORT_KEY = "regid.2019-03.com.cisco.UCM_ExportKey_12.0_d1e6b8a3-4f2c-4b7d-9e31-6a5c0f7b2d48"

ENHANCED_NAME = "UC Manager Enhanced License (12.x)"
BASIC_NAME = "UC Manager Basic License (12.x)"
CUWL_NAME = "UC Manager CUWL License (12.x)"


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def day(offset: int) -> str:
    return (today() + dt.timedelta(days=offset)).isoformat()


async def setup_account(admin: Api, *vas: str) -> None:
    status, body = await admin.post("/api/v1/accounts", {"name": "Acme"})
    assert status == 200, body
    for va in vas:
        status, body = await admin.post("/api/v1/accounts/Acme/virtual-accounts", {"name": va})
        assert status == 200, body


async def add_line(api: Api, path: str = POOL, **fields: Any) -> dict[str, Any]:
    status, body = await api.post(path, fields)
    assert status == 200, body
    line: dict[str, Any] = body["license"]
    return line


async def pool(api: Api, path: str = POOL) -> list[dict[str, Any]]:
    status, body = await api.get(path)
    assert status == 200, body
    lines: list[dict[str, Any]] = body["licenses"]
    return lines


async def licenses(api: Api, query: dict[str, Any] | None = None) -> dict[str, Any]:
    status, body = await api.post(LICENSES, query if query is not None else {})
    assert status == 200, body
    result: dict[str, Any] = body
    return result


async def alerts(api: Api, query: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    status, body = await api.post(ALERTS, query if query is not None else {})
    assert status == 200, body
    result: list[dict[str, Any]] = body["alerts"]
    return result


async def event_count(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM events"))


async def insert_upstream_line(db: asyncpg.Connection, va: str, tag: str, quantity: int) -> int:
    line_id = await db.fetchval(
        "INSERT INTO license_lines (virtual_account_id, tag, quantity, license_type, source) "
        "SELECT va.id, $2, $3, 'PERPETUAL', 'upstream' FROM virtual_accounts va "
        "JOIN accounts a ON a.id = va.account_id WHERE a.name = 'Acme' AND va.name = $1 "
        "RETURNING id",
        va,
        tag,
        quantity,
    )
    return int(line_id)


# --- pool lines ------------------------------------------------------------------------------


async def test_add_line_answers_with_the_line(admin: Api) -> None:
    await setup_account(admin)
    status, body = await admin.post(
        POOL,
        {
            "entitlementTag": ENHANCED,
            "quantity": 25,
            "licenseType": "TERM",
            "startDate": day(-10),
            "endDate": day(355),
            "subscriptionId": "Sub-1234",
        },
    )
    assert status == 200, body
    line = body["license"]
    assert isinstance(line["id"], int)
    assert line == {
        "id": line["id"],
        "entitlementTag": ENHANCED,
        "license": ENHANCED_NAME,
        "quantity": 25,
        "licenseType": "TERM",
        "startDate": day(-10),
        "endDate": day(355),
        "subscriptionId": "Sub-1234",
        "exportRestricted": False,
        "source": "local",
        "status": "Active",
    }


async def test_line_defaults(admin: Api) -> None:
    await setup_account(admin)
    line = await add_line(admin, entitlementTag=BASIC, quantity=3)
    assert line["licenseType"] == "PERPETUAL"
    assert line["startDate"] is None
    assert line["endDate"] is None
    assert line["subscriptionId"] is None
    assert line["exportRestricted"] is False
    # The catalog says which tags are export restricted; only an account allowed
    # export-controlled functionality may hold them.
    status, body = await admin.post(POOL, {"entitlementTag": EXPORT_KEY, "quantity": 1})
    assert status == 422, body
    assert body["field"] == "exportRestricted"
    assert await pool(admin) == [line]
    status, body = await admin.post(
        "/api/v1/accounts/Acme/update", {"exportControlledAllowed": True}
    )
    assert status == 200, body
    key = await add_line(admin, entitlementTag=EXPORT_KEY, quantity=1)
    assert key["exportRestricted"] is True


async def test_list_update_and_delete_lines(admin: Api, db: asyncpg.Connection) -> None:
    await setup_account(admin)
    first = await add_line(admin, entitlementTag=ENHANCED, quantity=10)
    second = await add_line(admin, entitlementTag=BASIC, quantity=4)
    assert sorted(line["id"] for line in await pool(admin)) == sorted([first["id"], second["id"]])

    status, body = await admin.post(
        f"{POOL}/{first['id']}/update",
        {"entitlementTag": ENHANCED, "quantity": 12, "subscriptionId": "S-9"},
    )
    assert status == 200, body
    assert body["license"]["id"] == first["id"]
    assert body["license"]["quantity"] == 12
    assert body["license"]["subscriptionId"] == "S-9"
    by_id = {line["id"]: line for line in await pool(admin)}
    assert by_id[first["id"]]["quantity"] == 12
    assert by_id[second["id"]]["quantity"] == 4

    status, body = await admin.post(f"{POOL}/{second['id']}/delete")
    assert status == 200, body
    assert body["status"] == "SUCCESS"
    assert [line["id"] for line in await pool(admin)] == [first["id"]]

    actions = await db.fetch("SELECT action, target, details FROM events ORDER BY id")
    license_events = [(r["action"], r["target"]) for r in actions if r["action"].startswith("lic")]
    assert license_events == [
        ("license.added", f"Acme/DEFAULT/{first['id']}"),
        ("license.added", f"Acme/DEFAULT/{second['id']}"),
        ("license.updated", f"Acme/DEFAULT/{first['id']}"),
        ("license.removed", f"Acme/DEFAULT/{second['id']}"),
    ]


async def test_changes_are_audited_with_the_caller(admin: Api, system_admin: Credentials) -> None:
    await setup_account(admin)
    line = await add_line(admin, entitlementTag=ENHANCED, quantity=10)
    status, _ = await admin.post(
        f"{POOL}/{line['id']}/update", {"entitlementTag": ENHANCED, "quantity": 7}
    )
    assert status == 200
    status, body = await admin.get("/api/v1/events?action=license")
    assert status == 200, body
    updated, added = body["events"]
    assert added["action"] == "license.added"
    assert added["details"]["quantity"] == 10
    assert updated["action"] == "license.updated"
    assert updated["details"]["quantity_before"] == 10
    assert updated["details"]["quantity"] == 7
    assert {added["actor"], updated["actor"]} == {f"client:{system_admin.client_id}"}


async def test_refused_lines(admin: Api, db: asyncpg.Connection) -> None:
    await setup_account(admin)
    events_before = await event_count(db)
    refused: list[tuple[dict[str, Any], str]] = [
        ({"entitlementTag": "regid.2099-01.com.example.Nothing", "quantity": 1}, "entitlementTag"),
        ({"entitlementTag": ENHANCED, "quantity": 1, "licenseType": "TERM"}, "endDate"),
        ({"entitlementTag": ENHANCED, "quantity": 1, "licenseType": "SUBSCRIPTION"}, "endDate"),
        ({"entitlementTag": ENHANCED, "quantity": 1, "endDate": day(30)}, "endDate"),
        (
            {
                "entitlementTag": ENHANCED,
                "quantity": 1,
                "licenseType": "TERM",
                "startDate": day(20),
                "endDate": day(10),
            },
            "startDate",
        ),
        ({"entitlementTag": ENHANCED, "quantity": 0}, "quantity"),
        ({"entitlementTag": ENHANCED, "quantity": 1, "licenseType": "FOREVER"}, "licenseType"),
        ({"entitlementTag": ENHANCED, "quantity": 1, "colour": "red"}, "colour"),
        ({"quantity": 1}, "entitlementTag"),
    ]
    for body_in, field in refused:
        status, body = await admin.post(POOL, body_in)
        assert status == 422, (body_in, body)
        assert body["field"] == field, (body_in, body)
    assert await pool(admin) == []
    assert await event_count(db) == events_before


async def test_refused_update_leaves_the_line(admin: Api, db: asyncpg.Connection) -> None:
    await setup_account(admin)
    line = await add_line(admin, entitlementTag=ENHANCED, quantity=10)
    events_before = await event_count(db)
    status, body = await admin.post(
        f"{POOL}/{line['id']}/update",
        {"entitlementTag": ENHANCED, "quantity": 99, "licenseType": "TERM"},
    )
    assert status == 422, body
    assert body["field"] == "endDate"
    assert await pool(admin) == [line]
    assert await event_count(db) == events_before


async def test_term_line_ending_today_is_valid(admin: Api) -> None:
    await setup_account(admin)
    line = await add_line(
        admin, entitlementTag=ENHANCED, quantity=2, licenseType="TERM",
        startDate=day(0), endDate=day(0),
    )  # fmt: skip
    assert line["status"] == "Active"
    assert (await licenses(admin))["licenses"][0]["quantity"] == 2


async def test_upstream_lines_are_read_only(admin: Api, db: asyncpg.Connection) -> None:
    await setup_account(admin)
    line_id = await insert_upstream_line(db, "DEFAULT", ENHANCED, 40)
    [listed] = await pool(admin)
    assert listed["id"] == line_id
    assert listed["source"] == "upstream"
    assert listed["quantity"] == 40
    events_before = await event_count(db)
    status, body = await admin.post(
        f"{POOL}/{line_id}/update", {"entitlementTag": ENHANCED, "quantity": 1}
    )
    assert status == 409, body
    assert body["field"] == "lineId"
    assert "upstream" in body["detail"]
    status, body = await admin.post(f"{POOL}/{line_id}/delete")
    assert status == 409, body
    assert "upstream" in body["detail"]
    assert await pool(admin) == [listed]
    assert await event_count(db) == events_before
    # It counts like any other line.
    assert (await licenses(admin))["licenses"][0]["quantity"] == 40


async def test_unknown_line_is_404(admin: Api, db: asyncpg.Connection) -> None:
    await setup_account(admin, "Lab")
    line = await add_line(admin, entitlementTag=ENHANCED, quantity=10)
    events_before = await event_count(db)
    # A line is only found under its own virtual account.
    for path in (f"{POOL}/999999", f"{LAB_POOL}/{line['id']}"):
        status, body = await admin.post(
            path + "/update", {"entitlementTag": ENHANCED, "quantity": 1}
        )
        assert status == 404, (path, body)
        status, body = await admin.post(path + "/delete")
        assert status == 404, (path, body)
    status, body = await admin.post(f"{POOL}/abc/delete")
    assert status == 422, body
    assert body["field"] == "lineId"
    assert await pool(admin) == [line]
    assert await event_count(db) == events_before


async def test_pool_of_unknown_virtual_account_is_404(admin: Api) -> None:
    await setup_account(admin)
    path = "/api/v1/accounts/Acme/virtual-accounts/Nope/license-pool"
    status, body = await admin.get(path)
    assert status == 404, body
    status, body = await admin.post(path, {"entitlementTag": ENHANCED, "quantity": 1})
    assert status == 404, body
    assert body["field"] == "virtualAccount"


async def test_viewer_reads_but_cannot_change_pools(admin: Api, db: asyncpg.Connection) -> None:
    await setup_account(admin)
    line = await add_line(admin, entitlementTag=ENHANCED, quantity=10)
    viewer = await new_client(admin, "account-viewer", ["Acme"])
    assert await pool(viewer) == [line]
    assert (await licenses(viewer))["totalRecords"] == 1
    events_before = await event_count(db)
    status, _ = await viewer.post(POOL, {"entitlementTag": BASIC, "quantity": 1})
    assert status == 403
    status, _ = await viewer.post(
        f"{POOL}/{line['id']}/update", {"entitlementTag": ENHANCED, "quantity": 1}
    )
    assert status == 403
    status, _ = await viewer.post(f"{POOL}/{line['id']}/delete")
    assert status == 403
    assert await pool(admin) == [line]
    assert await event_count(db) == events_before


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


async def refuse_events(db: asyncpg.Connection, action: str) -> None:
    """Make the audit insert of ``action`` fail inside the database."""
    await db.execute(
        f"ALTER TABLE events ADD CONSTRAINT refuse_{action.replace('.', '_')} "
        f"CHECK (action <> '{action}') NOT VALID"
    )


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


async def test_reads_without_parameters_ignore_a_query_string(admin: Api) -> None:
    """The pool list and the catalog take no query parameters: a query string sent anyway
    (a toolkit client's paging, say) changes nothing and is not refused."""
    await setup_account(admin)
    line = await add_line(admin, entitlementTag=ENHANCED, quantity=10)
    status, body = await admin.get(POOL + "?limit=5&color=blue")
    assert (status, body) == (200, {"licenses": [line]})
    status, plain = await admin.get("/api/v1/license-catalog")
    assert status == 200, plain
    status, body = await admin.get("/api/v1/license-catalog?offset=3&color=blue")
    assert (status, body) == (200, plain)
