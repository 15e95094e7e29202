"""Scheduled jobs each under its advisory lock, one node at a time, and the scheduler's life
with the app."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from satellite.api.context import Services
from satellite.scheduler import JobScheduler, jobs
from satellite.services.maintenance import LOCK_KEYS
from satellite.wiring import SCHEDULER, Runtime, create_app, open_services
from tests.conftest import ENHANCED, Api, Credentials, login
from tests.helpers.jobs import (
    DAY,
    at,
    now,
    registered_agent,
    scheduler_events,
    setup_voice,
)
from tests.helpers.metrics import scrape, with_metrics

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
    "forget-sessions": DAY,
    "usage-rollup": DAY,
}


# The sync jobs need an upstream: tests/sync/test_connected.py runs them from two nodes.
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
    # A console session of the admin client's principal (as a sign-in leaves one).
    await db.execute(
        "INSERT INTO console_sessions (session_digest, principal_id, csrf_secret) "
        "SELECT '\\x01'::bytea, min(id), 'csrf' FROM principals"
    )
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
    elif job == "usage-rollup":
        # One sample (the four runs are at one moment): 6 of Enhanced in use in Voice.
        assert sum(c["rows"] for c in counts) >= 1, counts
        rows = await db.fetch("SELECT tag, peak_in_use, samples FROM usage_daily")
        assert [tuple(r) for r in rows] == [(ENHANCED, 6, 1)]
    elif job == "forget-rate-limits":
        # The registrations' counters (the token's, the virtual account's, the address's).
        assert sum(c["forgotten"] for c in counts) == counters > 0, counts
        assert await db.fetchval("SELECT count(*) FROM rate_limit_counters") == 0
    elif job == "forget-sessions":
        assert sum(c["forgotten"] for c in counts) == 1, counts
        assert await db.fetchval("SELECT count(*) FROM console_sessions") == 0
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


# --- two daemons on one database -------------------------------------------------------------


def named(runtime: Runtime, node: str) -> Runtime:
    return dataclasses.replace(
        runtime, settings=msgspec.structs.replace(runtime.settings, node_name=node)
    )


async def wait_for_runs(db: asyncpg.Connection, node: str, count: int) -> None:
    """Until ``node`` has recorded ``count`` runs (a bounded wait)."""
    for _ in range(400):
        if await db.fetchval("SELECT count(*) FROM job_runs WHERE node = $1", node) >= count:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"{node} did not record {count} job runs within 20 seconds")


async def test_two_daemons_on_one_database_do_each_job_once_and_record_the_skips(
    runtime: Runtime, db: asyncpg.Connection, system_admin: Credentials, tmp_path: Path
) -> None:
    await db.execute(
        "INSERT INTO used_nonces (nonce, used_at) VALUES ('old', now() - interval '1 day')"
    )
    runtime = dataclasses.replace(runtime, settings=with_metrics(runtime.settings, tmp_path))
    first = TestClient(
        TestServer(create_app(named(runtime, "node-a"), scheduler=True), host="127.0.0.1")
    )
    second = TestClient(
        TestServer(create_app(named(runtime, "node-b"), scheduler=True), host="127.0.0.1")
    )
    with capture_logs() as logs:
        await first.start_server()
        try:
            await wait_for_runs(db, "node-a", len(jobs.JOBS))
            # A second daemon starts: every job runs at its start, as at the first's.
            await second.start_server()
            try:
                await wait_for_runs(db, "node-b", len(jobs.JOBS))
                admin = await login(Api(second), system_admin)
                status, listed = await admin.get("/api/v1/jobs")
                second_metrics = await scrape(Api(second))
            finally:
                await second.close()
            first_metrics = await scrape(Api(first))
        finally:
            await first.close()
    rows = await db.fetch("SELECT job, node, outcome, counts, reason FROM job_runs ORDER BY id")
    by_job: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        by_job.setdefault(row["job"], []).append((row["node"], row["outcome"]))
    # Each job was done once, by the first node; the second skipped each, and says why.
    assert by_job == {job: [("node-a", "done"), ("node-b", "skipped")] for job in jobs.JOBS}
    skips = [row for row in rows if row["node"] == "node-b"]
    assert all(row["reason"].startswith("done on node-a at ") for row in skips), skips
    assert await db.fetchval("SELECT count(*) FROM used_nonces") == 0
    # In the second node's log too.
    skipped = [e["job"] for e in logs if e["event"] == "job.skipped" and e["node"] == "node-b"]
    assert sorted(skipped) == sorted(jobs.JOBS)
    # And in each node's metrics: the first did every job, the second skipped every one.
    runs = "satellite_job_runs_total"
    for job in jobs.JOBS:
        assert first_metrics.value(runs, job=job, outcome="done") == 1, job
        assert first_metrics.value(runs, job=job, outcome="skipped") is None, job
        assert second_metrics.value(runs, job=job, outcome="skipped") == 1, job
        assert second_metrics.value(runs, job=job, outcome="done") is None, job
        timed = second_metrics.value("satellite_job_run_duration_seconds_count", job=job)
        assert timed is None, job  # (a skip is not timed)
    # The second daemon answers with its own schedule (the next runs an interval on).
    assert status == 200, listed
    assert listed["node"] == "node-b"
    for job in listed["jobs"]:
        assert job["nextRunFrom"] == "scheduler"
        assert job["lastRun"]["node"] == "node-b"
        assert job["nextRun"] > job["lastRun"]["startedAt"]
