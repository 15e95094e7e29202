"""The scheduled jobs on demand: each job's last run and next run, and a job run once now.

For system admins only: a job's run crosses every account. A run now takes the job's
advisory lock as the scheduler's runs do, so with another node running the job it is
reported skipped, and it is recorded with the scheduler's runs (on the node that answers).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from satellite.api.context import Services
from satellite.api.operation import SYSTEM, operation
from satellite.api.types import Request, Response
from satellite.domain.access import Principal
from satellite.services.jobs import NextRunFrom
from satellite.storage.job_runs import JobRunRow, Outcome


class JobRunOut(Response):
    job: str
    node: str
    started_at: dt.datetime
    finished_at: dt.datetime
    duration_seconds: float
    outcome: Outcome
    counts: dict[str, int]  # what a done run did, by what it counts
    reason: str | None  # why a run was skipped or failed, in one line


class JobOut(Response):
    name: str
    last_run: JobRunOut | None
    next_run: dt.datetime | None
    # "scheduler": the answering daemon's scheduler; "interval": the last run + the interval
    next_run_from: NextRunFrom


class JobList(Response):
    node: str  # the node that answers
    jobs: list[JobOut]


class JobsQuery(Request):
    """The list takes no parameters."""


class JobName(Request):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


@operation("GET", "/jobs", "Scheduled jobs: last and next runs", tag="jobs", access=SYSTEM)
async def list_jobs(services: Services, caller: Principal, request: JobsQuery) -> JobList:
    statuses = await services.jobs.statuses()
    return JobList(
        node=services.jobs.node,
        jobs=[
            JobOut(
                name=s.job,
                last_run=None if s.last is None else run_out(s.last),
                next_run=s.next_run,
                next_run_from=s.next_run_from,
            )
            for s in statuses
        ],
    )


@operation("POST", "/jobs/{name}/run", "Run a scheduled job now", tag="jobs", access=SYSTEM)
async def run_job(services: Services, caller: Principal, request: JobName) -> JobRunOut:
    return run_out(await services.jobs.run_now(request.name))


OPERATIONS = (list_jobs, run_job)


def run_out(run: JobRunRow) -> JobRunOut:
    return JobRunOut(
        job=run.job,
        node=run.node,
        started_at=run.started_at,
        finished_at=run.finished_at,
        duration_seconds=round((run.finished_at - run.started_at).total_seconds(), 3),
        outcome=run.outcome,
        counts=run.counts,
        reason=run.reason,
    )
