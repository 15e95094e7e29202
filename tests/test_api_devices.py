"""Product instances through the admin API and the CLI, with the real agent registering them."""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import json
import socket
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from satellite_agent.client import Agent, AgentError, RequestRefused
from tests.conftest import BASIC, ENHANCED, Api, lock_waiters, new_client
from tests.test_cli import Cli, _toml_config
from tests.test_device import (
    ACCOUNT,
    VOICE,
    licenses,
    new_agent,
    new_token,
    setup_voice,
)

LAB = ACCOUNT + "/virtual-accounts/Lab"
ENHANCED_NAME = "UC Manager Enhanced License (12.x)"
BASIC_NAME = "UC Manager Basic License (12.x)"


async def register(
    admin: Api, tmp_path: Path, server: TestServer, serial: str, *, share: bool = True
) -> Agent:
    agent = new_agent(tmp_path, server, serial)
    if not share:
        state = agent.state
        state.share_host_identity = False
        agent.save(state)
    await agent.register(await new_token(admin))
    return agent


def product_id(agent: Agent) -> str:
    found = agent.state.product_instance_id
    assert found is not None
    return found


async def devices(api: Api, base: str = VOICE, query: str = "") -> dict[str, Any]:
    status, body = await api.get(f"{base}/devices{query}")
    assert status == 200, body
    return body  # type: ignore[no-any-return]


async def serials(api: Api, base: str = VOICE, query: str = "") -> list[str]:
    return [d["sudi"]["udiSerialNumber"] for d in (await devices(api, base, query))["devices"]]


def sudi(serial: str) -> dict[str, str]:
    return {"udiPid": "UCM", "udiSerialNumber": serial}


async def product_events(db: asyncpg.Connection, action: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT actor, target, details FROM events WHERE action = $1 ORDER BY id", action
    )
    return [{**dict(r), "details": json.loads(r["details"])} for r in rows]


async def snapshot(db: asyncpg.Connection) -> list[Any]:
    return [
        [tuple(r) for r in await db.fetch(f"SELECT * FROM {table} ORDER BY 1, 2")]  # noqa: S608
        for table in ("product_instances", "product_usage", "events")
    ]


# --- listing and detail --------------------------------------------------------------------


async def test_device_list_in_the_cisco_shape(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    await setup_voice(admin, enhanced=10, basic=10)
    first = await register(admin, tmp_path, server, "FCH0001")
    await first.report_usage({ENHANCED: 7, BASIC: 2})
    second = await register(admin, tmp_path, server, "FCH0002", share=False)

    listing = await devices(admin)
    assert listing["totalRecords"] == 2
    one, two = listing["devices"]
    host = socket.gethostname()
    assert one == {
        "productTagName": "UCM",
        "productName": "UCM 15.0",
        "displayName": host,
        "hostName": host,
        "sudi": {
            "udiPid": "UCM",
            "udiSerialNumber": "FCH0001",
            "uuid": first.state.identity.uuid,
        },
        "registrationDate": one["registrationDate"],
        "lastContactDate": one["lastContactDate"],
        "status": "Registered",
        "licenseUsage": [
            {"license": BASIC_NAME, "entitlementTag": BASIC, "quantity": 2},
            {"license": ENHANCED_NAME, "entitlementTag": ENHANCED, "quantity": 7},
        ],
        "virtualAccount": "Voice",
        "productInstanceId": product_id(first),
        "ipAddress": one["ipAddress"],
        "exportControlled": False,
        "certificateExpiresAt": one["certificateExpiresAt"],
        "authorizationExpiresAt": one["authorizationExpiresAt"],
        "authorizationStatus": "Authorized",
        "endedAt": None,
        "reservation": None,
    }
    assert one["registrationDate"] <= one["lastContactDate"]
    assert one["authorizationExpiresAt"] < one["certificateExpiresAt"]
    # A product that does not share its host name shows its UDI instead.
    assert two["productInstanceId"] == product_id(second)
    assert (two["hostName"], two["ipAddress"]) == (None, None)
    assert two["displayName"] == "PID:UCM SN:FCH0002"
    assert two["licenseUsage"] == []
    # Both API prefixes answer.
    status, body = await admin.get(f"/backend{VOICE}/devices")
    assert status == 200
    assert body == listing


async def test_device_list_filters_and_pages(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_voice(admin)
    agents = [await register(admin, tmp_path, server, f"FCH000{n}") for n in range(1, 5)]
    await db.execute(
        "UPDATE product_instances SET hostname = 'cucm-pub.example.net' "
        "WHERE udi_serial = 'FCH0002'"
    )
    await db.execute(
        "UPDATE product_instances SET udi_pid = 'ISR4431' WHERE udi_serial = 'FCH0003'"
    )
    await agents[3].deregister()

    assert await serials(admin) == ["FCH0001", "FCH0002", "FCH0003"]
    assert await serials(admin, query="?status=all") == ["FCH0001", "FCH0002", "FCH0003", "FCH0004"]
    assert await serials(admin, query="?status=Deregistered") == ["FCH0004"]
    assert await serials(admin, query="?status=removed") == []
    assert await serials(admin, query="?udiSerialNumber=FCH0002") == ["FCH0002"]
    assert await serials(admin, query="?udiPid=ISR4431") == ["FCH0003"]
    assert await serials(admin, query="?hostName=PUB.example") == ["FCH0002"]
    assert await serials(admin, query="?productTagName=UCM&udiPid=UCM") == ["FCH0001", "FCH0002"]
    assert await serials(admin, query="?productTagName=ASR") == []

    page = await devices(admin, query="?status=all&limit=2&offset=1")
    assert page["totalRecords"] == 4
    assert [d["sudi"]["udiSerialNumber"] for d in page["devices"]] == ["FCH0002", "FCH0003"]
    [ended] = (await devices(admin, query="?status=all&offset=3"))["devices"]
    assert ended["status"] == "Deregistered"
    assert ended["authorizationStatus"] == "Expired"
    assert ended["endedAt"] is not None

    for query, field in (
        ("?status=gone", "status"),
        ("?limit=-2", "limit"),
        ("?limit=100001", "limit"),
        ("?offset=-1", "offset"),
        ("?color=blue", "color"),
    ):
        status, problem = await admin.get(f"{VOICE}/devices{query}")
        assert status == 422, (query, problem)
        assert problem["field"] == field, (query, problem)
    status, problem = await admin.get(f"{ACCOUNT}/virtual-accounts/Nowhere/devices")
    assert (status, problem["field"]) == (404, "virtualAccount")


async def test_device_detail_shows_recent_usage_newest_first(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, enhanced=10)
    status, body = await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Lab"})
    assert status == 200, body
    agent = await register(admin, tmp_path, server, "FCH0001")
    for count in range(1, 53):
        await agent.report_usage({ENHANCED: count})
    product = product_id(agent)

    status, detail = await admin.get(f"{VOICE}/devices/{product}")
    assert status == 200, detail
    history = detail.pop("usageHistory")
    [listed] = (await devices(admin))["devices"]
    assert detail == listed
    assert detail["licenseUsage"] == [
        {"license": ENHANCED_NAME, "entitlementTag": ENHANCED, "quantity": 52}
    ]
    assert len(history) == 50
    assert [h["licenseUsage"][0]["quantity"] for h in history] == list(range(52, 2, -1))
    assert history[0]["reportedAt"] >= history[-1]["reportedAt"]

    # Authorization lapsed: the product is still registered, its authorization expired.
    await db.execute(
        "UPDATE product_instances SET authorization_expires_at = now() - '1s'::interval"
    )
    status, detail = await admin.get(f"{VOICE}/devices/{product}")
    assert (detail["status"], detail["authorizationStatus"]) == ("Registered", "Expired")

    for path in (
        f"{VOICE}/devices/00000000-0000-4000-8000-000000000000",
        f"{VOICE}/devices/not-a-uuid",
        f"{LAB}/devices/{product}",  # it is not Lab's
    ):
        status, problem = await admin.get(path)
        assert status == 404, (path, problem)
        assert problem["field"] == "productInstanceId"


# --- transfer ------------------------------------------------------------------------------


async def test_transfer_moves_products_and_their_usage(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, enhanced=10)
    status, body = await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Lab"})
    assert status == 200, body
    first = await register(admin, tmp_path, server, "FCH0001")
    second = await register(admin, tmp_path, server, "FCH0002")
    stays = await register(admin, tmp_path, server, "FCH0003")
    await first.report_usage({ENHANCED: 4})
    await second.report_usage({ENHANCED: 3})
    await stays.report_usage({ENHANCED: 1})

    status, answer = await admin.post(
        f"{VOICE}/devices/transfer",
        {
            "productInstances": [
                {"sudi": sudi("FCH0001"), "productTagName": "UCM", "targetVirtualAccount": "Lab"},
                {
                    "sudi": {**sudi("FCH0002"), "uuid": second.state.identity.uuid, "suvi": None},
                    "targetVirtualAccount": "Lab",
                },
            ]
        },
    )
    assert status == 200, answer
    assert answer["status"] == "SUCCESS"
    assert [(d["productInstanceId"], d["virtualAccount"]) for d in answer["devices"]] == [
        (product_id(first), "Lab"),
        (product_id(second), "Lab"),
    ]
    assert await serials(admin) == ["FCH0003"]
    assert await serials(admin, LAB) == ["FCH0001", "FCH0002"]
    status, body = await admin.post(ACCOUNT + "/licenses", {})
    in_use = {(p["virtualAccount"], p["entitlementTag"]): p["inUse"] for p in body["licenses"]}
    assert in_use[("Voice", ENHANCED)] == 1
    assert in_use[("Lab", ENHANCED)] == 7  # Lab holds no licenses: out of compliance
    events = await product_events(db, "product.transferred")
    assert [(e["target"], e["details"]) for e in events] == [
        (
            f"Acme/Lab/{product_id(first)}",
            {
                "udi": "PID:UCM SN:FCH0001",
                "from_virtual_account": "Voice",
                "to_virtual_account": "Lab",
            },
        ),
        (
            f"Acme/Lab/{product_id(second)}",
            {
                "udi": "PID:UCM SN:FCH0002",
                "from_virtual_account": "Voice",
                "to_virtual_account": "Lab",
            },
        ),
    ]
    assert all(e["actor"].startswith("client:") for e in events)

    # The product goes on reporting, now against Lab.
    state = await first.report_usage({ENHANCED: 5})
    assert state.authorization is not None
    assert state.authorization["state"] == "OUT_OF_COMPLIANCE"
    status, body = await admin.post(ACCOUNT + "/licenses", {})
    in_use = {(p["virtualAccount"], p["entitlementTag"]): p["inUse"] for p in body["licenses"]}
    assert in_use[("Lab", ENHANCED)] == 8
    # ...and back, where there are licenses for it.
    status, answer = await admin.post(
        f"{LAB}/devices/transfer",
        {"productInstances": [{"sudi": sudi("FCH0001"), "targetVirtualAccount": "Voice"}]},
    )
    assert status == 200, answer
    state = await first.report_usage({ENHANCED: 5})
    assert state.authorization is not None
    assert state.authorization["state"] == "AUTHORIZED"
    assert (await licenses(admin))[ENHANCED]["inUse"] == 6


async def test_transfer_is_all_or_nothing(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, enhanced=10)
    for name in ("Lab", "Other"):
        status, body = await admin.post(ACCOUNT + "/virtual-accounts", {"name": name})
        assert status == 200, body
    status, body = await admin.post("/api/v1/accounts", {"name": "Elsewhere"})
    assert status == 200, body
    status, body = await admin.post(
        "/api/v1/accounts/Elsewhere/virtual-accounts", {"name": "Foreign"}
    )
    assert status == 200, body
    agent = await register(admin, tmp_path, server, "FCH0001")
    await register(admin, tmp_path, server, "FCH0002")
    await agent.report_usage({ENHANCED: 2})
    ended = await register(admin, tmp_path, server, "FCH0003")
    await ended.deregister()
    before = await snapshot(db)

    def move(serial: str, target: str = "Lab", **extra: Any) -> dict[str, Any]:
        return {"sudi": sudi(serial), "targetVirtualAccount": target, **extra}

    target = "targetVirtualAccount"
    cases: list[tuple[Any, int, str]] = [
        ([move("FCH0001"), move("FCH0009")], 404, "productInstances[1].sudi"),
        ([move("FCH0001"), move("FCH0003")], 404, "productInstances[1].sudi"),  # deregistered
        ([move("FCH0001"), move("FCH0002", "Nowhere")], 404, f"productInstances[1].{target}"),
        ([move("FCH0001", "Foreign")], 404, f"productInstances[0].{target}"),
        (
            [move("FCH0002", "Other"), move("FCH0001", "Voice")],
            422,
            f"productInstances[1].{target}",
        ),
        ([move("FCH0001"), move("FCH0001", "Other")], 422, "productInstances[1]"),
        (
            [move("FCH0002"), move("FCH0001", productTagName="ISR")],
            404,
            "productInstances[1].productTagName",
        ),
        (
            [{"sudi": {**sudi("FCH0001"), "uuid": "other"}, target: "Lab"}],
            404,
            "productInstances[0].sudi.uuid",
        ),
        ([], 422, "productInstances"),
        (
            [{"sudi": {"udiPid": "UCM"}, target: "Lab"}],
            422,
            "productInstances[0].sudi.udiSerialNumber",
        ),
        ([{"sudi": sudi("FCH0001"), target: "Lab", "color": 1}], 422, "productInstances[0].color"),
    ]
    for items, code, field in cases:
        status, problem = await admin.post(f"{VOICE}/devices/transfer", {"productInstances": items})
        assert status == code, (items, problem)
        assert problem["field"] == field, (items, problem)
    assert (
        "FCH0009"
        in (await admin.post(f"{VOICE}/devices/transfer", {"productInstances": cases[0][0]}))[1][
            "detail"
        ]
    )
    assert await snapshot(db) == before, "a refused transfer changed something"
    # A product of another virtual account is not this one's to move.
    status, problem = await admin.post(
        f"{LAB}/devices/transfer", {"productInstances": [move("FCH0001", "Other")]}
    )
    assert (status, problem["field"]) == (404, "productInstances[0].sudi")
    assert await snapshot(db) == before


# --- removal -------------------------------------------------------------------------------


async def test_removal_releases_usage_and_refuses_the_product(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, enhanced=10)
    first = await register(admin, tmp_path, server, "FCH0001")
    second = await register(admin, tmp_path, server, "FCH0002")
    third = await register(admin, tmp_path, server, "FCH0003")
    await first.report_usage({ENHANCED: 6})
    await second.report_usage({ENHANCED: 1})
    assert (await licenses(admin))[ENHANCED]["inUse"] == 7

    # The spelling public clients send.
    status, answer = await admin.post(
        f"{VOICE}/devices/remove",
        {
            "productInstacesRemoveRequests": [
                {"sudi": {**sudi("FCH0001"), "udiVid": None}, "productTagName": "UCM"}
            ]
        },
    )
    assert status == 200, answer
    [removed] = answer["devices"]
    assert (removed["productInstanceId"], removed["status"]) == (product_id(first), "Removed")
    assert removed["licenseUsage"] == []
    assert removed["authorizationStatus"] == "Expired"
    assert (await licenses(admin))[ENHANCED]["inUse"] == 1
    assert await serials(admin) == ["FCH0002", "FCH0003"]
    assert await serials(admin, query="?status=Removed") == ["FCH0001"]
    [event] = await product_events(db, "product.removed")
    assert event["target"] == f"Acme/Voice/{product_id(first)}"
    assert event["details"] == {"udi": "PID:UCM SN:FCH0001", "released_usage": {ENHANCED: 6}}

    # The removed product's next call is refused as ended.
    with pytest.raises(RequestRefused) as refused:
        await first.report_usage({ENHANCED: 6})
    assert refused.value.status == 403
    assert refused.value.problem["type"].endswith("product-ended")
    assert "removed" in str(refused.value)
    # The agent took note: it no longer claims a registration.
    assert first.state.registration == "removed"
    with pytest.raises(AgentError, match="not registered"):
        await first.renew_authorization()
    assert (await licenses(admin))[ENHANCED]["inUse"] == 1

    # The correct spelling is accepted too; several at once.
    status, answer = await admin.post(
        f"{VOICE}/devices/remove",
        {"productInstancesRemoveRequests": [{"sudi": sudi("FCH0002")}, {"sudi": sudi("FCH0003")}]},
    )
    assert status == 200, answer
    assert answer["message"] == "2 product instance(s) removed"
    assert await serials(admin) == []
    assert (await licenses(admin))[ENHANCED]["inUse"] == 0
    for agent in (second, third):
        with pytest.raises(RequestRefused) as refused:
            await agent.report_usage({})
        assert refused.value.status == 403

    # The product may register again (a new instance).
    (tmp_path / "again").mkdir()
    again = await register(admin, tmp_path / "again", server, "FCH0001")
    assert product_id(again) != product_id(first)
    assert await serials(admin) == ["FCH0001"]


async def test_removal_requests_are_checked(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, enhanced=10)
    agent = await register(admin, tmp_path, server, "FCH0001")
    await agent.report_usage({ENHANCED: 3})
    before = await snapshot(db)
    one = [{"sudi": sudi("FCH0001")}]
    cases: list[tuple[Any, int, str]] = [
        ({}, 422, "productInstacesRemoveRequests"),
        (
            {"productInstacesRemoveRequests": one, "productInstancesRemoveRequests": one},
            422,
            "productInstancesRemoveRequests",
        ),
        ({"productInstacesRemoveRequests": []}, 422, "productInstacesRemoveRequests"),
        (
            {"productInstacesRemoveRequests": [*one, {"sudi": sudi("FCH0404")}]},
            404,
            "productInstacesRemoveRequests[1].sudi",
        ),
        (
            {"productInstancesRemoveRequests": [{"sudi": sudi("FCH0404")}]},
            404,
            "productInstancesRemoveRequests[0].sudi",
        ),
        ({"productInstacesRemoveRequests": [*one, *one]}, 422, "productInstacesRemoveRequests[1]"),
        (
            {"productInstacesRemoveRequests": [{"sudi": sudi("FCH0001"), "productTagName": "X"}]},
            404,
            "productInstacesRemoveRequests[0].productTagName",
        ),
        ({"productInstanceRemoveRequests": one}, 422, "productInstanceRemoveRequests"),
    ]
    for body, code, field in cases:
        status, problem = await admin.post(f"{VOICE}/devices/remove", body)
        assert status == code, (body, problem)
        assert problem["field"] == field, (body, problem)
    assert await snapshot(db) == before
    assert (await licenses(admin))[ENHANCED]["inUse"] == 3


async def test_viewer_lists_but_does_not_change(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_voice(admin)
    status, body = await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Lab"})
    assert status == 200, body
    agent = await register(admin, tmp_path, server, "FCH0001")
    viewer = await new_client(admin, "account-viewer", ["Acme"])
    before = await snapshot(db)
    assert await serials(viewer) == ["FCH0001"]
    status, _ = await viewer.get(f"{VOICE}/devices/{product_id(agent)}")
    assert status == 200
    for path, body in (
        (
            f"{VOICE}/devices/transfer",
            {"productInstances": [{"sudi": sudi("FCH0001"), "targetVirtualAccount": "Lab"}]},
        ),
        (f"{VOICE}/devices/remove", {"productInstacesRemoveRequests": [{"sudi": sudi("FCH0001")}]}),
    ):
        status, problem = await viewer.post(path, body)
        assert status == 403, problem
    assert await snapshot(db) == before


# --- virtual account deletion --------------------------------------------------------------


async def test_a_virtual_account_with_products_is_not_deleted(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_voice(admin)
    status, body = await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Lab"})
    assert status == 200, body
    token = await new_token(admin, va="Lab")
    lab_agent = new_agent(tmp_path, server, "FCH0001")
    await lab_agent.register(token)
    gone = new_agent(tmp_path, server, "FCH0002")
    await gone.register(token)
    await gone.deregister()
    status, body = await admin.post(f"{LAB}/tokens/revoke", {"tokens": [token]})
    assert status == 200, body

    status, problem = await admin.post(f"{LAB}/delete", {})
    assert status == 409, problem
    assert problem["field"] == "virtualAccount"
    assert "1 registered product(s)" in problem["detail"]

    # Moved away, the products no longer hold it; the ended one goes with it.
    status, answer = await admin.post(
        f"{LAB}/devices/transfer",
        {"productInstances": [{"sudi": sudi("FCH0001"), "targetVirtualAccount": "Voice"}]},
    )
    assert status == 200, answer
    status, answer = await admin.post(f"{LAB}/delete", {})
    assert status == 200, answer
    assert await db.fetchval("SELECT count(*) FROM product_instances") == 1
    [event] = await product_events(db, "virtual_account.deleted")
    assert event["details"] == {"ended_products_deleted": 1}
    assert await serials(admin) == ["FCH0001"]
    await lab_agent.report_usage({ENHANCED: 1})


# --- the CLI -------------------------------------------------------------------------------


async def test_device_commands(
    admin: Api,
    server: TestServer,
    tmp_path: Path,
    db_dsn: str,
    state_dir: Path,
    db: asyncpg.Connection,
) -> None:
    await setup_voice(admin, enhanced=10)
    status, body = await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Lab"})
    assert status == 200, body
    first = await register(admin, tmp_path, server, "FCH0001")
    second = await register(admin, tmp_path, server, "FCH0002", share=False)
    await first.report_usage({ENHANCED: 4})
    await first.report_usage({ENHANCED: 5})
    cli = Cli(_toml_config(tmp_path / "satellite.toml", state_dir, db_dsn), tmp_path)

    async def run(*args: str) -> Any:
        return await asyncio.to_thread(cli, *args)

    listed = (await run("device", "list", "Acme", "Voice", "--json")).json()
    assert listed == await devices(admin)
    table = (await run("device", "list", "Acme", "Voice")).ok().out.splitlines()
    assert table[0].split() == [
        "ID",
        "NAME",
        "PRODUCT",
        "PID",
        "SERIAL",
        "STATUS",
        "AUTHORIZATION",
        "CONTACT",
    ]
    assert len(table) == 3
    assert table[2].startswith(product_id(second))
    assert "PID:UCM SN:FCH0002" in table[2]

    shown = (await run("device", "show", "Acme", "Voice", product_id(first), "--json")).json()
    _, detail = await admin.get(f"{VOICE}/devices/{product_id(first)}")
    assert shown == detail
    text = (await run("device", "show", "Acme", "Voice", product_id(first))).ok().out
    assert f"usage: {ENHANCED_NAME}  5" in text
    assert "REPORTED" in text

    moved = (
        await run("device", "transfer", "Acme", "Voice", product_id(first), "--to", "Lab", "--json")
    ).json()
    assert [d["virtualAccount"] for d in moved["devices"]] == ["Lab"]
    assert await serials(admin, LAB) == ["FCH0001"]
    refused = await run("device", "transfer", "Acme", "Voice", product_id(first), "--to", "Lab")
    assert product_id(first) in refused.one_error_line()

    removed = (await run("device", "remove", "Acme", "Lab", product_id(first))).ok().out
    assert "1 product instance(s) removed" in removed
    assert "Removed" in removed
    assert await serials(admin, LAB, "?status=removed") == ["FCH0001"]
    with pytest.raises(RequestRefused):
        await first.report_usage({ENHANCED: 1})
    bad = await run("device", "list", "Acme", "Voice", "--status", "gone")
    assert "gone" in bad.one_error_line()
    unknown = await run("device", "show", "Acme", "Voice", "nope")
    assert "nope" in unknown.one_error_line()

    operator = f"host:{getpass.getuser()}"
    actions = await db.fetch(
        "SELECT action FROM events WHERE actor = $1 AND action LIKE 'product.%' ORDER BY id",
        operator,
    )
    assert [r["action"] for r in actions] == ["product.transferred", "product.removed"]


async def test_racing_transfer_and_removal_have_one_winner(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, enhanced=10)
    status, body = await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Lab"})
    assert status == 200, body
    agent = await register(admin, tmp_path, server, "FCH0001")
    await agent.report_usage({ENHANCED: 2})
    transfer = {"productInstances": [{"sudi": sudi("FCH0001"), "targetVirtualAccount": "Lab"}]}
    remove = {"productInstacesRemoveRequests": [{"sudi": sudi("FCH0001")}]}
    for round_ in range(5):
        results = await asyncio.gather(
            admin.post(f"{VOICE}/devices/transfer", transfer),
            admin.post(f"{VOICE}/devices/remove", remove),
            admin.post(f"{VOICE}/devices/transfer", transfer),
        )
        codes = sorted(code for code, _ in results)
        assert codes == [200, 404, 404], results
        events = await db.fetchval(
            "SELECT count(*) FROM events WHERE action IN ('product.transferred', 'product.removed')"
        )
        assert events == 1
        await db.execute("DELETE FROM events WHERE action LIKE 'product.%'")
        # Start again from a product registered in Voice.
        await db.execute("DELETE FROM product_instances")
        (tmp_path / str(round_)).mkdir()
        agent = await register(admin, tmp_path / str(round_), server, "FCH0001")


async def test_transfer_moves_the_shortage_alert_with_the_usage(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    await setup_voice(admin, enhanced=10)
    status, body = await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Lab"})
    assert status == 200, body
    first = await register(admin, tmp_path, server, "FCH0001")
    second = await register(admin, tmp_path, server, "FCH0002")
    await first.report_usage({ENHANCED: 4})
    await second.report_usage({ENHANCED: 3})
    # The pool shrinks under the usage (7 of 5): Voice is short, an alert says so.
    status, pool = await admin.get(VOICE + "/license-pool")
    assert status == 200, pool
    [line] = pool["licenses"]
    status, body = await admin.post(
        f"{VOICE}/license-pool/{line['id']}/update", {"entitlementTag": ENHANCED, "quantity": 5}
    )
    assert status == 200, body

    async def shortages() -> list[str]:
        status, body = await admin.post(ACCOUNT + "/alerts", {})
        assert status == 200, body
        return sorted(
            a["virtualAccount"]
            for a in body["alerts"]
            if a["messageType"] == "Insufficient Licenses"
        )

    assert await shortages() == ["Voice"]
    status, body = await admin.post(
        f"{VOICE}/devices/transfer",
        {
            "productInstances": [
                {"sudi": sudi("FCH0001"), "productTagName": "UCM", "targetVirtualAccount": "Lab"}
            ]
        },
    )
    assert status == 200, body
    # Voice now uses 3 of 5; Lab uses 4 of none: the alert moved with the usage, at once.
    assert await shortages() == ["Lab"]


async def test_two_device_transfers_crossing_do_not_deadlock(
    admin: Api, server: TestServer, tmp_path: Path, db_dsn: str
) -> None:
    """A device transfer refreshes the alerts of its virtual accounts in the order of their
    ids, as every other change of several does. Two crossing (Voice to Lab, Lab to Voice)
    share-lock the same two virtual accounts, so nothing else orders them: each took the
    alert rows of its source first and they deadlocked (a 500)."""
    await setup_voice(admin)
    status, body = await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Lab"})
    assert status == 200, body
    soon = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=10)).isoformat()
    for base in (VOICE, LAB):  # a line about to end: an open "Licenses Expiring" alert
        status, body = await admin.post(
            base + "/license-pool",
            {"entitlementTag": ENHANCED, "quantity": 2, "licenseType": "TERM", "endDate": soon},
        )
        assert status == 200, body
    await new_agent(tmp_path, server, "FCH0001").register(await new_token(admin))
    await new_agent(tmp_path, server, "FCH0002").register(await new_token(admin, "Lab"))

    def crossing(base: str, serial: str, target: str) -> Any:
        move = {"sudi": sudi(serial), "targetVirtualAccount": target}
        return asyncio.create_task(
            admin.post(f"{base}/devices/transfer", {"productInstances": [move]})
        )

    blocker = await asyncpg.connect(db_dsn)
    watcher = await asyncpg.connect(db_dsn)
    try:
        # Voice's alert held, so that both come to wait at it: Voice to Lab first.
        held = blocker.transaction()
        await held.start()
        await blocker.execute(
            "SELECT al.id FROM alerts al JOIN virtual_accounts va ON va.id = al.virtual_account_id "
            "WHERE va.name = 'Voice' AND al.cleared_at IS NULL FOR UPDATE OF al"
        )
        to_lab = crossing(VOICE, "FCH0001", "Lab")
        await lock_waiters(watcher, 1)
        to_voice = crossing(LAB, "FCH0002", "Voice")
        await lock_waiters(watcher, 2)
        await held.commit()
        results = [await asyncio.wait_for(task, 30) for task in (to_lab, to_voice)]
    finally:
        await blocker.close()
        await watcher.close()
    assert [status for status, _ in results] == [200, 200], results
    assert await serials(admin) == ["FCH0002"]
    assert await serials(admin, LAB) == ["FCH0001"]


async def test_products_are_named_by_product_instance_id_too(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    """A transfer or removal item names its product by UDI (as public clients do) or by
    product instance id (as the CLI and the console do), never both."""
    await setup_voice(admin, enhanced=10)
    status, body = await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Lab"})
    assert status == 200, body
    first = await register(admin, tmp_path, server, "FCH0001")
    await register(admin, tmp_path, server, "FCH0002")
    await first.report_usage({ENHANCED: 4})
    first_id = product_id(first)
    # The detail takes no query parameters and ignores any sent, as ever.
    status, detail = await admin.get(f"{VOICE}/devices/{first_id}?color=blue")
    assert (status, detail["productInstanceId"]) == (200, first_id), detail

    before = await snapshot(db)
    by_id = {"productInstanceId": first_id, "targetVirtualAccount": "Lab"}
    for item, code, field in (
        ({**by_id, "sudi": sudi("FCH0001")}, 422, "productInstances[0].productInstanceId"),
        ({"targetVirtualAccount": "Lab"}, 422, "productInstances[0].sudi"),
        ({**by_id, "productTagName": "ISR"}, 404, "productInstances[0].productTagName"),
        ({**by_id, "productInstanceId": "nope"}, 404, "productInstances[0]"),
        ({**by_id, "productInstanceId": ""}, 422, "productInstances[0].productInstanceId"),
    ):
        status, problem = await admin.post(
            f"{VOICE}/devices/transfer", {"productInstances": [item]}
        )
        assert (status, problem["field"]) == (code, field), (item, problem)
    assert await snapshot(db) == before, "a refused transfer changed something"

    status, answer = await admin.post(
        f"{VOICE}/devices/transfer", {"productInstances": [{**by_id, "productTagName": "UCM"}]}
    )
    assert status == 200, answer
    assert [(d["productInstanceId"], d["virtualAccount"]) for d in answer["devices"]] == [
        (first_id, "Lab")
    ]
    assert await serials(admin, LAB) == ["FCH0001"]
    assert (await devices(admin, LAB))["devices"][0]["licenseUsage"][0]["quantity"] == 4

    status, answer = await admin.post(
        f"{LAB}/devices/remove",
        {"productInstancesRemoveRequests": [{"productInstanceId": first_id}]},
    )
    assert status == 200, answer
    assert [(d["productInstanceId"], d["status"]) for d in answer["devices"]] == [
        (first_id, "Removed")
    ]
    assert await serials(admin, LAB) == []
    # Registered again, the product is a new instance: the old id names no product to move.
    (tmp_path / "again").mkdir()
    again = await register(admin, tmp_path / "again", server, "FCH0001")
    status, problem = await admin.post(
        f"{VOICE}/devices/transfer",
        {"productInstances": [{**by_id, "targetVirtualAccount": "Lab"}]},
    )
    assert (status, problem["field"]) == (404, "productInstances[0]"), problem
    assert first_id in problem["detail"]
    assert await serials(admin) == ["FCH0002", "FCH0001"]  # in the order they registered
    assert product_id(again) != first_id
