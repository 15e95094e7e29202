"""The scheduled jobs on demand: the admin API's and the CLI's job list and job run, and the
runs every node records (bounded, a failure with its reason)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from satellite.api.context import Services
from satellite.domain.clock import utc_now
from satellite.scheduler import jobs
from satellite.services.jobs import RUNS_KEPT, JobService
from satellite.services.maintenance import LOCK_KEYS, JobReport
from tests.conftest import Api, new_client
from tests.helpers.cli import Cli, query, toml_config

MINUTE = dt.timedelta(minutes=1)
OLD_NONCE = "INSERT INTO used_nonces (nonce, used_at) VALUES ('old', now() - interval '1 day')"


async def runs(db: asyncpg.Connection, job: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT node, outcome, counts, reason FROM job_runs WHERE job = $1 ORDER BY id", job
    )


async def test_a_system_admin_lists_the_jobs_and_runs_one_now(
    admin: Api, db: asyncpg.Connection
) -> None:
    status, body = await admin.get("/api/v1/jobs")
    assert status == 200, body
    assert [j["name"] for j in body["jobs"]] == list(jobs.JOBS)
    # No job has run; this app runs no scheduler, so the next run is the interval's.
    assert {(j["lastRun"], j["nextRun"], j["nextRunFrom"]) for j in body["jobs"]} == {
        (None, None, "interval")
    }
    await db.execute(OLD_NONCE)

    status, run = await admin.post("/api/v1/jobs/forget-nonces/run")
    assert status == 200, run
    assert (run["job"], run["outcome"], run["counts"], run["reason"]) == (
        "forget-nonces",
        "done",
        {"forgotten": 1},
        None,
    )
    assert run["node"] == body["node"]
    assert run["durationSeconds"] >= 0
    assert await db.fetchval("SELECT count(*) FROM used_nonces") == 0

    status, body = await admin.get("/api/v1/jobs")
    listed = {j["name"]: j for j in body["jobs"]}
    assert listed["forget-nonces"]["lastRun"] == run
    # The default interval of the jobs: an hour after the run started.
    assert listed["forget-nonces"]["nextRun"] is not None
    assert listed["forget-nonces"]["nextRun"] > run["startedAt"]
    assert listed["pool-alerts"]["lastRun"] is None


async def test_only_system_admins_see_or_run_jobs(admin: Api, db: asyncpg.Connection) -> None:
    assert (await admin.post("/api/v1/accounts", {"name": "Acme"}))[0] == 200
    await db.execute(OLD_NONCE)
    for role in ("account-admin", "account-viewer"):
        other = await new_client(admin, role, ["Acme"])
        status, body = await other.get("/api/v1/jobs")
        assert status == 403, body
        status, body = await other.post("/api/v1/jobs/forget-nonces/run")
        assert status == 403, body
        assert "system admin" in body["detail"]
    assert await db.fetchval("SELECT count(*) FROM used_nonces") == 1
    assert await db.fetchval("SELECT count(*) FROM job_runs") == 0


async def test_an_unknown_job_is_refused_naming_the_field(
    admin: Api, db: asyncpg.Connection
) -> None:
    status, body = await admin.post("/api/v1/jobs/no-such-job/run")
    assert status == 422, body
    assert body["field"] == "name"
    assert "no-such-job" in body["detail"]
    assert "forget-nonces" in body["detail"]  # the jobs there are
    status, body = await admin.post("/api/v1/jobs/" + "x" * 101 + "/run")
    assert status == 422, body
    assert body["field"] == "name"
    assert await db.fetchval("SELECT count(*) FROM job_runs") == 0


async def test_a_run_while_another_node_holds_the_lock_is_recorded_skipped(
    admin: Api, db: asyncpg.Connection
) -> None:
    await db.execute(OLD_NONCE)
    async with db.transaction():
        # Another node is running the job.
        await db.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEYS["forget-nonces"])
        status, run = await admin.post("/api/v1/jobs/forget-nonces/run")
    assert status == 200, run
    assert (run["outcome"], run["counts"]) == ("skipped", {})
    assert run["reason"] == "another node holds the job's lock"
    assert await db.fetchval("SELECT count(*) FROM used_nonces") == 1
    assert [(r["node"], r["outcome"]) for r in await runs(db, "forget-nonces")] == [
        (run["node"], "skipped")
    ]


async def test_a_failing_job_is_recorded_failed_with_its_reason(
    admin: Api, db: asyncpg.Connection
) -> None:
    await db.execute("DROP TABLE used_nonces")  # the job's table is gone: its run fails
    status, run = await admin.post("/api/v1/jobs/forget-nonces/run")
    assert status == 200, run
    assert run["outcome"] == "failed"
    assert run["reason"] == 'UndefinedTableError: relation "used_nonces" does not exist'
    assert "Traceback" not in str(run)
    recorded = await runs(db, "forget-nonces")
    assert [(r["outcome"], r["reason"]) for r in recorded] == [("failed", run["reason"])]
    # The other jobs still run.
    status, run = await admin.post("/api/v1/jobs/forget-sessions/run")
    assert (status, run["outcome"]) == (200, "done")


async def test_the_runs_kept_are_bounded_per_job(
    services: Services, db: asyncpg.Connection
) -> None:
    for _ in range(RUNS_KEPT + 3):
        await services.jobs.run_now("forget-nonces")
    await services.jobs.run_now("forget-sessions")
    assert await db.fetchval("SELECT count(*) FROM job_runs WHERE job = 'forget-nonces'") == (
        RUNS_KEPT
    )
    # The newest are kept; another job's runs are not forgotten with them.
    assert await db.fetchval("SELECT min(id) FROM job_runs WHERE job = 'forget-nonces'") == 4
    assert await db.fetchval("SELECT count(*) FROM job_runs WHERE job = 'forget-sessions'") == 1


def test_job_commands(tmp_path: Path, db_dsn: str, state_dir: Path) -> None:
    cli = Cli(toml_config(tmp_path / "satellite.toml", state_dir, db_dsn), tmp_path)
    never = cli("job", "list").ok().out.splitlines()
    assert never[0].split() == ["JOB", "LAST", "RUN", "SECONDS", "NODE", "OUTCOME", "NEXT", "RUN"]
    assert len(never) == 1 + len(jobs.JOBS)
    assert all("never run" in line for line in never[1:])

    ran = cli("job", "run", "forget-nonces").ok().out
    assert "outcome  done" in ran
    assert "counts   forgotten=0" in ran
    listed = cli("job", "list", "--json").ok().json()
    last = {j["name"]: j for j in listed["jobs"]}["forget-nonces"]
    assert last["lastRun"]["outcome"] == "done"
    assert last["nextRunFrom"] == "interval"  # the host CLI runs no scheduler
    assert last["nextRun"] > last["lastRun"]["startedAt"]

    unknown = cli("job", "run", "no-such-job")
    assert unknown.code != 0
    assert "no-such-job" in unknown.one_error_line()
    assert unknown.out == ""


def test_a_failing_job_run_is_one_line_with_a_non_zero_exit(
    tmp_path: Path, db_dsn: str, state_dir: Path
) -> None:
    cli = Cli(toml_config(tmp_path / "satellite.toml", state_dir, db_dsn), tmp_path)
    cli("job", "list").ok()  # (migrated and ready)
    query(db_dsn, "DROP TABLE used_nonces")
    failed = cli("job", "run", "forget-nonces")
    assert failed.code != 0
    assert failed.one_error_line() == (
        'error: job forget-nonces failed: UndefinedTableError: relation "used_nonces" does '
        "not exist"
    )


async def test_a_scheduled_run_is_skipped_only_when_another_node_did_the_job_lately(
    services: Services, db: asyncpg.Connection
) -> None:
    hour = dt.timedelta(hours=1)

    def work() -> Awaitable[JobReport | None]:  # the job, as the scheduler calls it
        return jobs.forget_nonces(services, utc_now)

    async def did(node: str, ago: dt.timedelta) -> None:  # that node's claim, ``ago``
        await db.execute(
            "INSERT INTO job_claims (job, node, claimed_at) "
            "VALUES ('forget-nonces', $1, now() - $2::interval) ON CONFLICT (job) DO UPDATE "
            "SET node = EXCLUDED.node, claimed_at = EXCLUDED.claimed_at",
            node,
            ago,
        )

    # This node's own run a moment ago: its schedule says when it runs again, not the table.
    await did(services.jobs.node, dt.timedelta(minutes=1))
    assert (await services.jobs.run("forget-nonces", work, interval=hour)).outcome == "done"
    # Another node did it half an hour ago: this run is skipped, saying where and when.
    await did("other", 30 * MINUTE)
    skipped = await services.jobs.run("forget-nonces", work, interval=hour)
    assert skipped.outcome == "skipped"
    assert skipped.reason is not None
    assert skipped.reason.startswith("done on other at ")
    # ... 57 minutes ago (past 0.9 of the interval): this node, just ahead, takes over.
    await did("other", 57 * MINUTE)
    assert (await services.jobs.run("forget-nonces", work, interval=hour)).outcome == "done"
    # A run on demand always runs.
    await did("other", dt.timedelta(0))
    assert (await services.jobs.run_now("forget-nonces")).outcome == "done"


async def test_two_nodes_whose_runs_fall_at_the_same_moment_do_the_job_once(
    services: Services,
) -> None:
    # Each node looks, then runs: a look at the runs recorded could not see the other's run
    # still in progress, and both did the job.
    done: list[str] = []

    def job(node: str) -> Callable[[], Awaitable[JobReport | None]]:
        async def work() -> JobReport | None:
            done.append(node)
            await asyncio.sleep(0.2)  # (still running when the other node looks)
            return JobReport("forget-nonces", {})

        return work

    a, b = JobService(services.db, "node-a"), JobService(services.db, "node-b")
    hour = dt.timedelta(hours=1)
    runs = await asyncio.gather(
        a.run("forget-nonces", job("node-a"), interval=hour),
        b.run("forget-nonces", job("node-b"), interval=hour),
    )
    assert len(done) == 1, done
    assert sorted(run.outcome for run in runs) == ["done", "skipped"], runs


async def test_a_failed_run_lets_another_node_do_the_job_before_its_next_run(
    services: Services,
) -> None:
    async def boom() -> JobReport | None:
        raise RuntimeError("disk full")

    async def fine() -> JobReport | None:
        return JobReport("forget-nonces", {})

    a, b = JobService(services.db, "node-a"), JobService(services.db, "node-b")
    hour = dt.timedelta(hours=1)
    assert (await a.run("forget-nonces", boom, interval=hour)).outcome == "failed"
    assert (await b.run("forget-nonces", fine, interval=hour)).outcome == "done"
    # ... and a run done on demand counts as done for the other node's schedule.
    assert (await a.run("forget-nonces", fine)).outcome == "done"
    skipped = await b.run("forget-nonces", fine, interval=hour)
    assert skipped.outcome == "skipped"
    assert skipped.reason is not None
    assert skipped.reason.startswith("done on node-a at ")
