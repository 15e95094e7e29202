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


@dataclass(frozen=True)
class Claim:
    node: str
    claimed_at: dt.datetime


async def claim_run(
    conn: asyncpg.Connection, job: str, node: str, at: dt.datetime, since: dt.datetime
) -> Claim | None:
    """Claim the run of ``job`` at ``at`` for ``node``, unless another node claimed one at
    or after ``since``: then return that node's claim (and claim nothing). In a transaction:
    the job's row stays locked until it ends, so two nodes' claims go one after the other."""
    await conn.execute(
        "INSERT INTO job_claims (job, node) VALUES ($1, $2) ON CONFLICT (job) DO NOTHING",
        job,
        node,
    )
    row = await conn.fetchrow(
        "SELECT node, claimed_at FROM job_claims WHERE job = $1 FOR UPDATE", job
    )
    assert row is not None  # (made just before if it was not there; never deleted)
    if row["node"] != node and row["claimed_at"] is not None and row["claimed_at"] >= since:
        return Claim(row["node"], row["claimed_at"])
    await conn.execute(
        "UPDATE job_claims SET node = $2, claimed_at = $3 WHERE job = $1", job, node, at
    )
    return None


async def note_run(conn: asyncpg.Connection, job: str, node: str, at: dt.datetime) -> None:
    """A run of ``job`` done by ``node`` at ``at`` outside the schedule (on demand): the
    other nodes' scheduled runs see it as a claim."""
    await conn.execute(
        "INSERT INTO job_claims (job, node, claimed_at) VALUES ($1, $2, $3) "
        "ON CONFLICT (job) DO UPDATE SET node = EXCLUDED.node, claimed_at = EXCLUDED.claimed_at",
        job,
        node,
        at,
    )


async def give_back_claim(conn: asyncpg.Connection, job: str, node: str, at: dt.datetime) -> None:
    """Give back ``node``'s claim of the run of ``job`` at ``at`` (the run failed: another
    node may do the job before this one's next run)."""
    await conn.execute(
        "UPDATE job_claims SET claimed_at = NULL WHERE job = $1 AND node = $2 AND claimed_at = $3",
        job,
        node,
        at,
    )


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
