""" "Insufficient Licenses" raised and cleared by what moves the usage, in its transaction:
a usage report, a deregistration, a removal, a renewal after a lapse, an expiry run. The
alert is the one the hourly job raises (key, message, severity), the licenses API agrees
with it, and the job finds nothing to change afterwards."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestServer

from satellite.api.context import Services
from satellite.scheduler import jobs
from satellite.services.licenses import POOL_ALERT_LOCK_BASE
from satellite_agent.export import ExportControl
from tests.conftest import BASIC, ENHANCED, Api, lock_waiters
from tests.helpers.api import (
    ACCOUNT,
    EXPORT_KEY,
    FEATURE,
    VOICE,
    licenses,
    new_agent,
    new_token,
    setup_voice,
)
from tests.helpers.devices import LAB, register, sudi
from tests.helpers.export import registered, setup_acme
from tests.helpers.jobs import at, now
from tests.helpers.licenses import BASIC_NAME, ENHANCED_NAME

ROOM = "regid.2016-07.com.cisco.UCM_TelePresenceRoom_12.0_a4f7e3d2-1c9b-4a68-b0e5-7d2c6f8e9a34"


async def shortages(admin: Api) -> list[dict[str, Any]]:
    """The open "Insufficient Licenses" alerts, as the alerts API lists them."""
    status, body = await admin.post(ACCOUNT + "/alerts", {})
    assert status == 200, body
    return [a for a in body["alerts"] if a["messageType"] == "Insufficient Licenses"]


async def shortage_messages(admin: Api) -> list[str]:
    return sorted(a["message"] for a in await shortages(admin))


def short(name: str, count: int) -> str:
    return f"{name}: {count} more in use or reserved than available"


async def alert_rows(db: asyncpg.Connection) -> list[tuple[int, str, str, bool]]:
    """Every alert row, open or cleared: id, key, message, whether it is open."""
    rows = await db.fetch(
        "SELECT id, dedupe_key, message, cleared_at IS NULL AS open FROM alerts ORDER BY id"
    )
    return [(r["id"], r["dedupe_key"], r["message"], r["open"]) for r in rows]


async def alert_writes(db: asyncpg.Connection) -> list[tuple[int, int]]:
    """Every alert row with the transaction that last wrote it."""
    rows = await db.fetch("SELECT id, xmin::text::bigint AS written FROM alerts ORDER BY id")
    return [(r["id"], r["written"]) for r in rows]


async def test_a_report_over_the_pool_opens_the_alert_at_once_and_one_under_clears_it(
    admin: Api, server: TestServer, tmp_path: Path, services: Services, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, enhanced=5)
    agent = await register(admin, tmp_path, server, "FCH0001")
    await agent.report_usage({ENHANCED: 6})
    # No job ran: the report itself opened it, as the job words it.
    [alert] = await shortages(admin)
    assert (alert["severity"], alert["source"]) == ("Major", "Voice")
    assert alert["message"] == short(ENHANCED_NAME, 1)
    position = (await licenses(admin))[ENHANCED]
    assert (position["status"], position["available"]) == ("Out Of Compliance", -1)

    # Further over: the shortage goes on, so the report writes nothing (the alert's count
    # is brought up to date by the next refresh, here the job); the licenses API tells the
    # count at once. The job then leaves it as it is.
    written = await alert_writes(db)
    await agent.report_usage({ENHANCED: 8})
    assert await alert_writes(db) == written
    assert await shortage_messages(admin) == [short(ENHANCED_NAME, 1)]
    assert (await licenses(admin))[ENHANCED]["available"] == -3
    await jobs.pool_alerts(services, at(now()))
    assert await shortage_messages(admin) == [short(ENHANCED_NAME, 3)]
    rows = await alert_rows(db)
    await jobs.pool_alerts(services, at(now()))
    assert await alert_rows(db) == rows

    # Back under: cleared at once.
    await agent.report_usage({ENHANCED: 5})
    assert await shortages(admin) == []
    assert (await licenses(admin))[ENHANCED]["status"] == "In Compliance"


async def test_a_report_releasing_all_of_a_products_usage_ends_the_shortage(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    await setup_voice(admin, enhanced=5)
    first = await register(admin, tmp_path, server, "FCH0001")
    second = await register(admin, tmp_path, server, "FCH0002")
    await first.report_usage({ENHANCED: 3})
    await second.report_usage({ENHANCED: 4})
    assert await shortage_messages(admin) == [short(ENHANCED_NAME, 2)]
    await second.report_usage({ENHANCED: 0})
    assert await shortages(admin) == []
    await first.report_usage({})  # nothing open: nothing to end
    assert await shortages(admin) == []
    assert (await licenses(admin))[ENHANCED]["inUse"] == 0


async def test_a_report_that_moves_no_shortage_writes_no_alert(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, enhanced=5)
    status, body = await admin.post(
        VOICE + "/license-pool", {"entitlementTag": ROOM, "quantity": 10}
    )
    assert status == 200, body
    agent = await register(admin, tmp_path, server, "FCH0001")
    other = await register(admin, tmp_path, server, "FCH0002")
    await agent.report_usage({ENHANCED: 7})
    [(_, key, _, _)] = await alert_rows(db)
    assert key == f"pool:{await va_id(db)}:shortage:{ENHANCED}"
    written = await alert_writes(db)
    # Another tag, in compliance; the same usage again: the open alert is left alone.
    await other.report_usage({ROOM: 4})
    await other.report_usage({ROOM: 2})
    await agent.report_usage({ENHANCED: 7})
    assert await alert_writes(db) == written


async def va_id(db: asyncpg.Connection, name: str = "Voice") -> int:
    found: int = await db.fetchval("SELECT id FROM virtual_accounts WHERE name = $1", name)
    return found


async def test_a_tier_that_lent_its_licenses_leaves_the_lower_tier_short(
    admin: Api, server: TestServer, tmp_path: Path, services: Services, db: asyncpg.Connection
) -> None:
    """Basic has no licenses and borrows Enhanced's; a report of Enhanced takes them back,
    so Basic (which that report did not name) is short: its alert opens with it."""
    await setup_voice(admin, enhanced=5)
    basic = await register(admin, tmp_path, server, "FCH0001")
    enhanced = await register(admin, tmp_path, server, "FCH0002")
    await basic.report_usage({BASIC: 3})
    assert await shortages(admin) == []
    await enhanced.report_usage({ENHANCED: 3})
    assert await shortage_messages(admin) == [short(BASIC_NAME, 1)]
    assert (await licenses(admin))[BASIC]["available"] == -1
    written = await alert_rows(db)
    await jobs.pool_alerts(services, at(now()))
    assert await alert_rows(db) == written
    await enhanced.report_usage({ENHANCED: 2})
    assert await shortages(admin) == []


async def test_deregistering_or_removing_the_product_clears_it(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    await setup_voice(admin, enhanced=5)
    first = await register(admin, tmp_path, server, "FCH0001")
    second = await register(admin, tmp_path, server, "FCH0002")
    await first.report_usage({ENHANCED: 4})
    await second.report_usage({ENHANCED: 3})
    assert await shortage_messages(admin) == [short(ENHANCED_NAME, 2)]
    await second.deregister()
    assert await shortages(admin) == []

    await second_product_over(admin, tmp_path, server)
    status, body = await admin.post(
        f"{VOICE}/devices/remove",
        {"productInstancesRemoveRequests": [{"sudi": sudi("FCH0003"), "productTagName": "UCM"}]},
    )
    assert status == 200, body
    assert await shortages(admin) == []


async def second_product_over(admin: Api, tmp_path: Path, server: TestServer) -> None:
    third = await register(admin, tmp_path, server, "FCH0003")
    await third.report_usage({ENHANCED: 2})
    assert await shortage_messages(admin) == [short(ENHANCED_NAME, 1)]


async def test_an_expiry_run_clears_it_and_a_renewal_opens_it_again(
    admin: Api, server: TestServer, tmp_path: Path, services: Services, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, enhanced=5)
    agent = await register(admin, tmp_path, server, "FCH0001")
    await agent.report_usage({ENHANCED: 6})
    assert await shortage_messages(admin) == [short(ENHANCED_NAME, 1)]
    # The authorization lapsed unrenewed: the expiry run stops its usage counting, and the
    # shortage is over.
    await db.execute(
        "UPDATE product_instances SET authorization_expires_at = now() - interval '1 day'"
    )
    await jobs.expire_authorizations(services, at(now()))
    assert await shortages(admin) == []
    # Renewed (its usage counts again): short again, at once.
    await agent.renew_authorization()
    assert await shortage_messages(admin) == [short(ENHANCED_NAME, 1)]


async def test_two_concurrent_reports_leave_the_shortage_of_both(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection, db_dsn: str
) -> None:
    """10 in use of 10; two products each report one more at the same moment. Held at the
    virtual account's shortage lock until both wait there, each then reads what the other
    committed: the alert says 2, not the 1 each saw alone."""
    await setup_voice(admin, enhanced=10)
    first = await register(admin, tmp_path, server, "FCH0001")
    second = await register(admin, tmp_path, server, "FCH0002")
    await first.report_usage({ENHANCED: 5})
    await second.report_usage({ENHANCED: 5})
    assert await shortages(admin) == []
    holder = await asyncpg.connect(db_dsn)
    try:
        async with holder.transaction():
            key = POOL_ALERT_LOCK_BASE + await va_id(db)
            await holder.execute("SELECT pg_advisory_xact_lock($1::bigint)", key)
            reports = asyncio.gather(
                first.report_usage({ENHANCED: 6}), second.report_usage({ENHANCED: 6})
            )
            await lock_waiters(db, 2)
    finally:
        await holder.close()
    await reports
    assert await shortage_messages(admin) == [short(ENHANCED_NAME, 2)]
    assert (await licenses(admin))[ENHANCED]["available"] == -2


async def test_a_forced_replacement_ends_the_shortage_of_the_usage_it_releases(
    admin: Api, server: TestServer, tmp_path: Path, services: Services, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, enhanced=5)
    first = await register(admin, tmp_path, server, "FCH0001")
    old = await register(admin, tmp_path, server, "FCH0002")
    await first.report_usage({ENHANCED: 3})
    await old.report_usage({ENHANCED: 4})
    assert await shortage_messages(admin) == [short(ENHANCED_NAME, 2)]
    # Another agent of the same product (a key of its own) takes the registration with
    # force: the old one ends, its 4 are released, and the shortage with them.
    new = new_agent(tmp_path / "new", server, "FCH0002")
    await new.register(await new_token(admin), force=True)
    assert (await licenses(admin))[ENHANCED]["inUse"] == 3
    assert await shortages(admin) == []
    rows = await alert_rows(db)
    await jobs.pool_alerts(services, at(now()))
    assert await alert_rows(db) == rows


async def test_a_product_moving_to_another_virtual_account_moves_its_shortage(
    admin: Api, server: TestServer, tmp_path: Path, services: Services, db: asyncpg.Connection
) -> None:
    """The product itself registers again (proving its key) with a token of Lab: its usage
    leaves Voice, where the shortage ends, and counts in Lab, where one begins."""
    await setup_voice(admin, enhanced=5)
    assert (await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Lab"}))[0] == 200
    status, body = await admin.post(
        LAB + "/license-pool", {"entitlementTag": ENHANCED, "quantity": 2}
    )
    assert status == 200, body
    agent = await register(admin, tmp_path, server, "FCH0001")
    await agent.report_usage({ENHANCED: 6})
    assert [(a["source"], a["message"]) for a in await shortages(admin)] == [
        ("Voice", short(ENHANCED_NAME, 1))
    ]
    state = await agent.register(await new_token(admin, va="Lab"))
    assert state.virtual_account == "Lab"
    assert [(a["source"], a["message"]) for a in await shortages(admin)] == [
        ("Lab", short(ENHANCED_NAME, 4))
    ]
    rows = await alert_rows(db)
    await jobs.pool_alerts(services, at(now()))
    assert await alert_rows(db) == rows


async def test_the_pool_alerts_job_holds_no_virtual_account_it_is_done_with(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection, db_dsn: str
) -> None:
    """The job refreshes Voice, then waits for Lab (whose pool alert lock the test holds):
    meanwhile a report in Voice that begins a shortage raises it without waiting, and the
    job run on another node (here, on demand) is skipped and recorded so."""
    await setup_voice(admin, enhanced=5)
    assert (await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Lab"}))[0] == 200
    agent = await register(admin, tmp_path, server, "FCH0001")
    holder = await asyncpg.connect(db_dsn)
    try:
        async with holder.transaction():
            key = POOL_ALERT_LOCK_BASE + await va_id(db, "Lab")
            await holder.execute("SELECT pg_advisory_xact_lock($1::bigint)", key)
            job = asyncio.ensure_future(admin.post("/api/v1/jobs/pool-alerts/run"))
            await lock_waiters(db, 1)
            report = asyncio.ensure_future(agent.report_usage({ENHANCED: 6}))
            for _ in range(400):  # bounded: the report is answered, or waits for the job
                if report.done():
                    break
                waiting = await db.fetchval(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                assert waiting < 2, "the report waits for the job"
                await asyncio.sleep(0.05)
            await report
            assert await shortage_messages(admin) == [short(ENHANCED_NAME, 1)]
            status, run = await admin.post("/api/v1/jobs/pool-alerts/run")
            assert status == 200, run
            assert (run["outcome"], run["reason"]) == (
                "skipped",
                "another node holds the job's lock",
            )
            assert not job.done()
    finally:
        await holder.close()
    status, run = await job
    assert status == 200, run
    # (Voice, Lab and the account's default virtual account.)
    assert (run["outcome"], run["counts"]) == ("done", {"virtual_accounts": 3})
    outcomes = await db.fetch("SELECT outcome FROM job_runs WHERE job = 'pool-alerts' ORDER BY id")
    assert [r["outcome"] for r in outcomes] == ["skipped", "done"]
    assert await shortage_messages(admin) == [short(ENHANCED_NAME, 1)]


async def test_a_deregistration_releasing_an_export_key_ends_the_shortage(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    # Export keys granted count as in use: a product leaving with its key (and no usage of
    # the tag) gives a license back, which can end a shortage.
    await setup_acme(admin, keys=2)
    holders = [await registered(admin, server, tmp_path, f"EXP00{n}") for n in (1, 2)]
    for holder in holders:
        await ExportControl(holder).request(FEATURE)
    user = await registered(admin, server, tmp_path, "EXP003")
    await user.report_usage({EXPORT_KEY: 1})  # 2 keys out and 1 in use: one more than 2
    assert [a["source"] for a in await shortages(admin)] == ["Voice"]
    await holders[1].deregister()
    assert await shortages(admin) == []
