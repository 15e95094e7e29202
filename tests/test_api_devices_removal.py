"""Product instances removed through the admin API, a virtual account holding some, the
device commands of the CLI, and transfers and removals racing one another."""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from satellite_agent.client import AgentError, RequestRefused
from tests.conftest import ENHANCED, Api, lock_waiters, new_client
from tests.helpers.api import ACCOUNT, VOICE, licenses, new_agent, new_token, setup_voice
from tests.helpers.cli import Cli, toml_config
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
from tests.helpers.licenses import ENHANCED_NAME

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
    cli = Cli(toml_config(tmp_path / "satellite.toml", state_dir, db_dsn), tmp_path)

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
