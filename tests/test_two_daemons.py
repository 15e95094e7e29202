"""Two real daemons (``satellite serve``) on one database and one state directory, as two
nodes of one server: each scheduled job is done once, by the node that came first; the
other skips it, and says so in its log, its job runs and its metrics."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from pathlib import Path

from satellite.scheduler.jobs import JOBS
from tests.helpers.cli import query
from tests.helpers.daemon import (
    POLL,
    Daemon,
    base_env,
    free_port,
    kill_daemon,
    start,
    wait_serving,
)
from tests.helpers.metrics import Scrape

WAIT = 30.0
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _scrape(url: str) -> Scrape:
    with _opener.open(url, timeout=10) as response:
        assert response.status == 200
        return Scrape(response.read().decode())


def _node(tmp_path: Path, name: str, dsn: str, state_dir: Path) -> tuple[Daemon, str, str]:
    """Start node ``name``; answer it, its base URL and its metrics URL once it serves."""
    port = free_port(socket.AF_INET, "127.0.0.1")
    metrics_port = free_port(socket.AF_INET, "127.0.0.1")
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f'listen = ["127.0.0.1:{port}"]\nnode_name = "{name}"\n'
        f"[database]\ndsn = {json.dumps(dsn)}\n"
        f'[metrics]\nserve = "own-listener"\nlisten = "127.0.0.1:{metrics_port}"\n',
        "utf-8",
    )
    args = ["--config", str(config), "serve", "--state-dir", str(state_dir), "--plain-http"]
    daemon = start(args, tmp_path / f"logs-{name}", base_env(tmp_path))
    base = f"http://127.0.0.1:{port}"
    wait_serving(daemon, base)
    return daemon, base, f"http://127.0.0.1:{metrics_port}/metrics"


def _runs_of(dsn: str, node: str) -> dict[str, tuple[str, str | None]]:
    """Each job's run by ``node``: its outcome and reason (each node runs each job once
    here: the test ends long before any job's next run)."""
    rows = query(dsn, "SELECT job, outcome, reason FROM job_runs WHERE node = $1", node)
    return {row["job"]: (row["outcome"], row["reason"]) for row in rows}


def _wait_for_runs(dsn: str, node: str) -> dict[str, tuple[str, str | None]]:
    deadline = time.monotonic() + WAIT
    for _ in range(int(WAIT / POLL)):
        runs = _runs_of(dsn, node)
        if set(runs) >= set(JOBS) or time.monotonic() > deadline:
            break
        time.sleep(POLL)
    assert set(runs) >= set(JOBS), (node, runs)
    return runs


def test_two_daemons_do_each_job_once_and_the_second_shows_its_skips(
    tmp_path: Path, db_dsn: str, state_dir: Path
) -> None:
    a: Daemon | None = None
    b: Daemon | None = None
    try:
        a, _, a_metrics = _node(tmp_path, "node-a", db_dsn, state_dir)
        a_runs = _wait_for_runs(db_dsn, "node-a")
        assert {job: outcome for job, (outcome, _) in a_runs.items()} == dict.fromkeys(
            JOBS, "done"
        ), a_runs
        b, _, b_metrics = _node(tmp_path, "node-b", db_dsn, state_dir)
        b_runs = _wait_for_runs(db_dsn, "node-b")
        for job, (outcome, reason) in b_runs.items():
            assert outcome == "skipped", (job, outcome, reason)
            assert reason is not None
            assert reason.startswith("done on node-a at "), (job, reason)
        # Nobody did a job twice.
        assert len(query(db_dsn, "SELECT 1 FROM job_runs WHERE outcome = 'done'")) == len(JOBS)
        skipped_lines = [
            json.loads(line)
            for line in b.err.splitlines()
            if line.strip() and json.loads(line).get("event") == "job.skipped"
        ]
        assert {line["job"] for line in skipped_lines} == set(JOBS), b.err
        assert all(line["node"] == "node-b" for line in skipped_lines)
        a_seen, b_seen = _scrape(a_metrics), _scrape(b_metrics)
        for job in JOBS:
            assert a_seen.value("satellite_job_runs_total", job=job, outcome="done") == 1, job
            assert b_seen.value("satellite_job_runs_total", job=job, outcome="skipped") == 1, job
            assert b_seen.value("satellite_job_runs_total", job=job, outcome="done") is None, job
        assert b.stop() == 0, b.err
        assert a.stop() == 0, a.err
    finally:
        kill_daemon(b)
        kill_daemon(a)
