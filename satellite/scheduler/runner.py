"""APScheduler's asyncio scheduler, started and stopped with the daemon.

Every job runs at start and then every ``interval`` (each run recorded, and skipped when
another node did the job lately: ``services.jobs``); a run never overlaps the previous
run of the same job, and runs missed while the event loop was busy collapse into one.
Stopping lets a running job finish (for a bounded time) before it is cancelled: a
cancelled run rolls back and the next one does its work.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from satellite.api.context import Services
from satellite.domain.clock import utc_now
from satellite.errors import DatabaseUnavailable
from satellite.scheduler.jobs import JOBS, Job

log = structlog.get_logger("satellite.scheduler")


class JobScheduler:
    def __init__(
        self,
        services: Services,
        interval: dt.timedelta,
        stop_timeout: float = 5.0,
        jobs: Mapping[str, Job] = JOBS,
        intervals: Mapping[str, dt.timedelta] | None = None,
        jitter: Mapping[str, float] | None = None,
    ) -> None:
        self._services = services
        self._interval = interval
        self._stop_timeout = stop_timeout
        self._jobs = dict(jobs)
        self._intervals = dict(intervals or {})  # a job's own interval, else ``interval``
        self._jitter = dict(jitter or {})  # seconds a run of the job may start late, at random
        self._scheduler = AsyncIOScheduler(timezone=dt.UTC)
        self._runs: dict[asyncio.Task[object], str] = {}  # running job -> its name

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def job_names(self) -> list[str]:
        return [job.id for job in self._scheduler.get_jobs()]

    def next_runs(self) -> dict[str, dt.datetime | None]:
        """When each job runs next (None: paused, as while stopping)."""
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}

    def _interval_of(self, name: str) -> dt.timedelta:
        return self._intervals.get(name, self._interval)

    def _trigger(self, name: str) -> IntervalTrigger:
        return IntervalTrigger(
            seconds=self._interval_of(name).total_seconds(),
            timezone=dt.UTC,
            jitter=self._jitter.get(name) or None,
        )

    def start(self) -> None:
        first = utc_now()
        for name, job in self._jobs.items():
            self._scheduler.add_job(
                self._run,
                self._trigger(name),
                args=(name, job),
                id=name,
                name=name,
                next_run_time=first,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
        self._scheduler.start()
        self._services.jobs.follow_schedule(self.next_runs)
        log.info(
            "scheduler.started",
            jobs=list(self._jobs),
            interval_seconds=self._interval.total_seconds(),
        )

    async def _run(self, name: str, job: Job) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._runs[task] = name
        try:
            # Recorded in the job runs (a failure too, logged there with its traceback); skipped
            # if another node did it lately.
            await self._services.jobs.run(
                name,
                lambda: job(self._services, utc_now),
                interval=self._interval_of(name),
            )
        except DatabaseUnavailable:
            # Not a fault of the job: it runs again at its next time (no traceback to read).
            log.warning("job.failed", job=name, reason="database unavailable")
        finally:
            if task is not None:
                self._runs.pop(task, None)

    def reschedule(
        self,
        interval: dt.timedelta,
        intervals: Mapping[str, dt.timedelta] | None = None,
        jitter: Mapping[str, float] | None = None,
    ) -> list[str]:
        """New intervals (a reload of the config): each job whose interval or jitter changed
        runs next one new interval from now (a run in progress finishes). Return their names."""
        before = {name: (self._interval_of(name), self._jitter.get(name)) for name in self._jobs}
        self._interval = interval
        self._intervals = dict(intervals or {})
        self._jitter = dict(jitter or {})
        changed = [
            name
            for name in self._jobs
            if before[name] != (self._interval_of(name), self._jitter.get(name))
        ]
        if self.running:
            for name in changed:
                self._scheduler.reschedule_job(name, trigger=self._trigger(name))
        if changed:
            log.info("scheduler.rescheduled", jobs=changed)
        return changed

    async def stop(self) -> None:
        """No new runs; wait for the running ones (bounded), then shut down."""
        if not self.running:
            return
        self._scheduler.pause()
        self._services.jobs.follow_schedule(None)
        if self._runs:
            _, late = await asyncio.wait(set(self._runs), timeout=self._stop_timeout)
            for task in late:
                log.warning("job.cancelled", job=self._runs.get(task), reason="stopping")
        self._scheduler.shutdown(wait=False)  # cancels what still runs
        # The asyncio scheduler shuts down in a loop callback; let it run.
        await asyncio.sleep(0)
        if self._runs:
            await asyncio.wait(set(self._runs), timeout=self._stop_timeout)
        log.info("scheduler.stopped")
