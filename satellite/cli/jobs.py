"""``satellite job``: the scheduled jobs' last and next runs, and a job run once now."""

from __future__ import annotations

import click

from satellite.api import jobs as api
from satellite.cli.context import CliContext, json_option, pass_cli
from satellite.cli.output import emit, emit_one


def _outcome(run: api.JobRunOut) -> str:
    return f"{run.outcome}: {run.reason}" if run.reason else run.outcome


@click.group()
def job() -> None:
    """Scheduled jobs."""


@job.command("list")
@json_option
@pass_cli
def job_list(obj: CliContext, as_json: bool) -> None:
    """Each job's last run (by any node) and next run.

    This command runs no scheduler: NEXT RUN is the last run plus the job's interval
    (the admin API answers with the daemon's own schedule)."""
    answer = obj.call(api.list_jobs, api.JobsQuery())
    emit(
        as_json,
        answer,
        ["JOB", "LAST RUN", "SECONDS", "NODE", "OUTCOME", "NEXT RUN"],
        [
            [j.name, None, None, None, "never run", j.next_run]
            if j.last_run is None
            else [
                j.name,
                j.last_run.started_at,
                j.last_run.duration_seconds,
                j.last_run.node,
                _outcome(j.last_run),
                j.next_run,
            ]
            for j in answer.jobs
        ],
    )


@job.command("run")
@click.argument("name")
@json_option
@pass_cli
def job_run(obj: CliContext, name: str, as_json: bool) -> None:
    """Run job NAME once now, under its lock (skipped if another node holds it)."""
    run = obj.call(api.run_job, api.JobName(name=name))
    if run.outcome == "failed":
        raise click.ClickException(f"job {name} failed: {run.reason}")
    counts = ", ".join(f"{k}={v}" for k, v in sorted(run.counts.items())) or None
    emit_one(
        as_json,
        run,
        [
            ("job", run.job),
            ("node", run.node),
            ("outcome", _outcome(run)),
            ("seconds", run.duration_seconds),
            ("counts", counts),
        ],
    )
