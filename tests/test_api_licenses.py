"""License pools through the admin API: adding, updating and removing pool lines."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.conftest import BASIC, ENHANCED, Api, Credentials, new_client
from tests.helpers.api import EXPORT_KEY
from tests.helpers.events import event_count
from tests.helpers.licenses import (
    ENHANCED_NAME,
    LAB_POOL,
    POOL,
    add_line,
    day,
    insert_upstream_line,
    licenses,
    pool,
    setup_account,
)

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
        "editable": True,
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
    assert listed["editable"] is False
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
