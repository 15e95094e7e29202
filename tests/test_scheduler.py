"""Scheduled jobs against a real database: run "at" later dates through the clock they take,
each under its advisory lock, and the scheduler's life with the app."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from satellite.api.context import Services
from satellite.scheduler import JobScheduler, jobs
from satellite.services.maintenance import LOCK_KEYS
from satellite.wiring import SCHEDULER, Runtime, create_app, open_services
from satellite_agent.client import Agent, RequestRefused
from satellite_agent.state import Identity
from tests.conftest import CUWL, ENHANCED, Api

ACCOUNT = "/api/v1/accounts/Acme"
VOICE = ACCOUNT + "/virtual-accounts/Voice"
DAY = dt.timedelta(days=1)
PRODUCT = "PID:UCM SN:FCH0001"


def at(moment: dt.datetime) -> Callable[[], dt.datetime]:
    return lambda: moment


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def setup_voice(admin: Api, lines: list[dict[str, Any]]) -> None:
    status, body = await admin.post("/api/v1/accounts", {"name": "Acme"})
    assert status == 200, body
    status, body = await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Voice"})
    assert status == 200, body
    for line in lines:
        status, body = await admin.post(VOICE + "/license-pool", line)
        assert status == 200, body


async def registered_agent(admin: Api, server: TestServer, tmp_path: Path, serial: str) -> Agent:
    status, body = await admin.post(VOICE + "/tokens", {})
    assert status == 200, body
    agent = Agent(tmp_path / f"agent-{serial}-{uuid.uuid4().hex[:8]}")
    state = agent.init(
        Identity(
            pid="UCM",
            serial_number=serial,
            uuid=f"6f1e0c5a-0000-4000-8000-{serial[-6:].rjust(12, '0')}",
            product_type="UCM",
            product_version="15.0",
        )
    )
    state.transport.url = str(server.make_url("")).rstrip("/")
    state.share_host_identity = False  # so the product is known by PID and serial number
    agent.save(state)
    await agent.register(body["tokenInfo"]["token"])
    return agent


async def open_alerts(admin: Api) -> list[tuple[str, str, str]]:
    status, body = await admin.post(ACCOUNT + "/alerts", {})
    assert status == 200, body
    return sorted((a["messageType"], a["severity"], a["source"]) for a in body["alerts"])


async def alert_messages(admin: Api, message_type: str) -> list[str]:
    status, body = await admin.post(ACCOUNT + "/alerts", {})
    assert status == 200, body
    return [a["message"] for a in body["alerts"] if a["messageType"] == message_type]


async def in_use(admin: Api, tag: str = ENHANCED) -> int:
    status, body = await admin.post(ACCOUNT + "/licenses", {})
    assert status == 200, body
    counts: dict[str, int] = {line["entitlementTag"]: line["inUse"] for line in body["licenses"]}
    return counts.get(tag, 0)


async def scheduler_events(db: asyncpg.Connection) -> list[tuple[str, str]]:
    rows = await db.fetch(
        "SELECT action, target FROM events WHERE actor = 'system:scheduler' ORDER BY id"
    )
    return [(r["action"], r["target"]) for r in rows]


# --- authorizations ------------------------------------------------------------------------


async def test_an_authorization_not_renewed_expires_and_stops_counting(
    admin: Api, server: TestServer, tmp_path: Path, services: Services, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, [{"entitlementTag": ENHANCED, "quantity": 5}])
    agent = await registered_agent(admin, server, tmp_path, "FCH0001")
    await agent.report_usage({ENHANCED: 7})
    product = agent.state.product_instance_id
    start = now()

    # Today: usage counts, the pool is short, nothing has expired.
    report = await jobs.expire_authorizations(services, at(start))
    assert report is not None
    assert report.counts == {"expired": 0, "lapsed": 0}
    await jobs.pool_alerts(services, at(start))
    assert await open_alerts(admin) == [("Insufficient Licenses", "Major", "Voice")]

    # 91 days on, the product never renewed: recorded once, alerted, and its usage is gone
    # from the pool (so the shortage alert clears).
    later = start + 91 * DAY
    report = await jobs.expire_authorizations(services, at(later))
    assert report is not None
    assert report.counts == {"expired": 1, "lapsed": 1}
    assert await open_alerts(admin) == [("Authorization Expired", "Major", PRODUCT)]
    [message] = await alert_messages(admin, "Authorization Expired")
    assert "no longer counts" in message
    assert await scheduler_events(db) == [("product.authorization_expired", f"Voice/{product}")]
    # Another run finds nothing new: no second event, one alert.
    report = await jobs.expire_authorizations(services, at(later + DAY))
    assert report is not None
    assert report.counts == {"expired": 0, "lapsed": 1}
    assert len(await scheduler_events(db)) == 1
    assert await open_alerts(admin) == [("Authorization Expired", "Major", PRODUCT)]

    # The product renews: the alert clears at the next run and its usage counts again.
    await agent.renew_authorization()
    report = await jobs.expire_authorizations(services, at(now()))
    assert report is not None
    assert report.counts == {"expired": 0, "lapsed": 0}
    await jobs.pool_alerts(services, at(now()))
    assert await open_alerts(admin) == [("Insufficient Licenses", "Major", "Voice")]
    assert await in_use(admin) == 7
    # And when the renewed authorization lapses in turn, that is a new lapse.
    report = await jobs.expire_authorizations(services, at(now() + 91 * DAY))
    assert report is not None
    assert report.counts == {"expired": 1, "lapsed": 1}
    assert len(await scheduler_events(db)) == 2


async def test_a_lapse_is_recorded_with_its_event_or_not_at_all(
    admin: Api, server: TestServer, tmp_path: Path, services: Services, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, [{"entitlementTag": ENHANCED, "quantity": 5}])
    await registered_agent(admin, server, tmp_path, "FCH0001")
    await db.execute(
        "ALTER TABLE events ADD CONSTRAINT refuse_expiry "
        "CHECK (action <> 'product.authorization_expired') NOT VALID"
    )
    later = now() + 91 * DAY
    with pytest.raises(asyncpg.CheckViolationError):
        await jobs.expire_authorizations(services, at(later))
    assert (
        await db.fetchval(
            "SELECT count(*) FROM product_instances WHERE authorization_lapse_recorded IS NOT NULL"
        )
        == 0
    )
    assert await open_alerts(admin) == []
    await db.execute("ALTER TABLE events DROP CONSTRAINT refuse_expiry")
    report = await jobs.expire_authorizations(services, at(later))
    assert report is not None
    assert report.counts["expired"] == 1


# --- registrations -------------------------------------------------------------------------


async def test_an_expired_certificate_ends_the_registration(
    admin: Api, server: TestServer, tmp_path: Path, services: Services, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, [{"entitlementTag": ENHANCED, "quantity": 5}])
    agent = await registered_agent(admin, server, tmp_path, "FCH0001")
    await agent.report_usage({ENHANCED: 3})
    product = agent.state.product_instance_id
    report = await jobs.expire_registrations(services, at(now()))
    assert report is not None
    assert report.counts == {"expired": 0, "export_keys_released": 0}

    report = await jobs.expire_registrations(services, at(now() + 366 * DAY))
    assert report is not None
    assert report.counts == {"expired": 1, "export_keys_released": 0}
    row = await db.fetchrow(
        "SELECT status, ended_at, certificate_expires_at FROM product_instances"
    )
    assert row is not None
    assert row["status"] == "registration_expired"
    assert row["ended_at"] == row["certificate_expires_at"]
    assert await scheduler_events(db) == [("product.registration_expired", f"Voice/{product}")]
    assert await in_use(admin) == 0
    # Its next request is refused with a problem that says what to do.
    with pytest.raises(RequestRefused) as refused:
        await agent.report_usage({ENHANCED: 4})
    assert refused.value.status == 403
    assert refused.value.problem["type"].endswith(":registration-expired")
    assert "register it again with a token" in refused.value.problem["detail"]
    # Nothing more to do on the next run.
    report = await jobs.expire_registrations(services, at(now() + 367 * DAY))
    assert report is not None
    assert report.counts == {"expired": 0, "export_keys_released": 0}
    # Registering again with a token makes a new registration that counts.
    again = await registered_agent(admin, server, tmp_path, "FCH0001")
    await again.report_usage({ENHANCED: 2})
    assert again.state.product_instance_id != product
    assert await in_use(admin) == 2


async def test_a_certificate_past_expiry_counts_for_nothing_before_the_job_runs(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, [{"entitlementTag": ENHANCED, "quantity": 5}])
    agent = await registered_agent(admin, server, tmp_path, "FCH0001")
    await agent.report_usage({ENHANCED: 3})
    assert await in_use(admin) == 3
    # The certificate runs out (time passes for this product only).
    await db.execute(
        "UPDATE product_instances SET certificate_expires_at = now() - interval '1 minute'"
    )
    assert await in_use(admin) == 0
    with pytest.raises(RequestRefused) as refused:
        await agent.renew_authorization()
    assert refused.value.status == 403
    assert refused.value.problem["type"].endswith(":registration-expired")
    assert await db.fetchval("SELECT status FROM product_instances") == "registered"


async def test_certificate_expiring_alert_until_the_registration_is_renewed(
    admin: Api, server: TestServer, tmp_path: Path, services: Services, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, [])
    agent = await registered_agent(admin, server, tmp_path, "FCH0001")
    report = await jobs.certificate_alerts(services, at(now()))
    assert report is not None
    assert report.counts == {"expiring": 0}
    assert await open_alerts(admin) == []

    # 340 days on, the certificate (365 days) has less than 30 days left.
    expires = await db.fetchval("SELECT certificate_expires_at FROM product_instances")
    report = await jobs.certificate_alerts(services, at(now() + 340 * DAY))
    assert report is not None
    assert report.counts == {"expiring": 1}
    assert await open_alerts(admin) == [("Certificate Expiring", "Minor", PRODUCT)]
    [message] = await alert_messages(admin, "Certificate Expiring")
    assert expires.date().isoformat() in message
    # Once a day for the rest of the period: still the same one alert.
    for day in range(341, 365):
        await jobs.certificate_alerts(services, at(now() + day * DAY))
    assert await open_alerts(admin) == [("Certificate Expiring", "Minor", PRODUCT)]

    # The product renews its registration: a new certificate, and the alert clears.
    await db.execute(
        "UPDATE product_instances SET certificate_expires_at = now() + interval '10 days'"
    )
    report = await jobs.certificate_alerts(services, at(now()))
    assert report is not None
    assert report.counts == {"expiring": 1}
    await agent.renew_registration()
    report = await jobs.certificate_alerts(services, at(now()))
    assert report is not None
    assert report.counts == {"expiring": 0}
    assert await open_alerts(admin) == []
    status, body = await admin.post(ACCOUNT + "/alerts", {"includeCleared": True})
    assert status == 200, body
    assert all(a["clearedAt"] for a in body["alerts"])


# --- pools ----------------------------------------------------------------------------------


async def test_pool_alerts_follow_term_lines_and_usage_as_time_passes(
    admin: Api, server: TestServer, tmp_path: Path, services: Services
) -> None:
    start = now()
    end = (start + 40 * DAY).date()
    await setup_voice(
        admin,
        [
            {
                "entitlementTag": ENHANCED,
                "quantity": 5,
                "licenseType": "TERM",
                "endDate": end.isoformat(),
            },
            {"entitlementTag": ENHANCED, "quantity": 2},
        ],
    )
    agent = await registered_agent(admin, server, tmp_path, "FCH0001")
    await agent.report_usage({ENHANCED: 6})
    report = await jobs.pool_alerts(services, at(start))
    assert report is not None
    assert report.counts == {"virtual_accounts": 2}  # Voice and the account's default
    assert await open_alerts(admin) == []

    await jobs.pool_alerts(services, at(start + 15 * DAY))
    assert await open_alerts(admin) == [("Licenses Expiring", "Minor", "Voice")]
    # The TERM line ended: 2 left for 6 in use.
    await jobs.pool_alerts(services, at(start + 45 * DAY))
    assert await open_alerts(admin) == [
        ("Insufficient Licenses", "Major", "Voice"),
        ("Licenses Expired", "Minor", "Voice"),
    ]
    [shortage] = await alert_messages(admin, "Insufficient Licenses")
    assert "4 more in use or reserved than available" in shortage
    # The product's authorization lapsed too: its usage no longer counts.
    await jobs.pool_alerts(services, at(start + 100 * DAY))
    assert await open_alerts(admin) == [("Licenses Expired", "Minor", "Voice")]


async def test_usage_of_a_tag_with_no_licenses_is_a_shortage(
    admin: Api, server: TestServer, tmp_path: Path, services: Services
) -> None:
    await setup_voice(admin, [{"entitlementTag": ENHANCED, "quantity": 5}])
    agent = await registered_agent(admin, server, tmp_path, "FCH0001")
    await agent.report_usage({CUWL: 1})  # the highest tier: nothing to borrow from
    await jobs.pool_alerts(services, at(now()))
    [message] = await alert_messages(admin, "Insufficient Licenses")
    assert "1 more in use" in message
    await agent.report_usage({})
    await jobs.pool_alerts(services, at(now()))
    assert await open_alerts(admin) == []


# --- nonces ---------------------------------------------------------------------------------


async def test_used_nonces_are_forgotten_after_twice_their_lifetime(
    services: Services, db: asyncpg.Connection
) -> None:
    await db.execute(
        "INSERT INTO used_nonces (nonce, used_at) VALUES ('old', now() - interval '31 minutes'), "
        "('recent', now() - interval '29 minutes'), ('new', now())"
    )
    report = await jobs.forget_nonces(services, at(now()))
    assert report is not None
    assert report.counts == {"forgotten": 1}
    assert {r["nonce"] for r in await db.fetch("SELECT nonce FROM used_nonces")} == {
        "recent",
        "new",
    }
    report = await jobs.forget_nonces(services, at(now() + dt.timedelta(hours=1)))
    assert report is not None
    assert report.counts == {"forgotten": 2}


# --- usage history ---------------------------------------------------------------------------


async def test_usage_reports_older_than_the_history_keeps_are_forgotten(
    admin: Api, server: TestServer, tmp_path: Path, services: Services, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, [{"entitlementTag": ENHANCED, "quantity": 5}])
    agent = await registered_agent(admin, server, tmp_path, "FCH0001")
    for count in (1, 2, 3):
        await agent.report_usage({ENHANCED: count})
    # The first two reports were made long ago (time passes for them only).
    await db.execute(
        "UPDATE usage_reports SET reported_at = reported_at - interval '401 days' "
        "WHERE id IN (SELECT id FROM usage_reports ORDER BY id LIMIT 2)"
    )
    report = await jobs.forget_usage_history(services, at(now()))
    assert report is not None
    assert report.counts == {"forgotten": 2}
    history = await db.fetch("SELECT usage FROM usage_reports")
    assert [json.loads(row["usage"]) for row in history] == [{ENHANCED: 3}]
    # The current usage is not history: it stays, and still counts.
    assert await in_use(admin) == 3
    # 400 days on, the last report goes too; the current usage still stays.
    report = await jobs.forget_usage_history(services, at(now() + 401 * DAY))
    assert report is not None
    assert report.counts == {"forgotten": 1}
    assert await db.fetchval("SELECT count(*) FROM product_usage") == 1


# --- one node at a time ----------------------------------------------------------------------


async def test_a_job_whose_lock_is_taken_skips_quietly(
    admin: Api, server: TestServer, tmp_path: Path, services: Services, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, [{"entitlementTag": ENHANCED, "quantity": 5}])
    await registered_agent(admin, server, tmp_path, "FCH0001")
    later = now() + 91 * DAY
    async with db.transaction():
        # Another node is running the job.
        await db.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEYS["expire-authorizations"])
        with capture_logs() as logs:
            assert await jobs.expire_authorizations(services, at(later)) is None
        # Other jobs have locks of their own.
        assert await jobs.certificate_alerts(services, at(later)) is not None
    skipped = [entry for entry in logs if entry["event"] == "job.skipped"]
    assert [entry["job"] for entry in skipped] == ["expire-authorizations"]
    assert await scheduler_events(db) == []
    # The lock is free again: the next run does the work.
    report = await jobs.expire_authorizations(services, at(later))
    assert report is not None
    assert report.counts["expired"] == 1


# How far on each job finds work for three products using 2 each of a pool of 1.
WORK_AT = {
    "expire-registrations": 400 * DAY,
    "expire-authorizations": 100 * DAY,
    "certificate-alerts": 340 * DAY,
    "pool-alerts": DAY,
    "forget-nonces": DAY,
    "forget-usage-history": 401 * DAY,
    "forget-rate-limits": DAY,
}


# The sync jobs need an upstream: tests/sync/ runs them from two nodes.
@pytest.mark.parametrize("job", [j for j in jobs.JOBS if not j.startswith("sync")])
async def test_concurrent_runs_of_a_job_from_two_nodes_do_the_work_once(
    admin: Api,
    server: TestServer,
    tmp_path: Path,
    runtime: Runtime,
    db: asyncpg.Connection,
    job: str,
) -> None:
    await setup_voice(admin, [{"entitlementTag": ENHANCED, "quantity": 1}])
    for n in range(3):
        agent = await registered_agent(admin, server, tmp_path, f"FCH000{n}")
        await agent.report_usage({ENHANCED: 2})
    await db.execute(
        "INSERT INTO used_nonces (nonce, used_at) VALUES ('old', now() - interval '1 day')"
    )
    used = await db.fetchval("SELECT count(*) FROM used_nonces")
    counters = await db.fetchval("SELECT count(*) FROM rate_limit_counters")
    later = now() + WORK_AT[job]
    run = jobs.JOBS[job]
    # Two daemons (each its own pool), each firing the job twice at the same moment.
    async with open_services(runtime) as node_a, open_services(runtime) as node_b:
        reports = await asyncio.gather(
            *(run(node, at(later)) for node in (node_a, node_b, node_a, node_b))
        )
    ran = [r for r in reports if r is not None]
    assert ran, reports
    # Whichever run came second found the work done (or the lock taken).
    counts = [r.counts for r in ran]
    if job == "expire-registrations":
        assert sum(c["expired"] for c in counts) == 3, counts
        assert (
            await db.fetchval(
                "SELECT count(*) FROM events WHERE action = 'product.registration_expired'"
            )
            == 3
        )
    elif job == "expire-authorizations":
        assert sum(c["expired"] for c in counts) == 3, counts
        assert (
            await db.fetchval(
                "SELECT count(*) FROM events WHERE action = 'product.authorization_expired'"
            )
            == 3
        )
        assert (
            await db.fetchval(
                "SELECT count(*) FROM alerts WHERE message_type = 'Authorization Expired'"
            )
            == 3
        )
    elif job == "certificate-alerts":
        assert (
            await db.fetchval(
                "SELECT count(*) FROM alerts WHERE message_type = 'Certificate Expiring'"
            )
            == 3
        )
    elif job == "pool-alerts":
        assert (
            await db.fetchval(
                "SELECT count(*) FROM alerts WHERE message_type = 'Insufficient Licenses'"
            )
            == 1
        )
    elif job == "forget-usage-history":
        assert sum(c["forgotten"] for c in counts) == 3, counts
        assert await db.fetchval("SELECT count(*) FROM usage_reports") == 0
    elif job == "forget-rate-limits":
        # The registrations' counters (the token's, the virtual account's, the address's).
        assert sum(c["forgotten"] for c in counts) == counters > 0, counts
        assert await db.fetchval("SELECT count(*) FROM rate_limit_counters") == 0
    else:
        assert sum(c["forgotten"] for c in counts) == used, counts
        assert await db.fetchval("SELECT count(*) FROM used_nonces") == 0


# --- the scheduler ---------------------------------------------------------------------------


async def test_the_scheduler_starts_and_stops_with_the_app(
    runtime: Runtime, db: asyncpg.Connection
) -> None:
    await db.execute(
        "INSERT INTO used_nonces (nonce, used_at) VALUES ('old', now() - interval '1 day')"
    )
    app = create_app(runtime, scheduler=True)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        scheduler = app[SCHEDULER]
        assert scheduler.running
        assert sorted(scheduler.job_names()) == sorted(jobs.JOBS)
        # Every job runs once at start: the old nonce goes within a short, bounded wait.
        for _ in range(200):
            if not await db.fetchval("SELECT count(*) FROM used_nonces"):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the jobs did not run within 10 seconds of the start")
        async with client.get("/healthz") as response:
            assert response.status == 200
    finally:
        await client.close()
    assert not scheduler.running


async def test_an_app_without_the_scheduler_runs_no_jobs(runtime: Runtime) -> None:
    app = create_app(runtime)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        assert SCHEDULER not in app
    finally:
        await client.close()


async def test_stopping_lets_a_running_job_finish_and_a_failing_job_is_logged(
    services: Services,
) -> None:
    started, release, failed = asyncio.Event(), asyncio.Event(), asyncio.Event()
    finished: list[dt.datetime] = []

    async def slow(services: Services, clock: Callable[[], dt.datetime]) -> None:
        started.set()
        await release.wait()
        finished.append(clock())

    async def boom(services: Services, clock: Callable[[], dt.datetime]) -> None:
        failed.set()
        raise RuntimeError("boom")

    scheduler = JobScheduler(services, dt.timedelta(hours=1), jobs={"slow": slow, "boom": boom})
    with capture_logs() as logs:
        scheduler.start()
        async with asyncio.timeout(5):
            await started.wait()
            await failed.wait()
        stopping = asyncio.create_task(scheduler.stop())
        await asyncio.sleep(0.05)
        assert not stopping.done()  # waiting for the running job
        release.set()
        async with asyncio.timeout(5):
            await stopping
    assert len(finished) == 1
    assert not scheduler.running
    assert [(e["event"], e.get("job")) for e in logs if e["log_level"] != "info"] == [
        ("job.failed", "boom")
    ]


async def test_a_job_still_running_after_the_stop_timeout_is_cancelled(
    services: Services,
) -> None:
    started = asyncio.Event()
    cancelled: list[bool] = []

    async def hang(services: Services, clock: Callable[[], dt.datetime]) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    scheduler = JobScheduler(services, dt.timedelta(hours=1), stop_timeout=0.1, jobs={"hang": hang})
    with capture_logs() as logs:
        scheduler.start()
        async with asyncio.timeout(5):
            await started.wait()
            await scheduler.stop()
    assert cancelled == [True]
    assert not scheduler.running
    assert ("job.cancelled", "hang") in [(e["event"], e.get("job")) for e in logs]
