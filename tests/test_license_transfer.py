"""License transfer between virtual accounts (POST .../licenses/transfer, and the CLI).

The sync's side of it (a transfer at the upstream reaches the satellite) is in
tests/sync/, with the two daemons it needs.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestServer

from tests.conftest import BASIC, CUWL, ENHANCED, Api, new_client
from tests.test_api_licenses import (
    ENHANCED_NAME,
    POOL,
    add_line,
    alerts,
    day,
    event_count,
    insert_upstream_line,
    licenses,
    pool,
    setup_account,
)
from tests.test_cli import Cli, _query, _toml_config
from tests.test_device import new_agent
from tests.test_reservation import new_product

TRANSFER = "/api/v1/accounts/Acme/licenses/transfer"
LAB_POOL = "/api/v1/accounts/Acme/virtual-accounts/Lab/license-pool"
TOKENS = "/api/v1/accounts/Acme/virtual-accounts/DEFAULT/tokens"


def move(license: str, quantity: int, target: str = "Lab", **more: Any) -> dict[str, Any]:
    return {"license": license, "quantity": quantity, "targetVirtualAccount": target, **more}


async def transfer(api: Api, *lines: dict[str, Any], source: str | None = "DEFAULT") -> Any:
    body: dict[str, Any] = {"licenses": list(lines)}
    if source is not None:
        body["sourceVirtualAccount"] = source
    status, answer = await api.post(TRANSFER, body)
    assert status == 200, answer
    return answer


async def refused(
    api: Api, status: int, *lines: dict[str, Any], source: str | None = "DEFAULT"
) -> dict[str, Any]:
    body: dict[str, Any] = {"licenses": list(lines)}
    if source is not None:
        body["sourceVirtualAccount"] = source
    got, problem = await api.post(TRANSFER, body)
    assert got == status, problem
    assert isinstance(problem, dict)
    return problem


def shape(lines: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """A pool as (tag, quantity, type, start, end, subscription), in a stable order."""
    return sorted(
        (
            line["entitlementTag"],
            line["quantity"],
            line["licenseType"],
            line["startDate"],
            line["endDate"],
            line["subscriptionId"],
        )
        for line in lines
    )


async def position(api: Api, va: str, tag: str) -> dict[str, Any]:
    body = await licenses(api, {"virtualAccounts": [va]})
    found = [p for p in body["licenses"] if p["entitlementTag"] == tag]
    assert len(found) == 1, body
    result: dict[str, Any] = found[0]
    return result


async def register_using(
    api: Api, server: TestServer, tmp_path: Path, usage: dict[str, int]
) -> None:
    """A real product registered in DEFAULT that reports ``usage``."""
    status, body = await api.post(TOKENS, {})
    assert status == 200, body
    agent = new_agent(tmp_path, server)
    await agent.register(body["tokenInfo"]["token"])
    await agent.report_usage(usage)


# --- what moves ------------------------------------------------------------------------------


async def test_a_transfer_moves_free_licenses_with_their_dates_and_subscription(
    admin: Api,
) -> None:
    await setup_account(admin, "Lab")
    term = await add_line(
        admin,
        entitlementTag=ENHANCED,
        quantity=10,
        licenseType="TERM",
        startDate=day(-30),
        endDate=day(300),
        subscriptionId="Sub-77",
    )
    answer = await transfer(admin, move(ENHANCED, 4, licenseType="TERM"))
    [moved] = answer["transfers"]
    [target_line] = await pool(admin, LAB_POOL)
    assert answer["status"] == "SUCCESS"
    assert moved == {
        "entitlementTag": ENHANCED,
        "license": ENHANCED_NAME,
        "quantity": 4,
        "sourceVirtualAccount": "DEFAULT",
        "targetVirtualAccount": "Lab",
        "lines": [
            {
                "sourceLineId": term["id"],
                "targetLineId": target_line["id"],
                "quantity": 4,
                "licenseType": "TERM",
                "startDate": day(-30),
                "endDate": day(300),
                "subscriptionId": "Sub-77",
            }
        ],
    }
    assert shape(await pool(admin)) == [(ENHANCED, 6, "TERM", day(-30), day(300), "Sub-77")]
    assert shape([target_line]) == [(ENHANCED, 4, "TERM", day(-30), day(300), "Sub-77")]
    assert target_line["source"] == "local"
    assert (await position(admin, "DEFAULT", ENHANCED))["quantity"] == 6
    assert (await position(admin, "Lab", ENHANCED))["quantity"] == 4


async def test_the_license_is_named_by_tag_or_display_name_and_the_source_per_line(
    admin: Api,
) -> None:
    await setup_account(admin, "Lab", "Lab2")
    await add_line(admin, entitlementTag=ENHANCED, quantity=10)
    await add_line(admin, LAB_POOL, entitlementTag=BASIC, quantity=5)
    # The source per line (no source for the request), the license by its display name.
    await transfer(
        admin,
        move(ENHANCED_NAME, 3, sourceVirtualAccount="DEFAULT"),
        move(BASIC, 2, "Lab2", sourceVirtualAccount="Lab"),
        source=None,
    )
    assert shape(await pool(admin)) == [(ENHANCED, 7, "PERPETUAL", None, None, None)]
    assert shape(await pool(admin, LAB_POOL)) == [
        (BASIC, 3, "PERPETUAL", None, None, None),
        (ENHANCED, 3, "PERPETUAL", None, None, None),
    ]
    lab2 = "/api/v1/accounts/Acme/virtual-accounts/Lab2/license-pool"
    assert shape(await pool(admin, lab2)) == [(BASIC, 2, "PERPETUAL", None, None, None)]


async def test_the_line_ending_latest_gives_first_unless_asked_otherwise(admin: Api) -> None:
    await setup_account(admin, "Lab")
    await add_line(admin, entitlementTag=ENHANCED, quantity=5, licenseType="TERM", endDate=day(20))
    await add_line(admin, entitlementTag=ENHANCED, quantity=5, licenseType="TERM", endDate=day(400))
    await add_line(admin, entitlementTag=ENHANCED, quantity=2)  # PERPETUAL: the longest
    await transfer(admin, move(ENHANCED, 4))  # 2 perpetual, then 2 ending in 400 days
    assert shape(await pool(admin, LAB_POOL)) == [
        (ENHANCED, 2, "PERPETUAL", None, None, None),
        (ENHANCED, 2, "TERM", None, day(400), None),
    ]
    await transfer(admin, move(ENHANCED, 6, precedence="SHORTEST_TERM_FIRST"))
    assert shape(await pool(admin)) == [(ENHANCED, 2, "TERM", None, day(400), None)]
    assert shape(await pool(admin, LAB_POOL)) == [
        (ENHANCED, 2, "PERPETUAL", None, None, None),
        (ENHANCED, 3, "TERM", None, day(400), None),
        (ENHANCED, 5, "TERM", None, day(20), None),
    ]
    # The type narrows the lines: no PERPETUAL is left where the TERM ones are.
    problem = await refused(admin, 409, move(ENHANCED, 1, licenseType="PERPETUAL"))
    assert problem["field"] == "licenses[0]"


async def test_licenses_that_come_back_join_the_line_they_left(admin: Api) -> None:
    await setup_account(admin, "Lab")
    line = await add_line(
        admin,
        entitlementTag=ENHANCED,
        quantity=8,
        licenseType="SUBSCRIPTION",
        endDate=day(100),
        subscriptionId="Sub-1",
    )
    await transfer(admin, move(ENHANCED, 3))
    await transfer(admin, move(ENHANCED, 3, "DEFAULT"), source="Lab")
    assert [(x["id"], x["quantity"]) for x in await pool(admin)] == [(line["id"], 8)]
    assert await pool(admin, LAB_POOL) == []


async def test_pending_and_expired_lines_hold_nothing_to_transfer(admin: Api) -> None:
    await setup_account(admin, "Lab")
    await add_line(
        admin, entitlementTag=ENHANCED, quantity=5, licenseType="TERM",
        startDate=day(10), endDate=day(100),
    )  # fmt: skip
    await add_line(
        admin, entitlementTag=ENHANCED, quantity=5, licenseType="TERM",
        startDate=day(-100), endDate=day(-1),
    )  # fmt: skip
    problem = await refused(admin, 409, move(ENHANCED, 1))
    assert problem["field"] == "licenses[0]"
    assert "0 free" in problem["detail"]


# --- what does not move --------------------------------------------------------------------


async def test_what_is_in_use_or_lent_to_a_lower_tier_stays(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    await setup_account(admin, "Lab")
    await add_line(admin, entitlementTag=ENHANCED, quantity=10)
    await add_line(admin, entitlementTag=CUWL, quantity=3)
    # 4 Enhanced in use; 2 Basic in use with no Basic licenses: Enhanced lends them 2.
    await register_using(admin, server, tmp_path, {ENHANCED: 4, BASIC: 2})
    enhanced = await position(admin, "DEFAULT", ENHANCED)
    assert enhanced["quantity"] == 10
    before = await pool(admin)

    problem = await refused(admin, 409, move(ENHANCED, 5))
    assert problem["field"] == "licenses[0]"
    assert "5 asked, 4 free" in problem["detail"]
    assert "4 in use" in problem["detail"]
    assert "2 lent to lower tiers" in problem["detail"]
    assert await pool(admin) == before

    await transfer(admin, move(ENHANCED, 4), move(CUWL, 3))
    assert (await position(admin, "DEFAULT", ENHANCED))["status"] == "In Compliance"
    assert (await position(admin, "DEFAULT", BASIC))["status"] == "In Compliance"
    problem = await refused(admin, 409, move(ENHANCED, 1))
    assert "0 free" in problem["detail"]


async def test_reserved_licenses_stay_on_their_lines(
    admin: Api, tmp_path: Path, state_dir: Path
) -> None:
    await setup_account(admin, "Lab")
    long = await add_line(
        admin, entitlementTag=ENHANCED, quantity=4, licenseType="TERM", endDate=day(400)
    )
    short = await add_line(
        admin, entitlementTag=ENHANCED, quantity=4, licenseType="TERM", endDate=day(200)
    )
    product = new_product(tmp_path, state_dir)
    product.enable()
    reserve = "/api/v1/accounts/Acme/virtual-accounts/DEFAULT/reserve-licenses"
    status, body = await admin.post(
        reserve,
        {
            "reservationRequests": [
                {
                    "reservationCode": product.request(),
                    "licenses": [{"entitlementTag": ENHANCED, "quantity": 3}],
                }
            ]
        },
    )
    assert status == 200, body  # 3 of the line ending in 400 days are reserved
    problem = await refused(admin, 409, move(ENHANCED, 6))
    assert "6 asked, 5 free" in problem["detail"]
    assert "3 reserved" in problem["detail"]
    # The 5 free: 1 of the longer line (3 of it are reserved), then 4 of the shorter.
    await transfer(admin, move(ENHANCED, 5))
    assert [(x["id"], x["quantity"]) for x in await pool(admin)] == [(long["id"], 3)]
    assert short["id"] not in {x["id"] for x in await pool(admin)}
    assert shape(await pool(admin, LAB_POOL)) == [
        (ENHANCED, 1, "TERM", None, day(400), None),
        (ENHANCED, 4, "TERM", None, day(200), None),
    ]
    assert (await position(admin, "DEFAULT", ENHANCED))["status"] == "In Compliance"


async def test_all_lines_or_none_and_the_refusal_names_the_line(
    admin: Api, db: asyncpg.Connection
) -> None:
    await setup_account(admin, "Lab")
    await add_line(admin, entitlementTag=ENHANCED, quantity=10)
    await add_line(admin, entitlementTag=BASIC, quantity=2)
    before = (await pool(admin), await pool(admin, LAB_POOL), await event_count(db))
    # The second line asks for more than is free: the first does not move either.
    problem = await refused(admin, 409, move(ENHANCED, 5), move(BASIC, 3))
    assert problem["field"] == "licenses[1]"
    assert "licenses[1]" in problem["detail"]
    # Two lines of one license count together: 6 + 5 of 10.
    problem = await refused(admin, 409, move(ENHANCED, 6), move(ENHANCED, 5))
    assert problem["field"] == "licenses[1]"
    assert (await pool(admin), await pool(admin, LAB_POOL), await event_count(db)) == before


async def test_bad_requests_name_their_field_and_change_nothing(
    admin: Api, db: asyncpg.Connection
) -> None:
    await setup_account(admin, "Lab")
    await add_line(admin, entitlementTag=ENHANCED, quantity=10)
    before = (await pool(admin), await event_count(db))
    cases: list[tuple[int, list[dict[str, Any]], str | None, str]] = [
        (422, [move(ENHANCED, 1)], None, "licenses[0].sourceVirtualAccount"),
        (422, [move("No Such License", 1)], "DEFAULT", "licenses[0].license"),
        (404, [move(ENHANCED, 1, "Nowhere")], "DEFAULT", "licenses[0].targetVirtualAccount"),
        (404, [move(ENHANCED, 1)], "Nowhere", "sourceVirtualAccount"),
        (
            404,
            [move(ENHANCED, 1), move(ENHANCED, 1, sourceVirtualAccount="Nowhere")],
            "DEFAULT",
            "licenses[1].sourceVirtualAccount",
        ),
        (422, [move(ENHANCED, 1, "DEFAULT")], "DEFAULT", "licenses[0].targetVirtualAccount"),
        (422, [move(ENHANCED, 0)], "DEFAULT", "licenses[0].quantity"),
        (422, [move(ENHANCED, 1, licenseType="LEASED")], "DEFAULT", "licenses[0].licenseType"),
        (422, [], "DEFAULT", "licenses"),
    ]
    for status, lines, source, field in cases:
        problem = await refused(admin, status, *lines, source=source)
        assert problem["field"] == field, (lines, problem)
    assert (await pool(admin), await event_count(db)) == before


async def test_a_viewer_may_not_transfer(admin: Api) -> None:
    await setup_account(admin, "Lab")
    await add_line(admin, entitlementTag=ENHANCED, quantity=10)
    viewer = await new_client(admin, "account-viewer", ["Acme"])
    await refused(viewer, 403, move(ENHANCED, 1))
    assert (await position(admin, "DEFAULT", ENHANCED))["quantity"] == 10


# --- concurrency ----------------------------------------------------------------------------


async def test_two_transfers_racing_for_the_last_free_licenses_cannot_both_win(
    admin: Api,
) -> None:
    await setup_account(admin, "Lab", "Lab2")
    lab2 = "/api/v1/accounts/Acme/virtual-accounts/Lab2/license-pool"
    await add_line(admin, lab2, entitlementTag=BASIC, quantity=5)
    for _ in range(5):  # bounded: a few rounds of the race
        await add_line(admin, entitlementTag=ENHANCED, quantity=3)
        results = await asyncio.gather(
            admin.post(
                TRANSFER,
                {"sourceVirtualAccount": "DEFAULT", "licenses": [move(ENHANCED, 3, "Lab")]},
            ),
            admin.post(
                TRANSFER,
                {"sourceVirtualAccount": "DEFAULT", "licenses": [move(ENHANCED, 3, "Lab2")]},
            ),
            # And one the other way round, of another license: the virtual accounts are
            # locked in one order, so it waits its turn (no deadlock) and goes through.
            admin.post(
                TRANSFER,
                {"sourceVirtualAccount": "Lab2", "licenses": [move(BASIC, 1, "DEFAULT")]},
            ),
        )
        statuses = sorted(status for status, _ in results[:2])
        assert statuses == [200, 409], results
        assert results[2][0] == 200, results[2]
    enhanced = [
        sum(x["quantity"] for x in await pool(admin, path) if x["entitlementTag"] == ENHANCED)
        for path in (POOL, LAB_POOL, lab2)
    ]
    assert enhanced[0] == 0
    assert sum(enhanced) == 15
    assert [(x["entitlementTag"], x["quantity"]) for x in await pool(admin, lab2)] == [
        (ENHANCED, enhanced[2])
    ] * bool(enhanced[2])
    assert (await position(admin, "DEFAULT", BASIC))["quantity"] == 5


# --- audit, alerts, the upstream's lines ------------------------------------------------------


async def test_both_virtual_accounts_have_an_audit_event(
    admin: Api, db: asyncpg.Connection
) -> None:
    await setup_account(admin, "Lab")
    line = await add_line(admin, entitlementTag=ENHANCED, quantity=10)
    await transfer(admin, move(ENHANCED, 4))
    [target] = await pool(admin, LAB_POOL)
    rows = await db.fetch(
        "SELECT action, target, details FROM events WHERE action LIKE 'license.transferred%' "
        "ORDER BY id"
    )
    assert [(r["action"], r["target"], json.loads(r["details"])) for r in rows] == [
        (
            "license.transferred_out",
            "Acme/DEFAULT",
            {"tag": ENHANCED, "quantity": 4, "to_virtual_account": "Lab", "lines": [line["id"]]},
        ),
        (
            "license.transferred_in",
            "Acme/Lab",
            {
                "tag": ENHANCED,
                "quantity": 4,
                "from_virtual_account": "DEFAULT",
                "lines": [target["id"]],
            },
        ),
    ]


async def test_the_alerts_of_both_virtual_accounts_follow(admin: Api) -> None:
    await setup_account(admin, "Lab")
    await add_line(admin, entitlementTag=ENHANCED, quantity=5, licenseType="TERM", endDate=day(10))
    [expiring] = await alerts(admin)
    assert (expiring["messageType"], expiring["source"]) == ("Licenses Expiring", "DEFAULT")
    await transfer(admin, move(ENHANCED, 5))
    [moved] = await alerts(admin)
    assert (moved["messageType"], moved["source"]) == ("Licenses Expiring", "Lab")
    assert moved["message"].startswith("5 ")


async def test_lines_from_the_upstream_are_the_upstreams_to_transfer(
    admin: Api, db: asyncpg.Connection
) -> None:
    await setup_account(admin, "Lab")
    await insert_upstream_line(db, "DEFAULT", ENHANCED, 10)
    await add_line(admin, entitlementTag=ENHANCED, quantity=2)
    problem = await refused(admin, 409, move(ENHANCED, 3))
    assert problem["field"] == "licenses[0]"
    assert "upstream" in problem["detail"]
    await transfer(admin, move(ENHANCED, 2))  # the local ones may go
    assert [(x["source"], x["quantity"]) for x in await pool(admin)] == [("upstream", 10)]


# --- the CLI --------------------------------------------------------------------------------


def test_cli_transfer(tmp_path: Path, db_dsn: str, state_dir: Path) -> None:
    cli = Cli(_toml_config(tmp_path / "satellite.toml", state_dir, db_dsn), tmp_path)
    cli("account", "create", "Acme").ok()
    cli("va", "create", "Acme", "Lab").ok()
    cli("license", "add", "Acme", "DEFAULT", "--tag", ENHANCED, "--quantity", "10").ok()
    out = cli(
        "license", "transfer", "Acme", "DEFAULT", "--to", "Lab",
        "--license", f"{ENHANCED_NAME}=3", "--json",
    ).json()  # fmt: skip
    [moved] = out["transfers"]
    assert (moved["quantity"], moved["targetVirtualAccount"]) == (3, "Lab")
    table = cli(
        "license", "transfer", "Acme", "DEFAULT", "--to", "Lab", "--license", f"{ENHANCED}=2"
    )
    assert ENHANCED_NAME in table.ok().out
    line = cli(
        "license", "transfer", "Acme", "DEFAULT", "--to", "Lab", "--license", f"{ENHANCED}=6"
    ).one_error_line()
    assert "licenses[0]" in line
    assert "6 asked, 5 free" in line
    assert (
        "is not LICENSE=COUNT"
        in cli(
            "license", "transfer", "Acme", "DEFAULT", "--to", "Lab", "--license", ENHANCED
        ).one_error_line()
    )
    lab = cli("license", "pool", "Acme", "Lab", "--json").json()["licenses"]
    assert [x["quantity"] for x in lab] == [5]
    events = _query(db_dsn, "SELECT actor FROM events WHERE action LIKE 'license.transferred%'")
    assert {r["actor"] for r in events} == {f"host:{getpass.getuser()}"}


async def test_a_license_transfer_and_a_device_transfer_crossing_do_not_deadlock(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    """A device transfer from Lab to DEFAULT and a license transfer from DEFAULT to Lab lock
    the same two virtual accounts: both in the order of their ids, so neither waits for the
    other while holding what the other waits for (a deadlock is a 500)."""
    await setup_account(admin, "Lab")
    await add_line(admin, entitlementTag=ENHANCED, quantity=100)
    status, body = await admin.post("/api/v1/accounts/Acme/virtual-accounts/Lab/tokens", {})
    assert status == 200, body
    serials = [f"FCH{n:04d}" for n in range(40)]
    for serial in serials:
        await new_agent(tmp_path, server, serial).register(body["tokenInfo"]["token"])
    devices = "/api/v1/accounts/Acme/virtual-accounts/Lab/devices/transfer"
    for serial in serials:  # bounded: one crossing per product
        sudi = {"udiPid": "UCM", "udiSerialNumber": serial}
        results = await asyncio.gather(
            admin.post(
                devices,
                {"productInstances": [{"sudi": sudi, "targetVirtualAccount": "DEFAULT"}]},
            ),
            admin.post(
                TRANSFER,
                {"sourceVirtualAccount": "DEFAULT", "licenses": [move(ENHANCED, 1)]},
            ),
        )
        assert [status for status, _ in results] == [200, 200], results
    assert (await position(admin, "Lab", ENHANCED))["quantity"] == len(serials)
