"""Product instances through the admin API, with the real agent registering them: listing,
detail and transfer."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestServer

from tests.conftest import BASIC, ENHANCED, Api
from tests.helpers.api import ACCOUNT, VOICE, licenses, setup_voice
from tests.helpers.devices import (
    LAB,
    devices,
    product_events,
    product_id,
    register,
    serials,
    snapshot,
    sudi,
)
from tests.helpers.licenses import BASIC_NAME, ENHANCED_NAME

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
