"""The scheduled jobs' runs, as every node records them (table ``job_runs``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

Outcome = Literal["done", "skipped", "failed"]


@dataclass(frozen=True)
class JobRunRow:
    job: str
    node: str
    started_at: dt.datetime
    finished_at: dt.datetime
    outcome: Outcome
    counts: dict[str, int]
    reason: str | None


async def record_run(conn: asyncpg.Connection, run: JobRunRow, keep: int) -> None:
    """Record ``run`` and forget the runs of its job beyond the newest ``keep``."""
    await conn.execute(
        "INSERT INTO job_runs (job, node, started_at, finished_at, outcome, counts, reason) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)",
        run.job,
        run.node,
        run.started_at,
        run.finished_at,
        run.outcome,
        run.counts,
        run.reason,
    )
    await conn.execute(
        "DELETE FROM job_runs WHERE job = $1 AND id NOT IN ("
        " SELECT id FROM job_runs WHERE job = $1 ORDER BY started_at DESC, id DESC LIMIT $2)",
        run.job,
        keep,
    )


async def last_runs(conn: asyncpg.Connection) -> dict[str, JobRunRow]:
    """The newest run of each job that has run."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (job) job, node, started_at, finished_at, outcome, counts, reason "
        "FROM job_runs ORDER BY job, started_at DESC, id DESC"
    )
    return {row["job"]: _run(row) for row in rows}


async def done_elsewhere_since(
    conn: asyncpg.Connection, job: str, node: str, since: dt.datetime
) -> JobRunRow | None:
    """The newest done run of ``job`` started at or after ``since`` by a node but ``node``."""
    row = await conn.fetchrow(
        "SELECT job, node, started_at, finished_at, outcome, counts, reason FROM job_runs "
        "WHERE job = $1 AND node <> $2 AND outcome = 'done' AND started_at >= $3 "
        "ORDER BY started_at DESC, id DESC LIMIT 1",
        job,
        node,
        since,
    )
    return None if row is None else _run(row)


def _run(row: Any) -> JobRunRow:
    return JobRunRow(
        job=row["job"],
        node=row["node"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        outcome=row["outcome"],
        counts=dict(row["counts"]),
        reason=row["reason"],
    )
