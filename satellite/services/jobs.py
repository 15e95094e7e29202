"""The scheduled jobs' runs: each run timed, its outcome recorded where every node reads it
(table ``job_runs``), and a job run now on demand (``satellite job run``, the admin API).

A run's outcome is ``done`` (with its report's counts), ``skipped`` (another node held the
job's advisory lock, so that node did the work) or ``failed`` (with a one-line reason; the
traceback goes to the log only). A node is named by the ``node_name`` setting, else
``hostname:pid``.

The table of jobs is given once, by the wiring (the jobs themselves call services of every
layer, sync included); the daemon's scheduler tells this service when each job runs next
while it runs, so that the daemon answers with its own schedule; without a scheduler (the
host CLI) the next run is computed from the job's interval and its last run.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import structlog

from satellite.domain.clock import utc_now
from satellite.errors import DatabaseUnavailable, InvalidInput, SatelliteError
from satellite.services.maintenance import JobReport
from satellite.storage import job_runs
from satellite.storage.db import Database
from satellite.storage.job_runs import JobRunRow

log = structlog.get_logger("satellite.scheduler")

RUNS_KEPT = 50  # runs kept per job (the oldest beyond are forgotten as a run is recorded)
REASON_CHARS = 500
SKIPPED = "another node holds the job's lock"
# A scheduled run is skipped when another node did the job this much of an interval ago
# or less: each node runs on its own phase, and without this every node would do every job
# once per interval. (Not the whole interval: a node whose phase is just ahead of the one
# that ran takes over, rather than the two skipping each other's runs by turns.)
RAN_ELSEWHERE = 0.9
Work = Callable[[], Awaitable[JobReport | None]]
NextRuns = Callable[[], Mapping[str, dt.datetime | None]]
NextRunFrom = Literal["scheduler", "interval"]


def node_name(configured: str | None) -> str:
    return configured or f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class JobStatus:
    job: str
    last: JobRunRow | None
    next_run: dt.datetime | None
    next_run_from: NextRunFrom


def _reason(exc: Exception) -> str:
    text = exc.detail if isinstance(exc, SatelliteError) else str(exc)
    line = (text.strip().splitlines() or [""])[0]
    reason = f"{type(exc).__name__}: {line}" if line else type(exc).__name__
    return reason[:REASON_CHARS]


class JobService:
    def __init__(self, db: Database, node: str, keep: int = RUNS_KEPT) -> None:
        self._db = db
        self.node = node
        self._keep = keep
        self._jobs: dict[str, Work] = {}
        self._interval_of: Callable[[str], dt.timedelta] | None = None
        self._next_runs: NextRuns | None = None
        self._on_run: Callable[[JobRunRow], None] | None = None

    def define(self, jobs: Mapping[str, Work], interval_of: Callable[[str], dt.timedelta]) -> None:
        """The jobs there are (each bound to the services and the server's clock), and how
        often each runs as the config says now (a reload changes it); given by the wiring
        once the services are built."""
        self._jobs = dict(jobs)
        self._interval_of = interval_of

    def follow_schedule(self, next_runs: NextRuns | None) -> None:
        """While the daemon's scheduler runs, where its next runs are read (None: stopped)."""
        self._next_runs = next_runs

    def observe(self, on_run: Callable[[JobRunRow], None] | None) -> None:
        """Tell ``on_run`` of every run this node records (the metrics count them)."""
        self._on_run = on_run

    @property
    def names(self) -> list[str]:
        return list(self._jobs)

    async def run(
        self, name: str, work: Work, *, interval: dt.timedelta | None = None
    ) -> JobRunRow:
        """Run ``work`` as a run of job ``name`` and record how it went.

        A scheduled run gives the job's ``interval``: it claims the run first, and if
        another node claimed one (or ran the job on demand) less than ``RAN_ELSEWHERE`` of
        it ago, this run is skipped (recorded, and logged as ``job.skipped``); a failed run
        gives its claim back. A run on demand (no interval) always runs.

        A failure is logged with its traceback: as an error for a scheduled run (nobody
        else hears of it), at info for a run on demand (its caller is answered with the
        reason, and the host CLI's stderr stays one line).

        A database that cannot be reached is not recorded (it cannot be): it is raised, for
        the caller to report (the scheduler tries again at the next run, the API says 503).
        """
        started = utc_now()
        if interval is not None:
            elsewhere = await self._claim(name, started, started - interval * RAN_ELSEWHERE)
            if elsewhere is not None:
                log.info("job.skipped", job=name, node=self.node, reason=elsewhere)
                return await self._record(
                    JobRunRow(name, self.node, started, utc_now(), "skipped", {}, elsewhere)
                )
        on_demand = interval is None
        outcome: job_runs.Outcome
        counts: dict[str, int] = {}
        reason: str | None = None
        try:
            report = await work()
        except DatabaseUnavailable:
            # Not recorded (it cannot be), but counted: the metrics show jobs failing.
            if self._on_run is not None:
                self._on_run(
                    JobRunRow(name, self.node, started, utc_now(), "failed", {}, "database")
                )
            raise
        except Exception as exc:
            outcome, reason = "failed", _reason(exc)
            level = log.info if on_demand else log.error
            level("job.failed", job=name, node=self.node, reason=reason, exc_info=True)
        else:
            if report is None:
                outcome, reason = "skipped", SKIPPED
            else:
                outcome, counts = "done", dict(report.counts)
        return await self._record(
            JobRunRow(name, self.node, started, utc_now(), outcome, counts, reason),
            scheduled=not on_demand,
        )

    async def _claim(self, name: str, at: dt.datetime, since: dt.datetime) -> str | None:
        """Claim the run of job ``name`` at ``at``; if another node's claim since ``since``
        stands in the way, say whose and when."""
        async with self._db.transaction() as conn:
            other = await job_runs.claim_run(conn, name, self.node, at, since)
        return None if other is None else f"done on {other.node} at {other.claimed_at.isoformat()}"

    async def _record(self, run: JobRunRow, *, scheduled: bool = True) -> JobRunRow:
        """Record ``run``; with it, a run done on demand counts as a claim for the other
        nodes' schedules, and a scheduled run that failed gives its claim back."""
        async with self._db.transaction() as conn:
            await job_runs.record_run(conn, run, self._keep)
            if run.outcome == "done" and not scheduled:
                await job_runs.note_run(conn, run.job, run.node, run.started_at)
            elif run.outcome == "failed" and scheduled:
                await job_runs.give_back_claim(conn, run.job, run.node, run.started_at)
        if self._on_run is not None:
            self._on_run(run)
        return run

    async def run_now(self, name: str) -> JobRunRow:
        """Run job ``name`` once now (under its lock, as the scheduler runs it)."""
        work = self._jobs.get(name)
        if work is None:
            known = ", ".join(self._jobs)
            raise InvalidInput(f"no job {name!r}: the jobs are {known}", field="name")
        return await self.run(name, work)

    async def statuses(self) -> list[JobStatus]:
        """Each job's last run (by any node) and next run, in the jobs' order."""
        async with self._db.connection() as conn:
            last = await job_runs.last_runs(conn)
        scheduled = self._next_runs() if self._next_runs is not None else None
        statuses = []
        for name in self._jobs:
            run = last.get(name)
            if scheduled is not None:
                statuses.append(JobStatus(name, run, scheduled.get(name), "scheduler"))
                continue
            interval = self._interval_of(name) if self._interval_of is not None else None
            due = run.started_at + interval if run is not None and interval else None
            statuses.append(JobStatus(name, run, due, "interval"))
        return statuses
