"""``satellite serve --workers 2``, the real daemon: both workers answer on the one listen
address, the scheduled jobs run in one of them, a scrape counts every worker's requests,
SIGHUP and a renewed certificate reach every worker, a killed worker is replaced, and no
worker outlives its daemon."""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

from satellite import workers
from satellite.scheduler.jobs import JOBS
from tests.conftest import satellite_exe
from tests.helpers.cli import query
from tests.helpers.daemon import (
    START_TIMEOUT,
    Daemon,
    base_env,
    free_port,
    kill_daemon,
    notify_socket,
    start,
    stop_orphaned_postgres,
    wait_serving,
)
from tests.helpers.daemon import http as request
from tests.helpers.workers import (
    CONNECTIONS,
    all_listening,
    answering,
    connections,
    gone,
    healthz_total,
    records,
    scrape,
    server_side,
    serving_workers,
    wait_until,
    worker_pids,
    workers_daemon,
)
from tests.test_serve_postgres_death import kill_and_wait, postmaster_pid


def test_two_workers_answer_count_together_run_the_jobs_once_and_stop(
    tmp_path: Path, db_dsn: str
) -> None:
    with serving_workers(tmp_path, db_dsn) as (daemon, port, metrics):
        pids = list(worker_pids(daemon).values())

        # Connections go to both processes.
        assert answering(port, pids) == set(pids)

        # The scheduled jobs: one scheduler, in one worker, each job done once.
        def runs() -> list[dict[str, Any]]:
            rows = [dict(row) for row in query(db_dsn, "SELECT job, node, outcome FROM job_runs")]
            return rows if {row["job"] for row in rows} >= set(JOBS) else []

        rows = wait_until("the jobs ran", runs, daemon)
        assert sorted(row["job"] for row in rows) == sorted(JOBS), rows
        assert {row["outcome"] for row in rows} == {"done"}, rows
        assert len({row["node"] for row in rows}) == 1, rows
        assert [r["worker"] for r in records(daemon, "scheduler.started")] == [0]

        # A scrape counts the requests of both workers: the one of wait_serving and those
        # of the connections above.
        assert healthz_total(metrics) == 1 + CONNECTIONS

        # SIGHUP to the daemon: every worker reads the config again, the parent its log
        # settings (from now on only warnings: a setting that needs a restart is one).
        config = tmp_path / "satellite.toml"
        config.write_text(
            'node_name = "renamed"\n' + config.read_text("utf-8") + '[log]\nlevel = "warning"\n',
            "utf-8",
        )
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(
            "both workers reloaded",
            lambda: {r["worker"] for r in records(daemon, "config.restart_needed")} == {0, 1},
            daemon,
        )
        before = len(daemon.err.splitlines())

        # SIGTERM: the workers stop, then the daemon; no process stays behind.
        assert daemon.stop() == 0, daemon.err
        assert all(gone(pid) for pid in pids), pids
        after = [json.loads(line) for line in daemon.err.splitlines()[before:]]
        assert [line for line in after if line["level"] == "info"] == []


def test_a_killed_worker_is_replaced_and_no_worker_outlives_a_killed_daemon(
    tmp_path: Path, db_dsn: str
) -> None:
    with serving_workers(tmp_path, db_dsn) as (daemon, port, metrics):
        first = worker_pids(daemon)
        answering(port, list(first.values()))
        before = healthz_total(metrics)

        os.kill(first[1], signal.SIGKILL)
        wait_until("worker 1 started again", lambda: worker_pids(daemon)[1] != first[1], daemon)
        exited = records(daemon, "daemon.worker_exited")
        assert [(r["worker"], r["exit_code"]) for r in exited] == [(1, -signal.SIGKILL)]
        wait_until(
            "the new worker 1 listens",
            lambda: sum(r.get("worker") == 1 for r in records(daemon, "daemon.listening")) == 2,
            daemon,
        )
        now = worker_pids(daemon)
        assert now[0] == first[0]
        # The daemon answers, from both processes, and the dead worker's counts still count.
        assert answering(port, list(now.values())) == set(now.values())
        assert healthz_total(metrics) == before + CONNECTIONS

        # The daemon killed outright: its workers stop too (none is left serving the port).
        daemon.proc.kill()
        daemon.proc.wait(timeout=10)
        for pid in now.values():
            wait_until(f"worker {pid} gone", functools.partial(gone, pid), daemon)


def _served_certificate(conn: http.client.HTTPConnection) -> bytes:
    assert isinstance(conn.sock, ssl.SSLSocket)
    der = conn.sock.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_every_worker_serves_the_certificate_the_leader_renewed(
    tmp_path: Path, db_dsn: str
) -> None:
    daemon: Daemon | None = None
    try:
        daemon, port, _ = workers_daemon(tmp_path, db_dsn)
        wait_until("both workers listen", lambda: all_listening(daemon, 2), daemon)
        pids = list(worker_pids(daemon).values())
        state = tmp_path / "state"
        trusted = ssl.create_default_context(cafile=str(state / "keys" / "ca.crt"))

        def served() -> dict[int, set[bytes]]:
            by_pid: dict[int, set[bytes]] = {}
            with connections(port, trusted) as made:
                for conn in made:
                    pid = server_side(conn.sock, pids)
                    by_pid.setdefault(pid, set()).add(_served_certificate(conn))
            return by_pid

        cert_path = state / "tls" / "server.crt"
        first = ssl.PEM_cert_to_DER_cert(cert_path.read_text())
        assert served() == {pid: {first} for pid in pids}
        # A certificate issued again (for another name), and the signal the leader sends
        # its parent once it serves a renewed one: every worker serves the new one.
        env = base_env(tmp_path) | {"SATELLITE_CONFIG": str(tmp_path / "satellite.toml")}
        again = subprocess.run(
            [satellite_exe(), "init", "--tls-hostname", "satellite.example.net"],
            env=env,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=False,
        )
        assert again.returncode == 0, again.stderr
        renewed = ssl.PEM_cert_to_DER_cert(cert_path.read_text())
        assert renewed != first
        daemon.proc.send_signal(signal.SIGUSR1)
        wait_until(
            "every worker loaded it",
            lambda: {r["worker"] for r in records(daemon, "tls.reloaded")} == {0, 1},
            daemon,
        )
        assert served() == {pid: {renewed} for pid in pids}
        assert daemon.stop() == 0, daemon.err
    finally:
        kill_daemon(daemon)


def test_the_parent_restarts_the_embedded_postgres_and_every_worker_shows_it(
    tmp_path: Path,
) -> None:
    """The parent supervises the embedded PostgreSQL; the workers use it and their /readyz
    and metrics show what the parent's supervisor did."""
    port = free_port(socket.AF_INET, "127.0.0.1")
    metrics_port = free_port(socket.AF_INET, "127.0.0.1")
    state = tmp_path / "state"
    config = tmp_path / "satellite.toml"
    config.write_text(
        f'state_dir = "{state}"\nlisten = ["127.0.0.1:{port}"]\n'
        f'[metrics]\nserve = "own-listener"\nlisten = "127.0.0.1:{metrics_port}"\n',
        "utf-8",
    )
    env = base_env(tmp_path) | {"SATELLITE_CONFIG": str(config)}
    daemon: Daemon | None = None
    try:
        daemon = start(["serve", "--workers", "2", "--plain-http"], tmp_path / "logs", env)
        base = f"http://127.0.0.1:{port}"
        wait_serving(daemon, base, "/readyz")
        wait_until("both workers listen", lambda: all_listening(daemon, 2), daemon)
        pids = list(worker_pids(daemon).values())
        assert request("GET", f"{base}/readyz")[1]["embedded_postgres"]["restarts"] == 0

        kill_and_wait(postmaster_pid(state / "pgdata"))

        def restarted_everywhere() -> bool:
            """Every worker's /readyz says ready after one restart."""
            with connections(port) as made:
                seen = {}
                for conn in made:
                    conn.request("GET", "/readyz")
                    response = conn.getresponse()
                    body = json.loads(response.read())
                    seen[server_side(conn.sock, pids)] = (response.status, body)
            return set(seen) == set(pids) and all(
                status == 200 and body["embedded_postgres"]["restarts"] == 1
                for status, body in seen.values()
            )

        wait_until("the embedded PostgreSQL restarted", restarted_everywhere, daemon)
        assert (
            scrape(f"http://127.0.0.1:{metrics_port}/metrics").value(
                "satellite_embedded_postgres_restarts_total"
            )
            == 1
        )
        assert daemon.stop() == 0, daemon.err
        assert all(gone(pid) for pid in pids), pids
    finally:
        kill_daemon(daemon)
        stop_orphaned_postgres(state / "pgdata")


def test_a_worker_that_keeps_exiting_stops_the_daemon_with_an_error(
    tmp_path: Path, db_dsn: str
) -> None:
    with serving_workers(tmp_path, db_dsn) as (daemon, _, _):
        killed: list[int] = []
        for _ in range(workers.MAX_FAILURES):
            wait_until("worker 1 runs", lambda: worker_pids(daemon).get(1) not in killed, daemon)
            pid = worker_pids(daemon)[1]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        code = daemon.proc.wait(timeout=START_TIMEOUT)
        assert code == 1, daemon.err
        assert daemon.err.splitlines()[-1] == (
            f"error: worker 1 exited {workers.MAX_FAILURES} times in a row, each within "
            f"{workers.STEADY_SECONDS:.0f} s of its start (last exit code -9)"
        )
        assert [r["worker"] for r in records(daemon, "daemon.worker_failing")] == [1]
        assert all(gone(pid) for pid in worker_pids(daemon).values())


def test_systemd_hears_the_parent_once_every_worker_listens(tmp_path: Path, db_dsn: str) -> None:
    daemon: Daemon | None = None
    port = free_port(socket.AF_INET, "127.0.0.1")
    config = tmp_path / "satellite.toml"
    config.write_text(
        f'listen = ["127.0.0.1:{port}"]\n[database]\ndsn = {json.dumps(db_dsn)}\n', "utf-8"
    )
    args = ["--config", str(config), "serve", "--state-dir", str(tmp_path / "state")]
    with notify_socket() as (sock, path):
        env = base_env(tmp_path) | {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"}
        try:
            daemon = start([*args, "--plain-http", "--workers", "2"], tmp_path / "logs", env, sock)
            daemon.wait_for_notify("READY=1", START_TIMEOUT)
            # READY=1 came once both workers listened, from the parent (a worker would say
            # "STATUS=serving"), and the parent keeps the watchdog.
            listening = {r["worker"] for r in records(daemon, "daemon.listening")}
            assert listening == {0, 1}, daemon.err
            daemon.wait_for_notify("WATCHDOG=1", 5.0)
            assert "STATUS=serving with 2 workers" in daemon.messages
            assert "STATUS=serving" not in daemon.messages
            assert daemon.stop() == 0, daemon.err
            assert "STOPPING=1" in daemon.messages
        finally:
            kill_daemon(daemon)


def test_workers_refuse_a_port_another_process_serves_with_so_reuseport(
    tmp_path: Path, db_dsn: str
) -> None:
    # Another daemon's worker, say: a listening socket with SO_REUSEPORT. Workers binding
    # with the option too would share its port and take part of its connections, silently.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        config = tmp_path / "satellite.toml"
        config.write_text(
            f'listen = ["127.0.0.1:{port}"]\n[database]\ndsn = {json.dumps(db_dsn)}\n', "utf-8"
        )
        args = ["--config", str(config), "serve", "--state-dir", str(tmp_path / "state")]
        daemon = start(
            [*args, "--plain-http", "--workers", "2"], tmp_path / "logs", base_env(tmp_path)
        )
        try:
            code = daemon.proc.wait(timeout=START_TIMEOUT)
            assert code != 0, daemon.err
            assert daemon.err.splitlines()[-1] == (
                f"error: listen: 127.0.0.1:{port}: Address already in use (another process "
                "serves it)"
            )
            assert records(daemon, "daemon.worker_started") == []
        finally:
            kill_daemon(daemon)


def test_a_sighup_while_a_worker_starts_again_reaches_it_once_it_listens(
    tmp_path: Path, db_dsn: str
) -> None:
    """A worker that is still starting has no handler for SIGHUP yet (its default action
    ends the process): the parent passes the signal on once that worker listens."""
    with serving_workers(tmp_path, db_dsn) as (daemon, _, _):
        first = worker_pids(daemon)
        os.kill(first[1], signal.SIGKILL)
        wait_until("worker 1 started again", lambda: worker_pids(daemon)[1] != first[1], daemon)
        daemon.proc.send_signal(signal.SIGHUP)  # (the new worker 1 is still importing)
        wait_until(
            "the new worker 1 listens and reloads",
            lambda: any(r.get("worker") == 1 for r in records(daemon, "config.reloaded")),
            daemon,
        )
        exited = records(daemon, "daemon.worker_exited")
        assert [(r["worker"], r["exit_code"]) for r in exited] == [(1, -signal.SIGKILL)]
        assert daemon.stop() == 0, daemon.err


def test_one_process_counts_from_zero_with_a_multiprocess_dir_in_its_environment(
    tmp_path: Path, db_dsn: str
) -> None:
    """PROMETHEUS_MULTIPROC_DIR left in the operator's environment: a daemon of one
    process still shows its own counts, not those an earlier run left in that directory."""
    port = free_port(socket.AF_INET, "127.0.0.1")
    metrics_port = free_port(socket.AF_INET, "127.0.0.1")
    config = tmp_path / "satellite.toml"
    config.write_text(
        f'listen = ["127.0.0.1:{port}"]\n[database]\ndsn = {json.dumps(db_dsn)}\n'
        f'[metrics]\nserve = "own-listener"\nlisten = "127.0.0.1:{metrics_port}"\n',
        "utf-8",
    )
    shared = tmp_path / "multiproc"
    shared.mkdir()
    env = base_env(tmp_path) | {"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    args = ["--config", str(config), "serve", "--state-dir", str(tmp_path / "state")]
    metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    for run in range(2):
        daemon: Daemon | None = None
        try:
            daemon = start([*args, "--plain-http", "--workers", "1"], tmp_path / f"l{run}", env)
            wait_serving(daemon, f"http://127.0.0.1:{port}")
            # (It says it listens once the metrics' own listener does too.)
            listening = functools.partial(records, daemon, "daemon.listening")
            wait_until("it listens", listening, daemon)
            assert healthz_total(metrics) == 1, daemon.err
            assert daemon.stop() == 0, daemon.err
        finally:
            kill_daemon(daemon)


def test_a_worker_started_again_keeps_the_settings_the_daemon_started_with(
    tmp_path: Path, db_dsn: str
) -> None:
    """The config edited, a setting there that needs a restart (the listen address), and no
    restart yet: a worker started again serves as the others do and says so, as a SIGHUP
    would (not half the daemon's processes on another address, or database)."""
    with serving_workers(tmp_path, db_dsn) as (daemon, port, _):
        first = worker_pids(daemon)
        config = tmp_path / "satellite.toml"
        other = free_port(socket.AF_INET, "127.0.0.1")
        edited = config.read_text("utf-8").replace(f':{port}"]', f':{other}"]')
        assert edited != config.read_text("utf-8")
        config.write_text(edited, "utf-8")
        os.kill(first[1], signal.SIGKILL)
        wait_until(
            "the new worker 1 listens",
            lambda: sum(r.get("worker") == 1 for r in records(daemon, "daemon.listening")) == 2,
            daemon,
        )
        again = [r for r in records(daemon, "daemon.listening") if r.get("worker") == 1][-1]
        assert again["addresses"] == [f"http://127.0.0.1:{port}"]
        needed = [r for r in records(daemon, "config.restart_needed") if r["worker"] == 1]
        assert [r["settings"] for r in needed] == [["listen"]]
        now = worker_pids(daemon)
        assert answering(port, list(now.values())) == set(now.values())
        assert daemon.stop() == 0, daemon.err


STOP_SECONDS = 2.0  # (workers_stop_seconds for the test that waits it out)


def test_a_second_signal_while_the_workers_stop_leaves_no_worker_behind(
    tmp_path: Path, db_dsn: str
) -> None:
    """Ctrl-C twice: the second one, while the parent waits for a worker that does not
    stop when told, changes nothing: that worker is killed after the wait, and the parent
    stops as after one (not a traceback, a worker left and the PostgreSQL not stopped)."""
    daemon: Daemon | None = None
    pids: dict[int, int] = {}
    try:
        daemon, port, _ = workers_daemon(
            tmp_path, db_dsn, "--plain-http", settings=f"workers_stop_seconds = {STOP_SECONDS}\n"
        )
        wait_serving(daemon, f"http://127.0.0.1:{port}")
        wait_until("both workers listen", lambda: all_listening(daemon, 2), daemon)
        pids = worker_pids(daemon)
        os.kill(pids[1], signal.SIGSTOP)  # (it hears SIGTERM only once it runs again)
        daemon.proc.send_signal(signal.SIGINT)
        wait_until("worker 0 stopped", functools.partial(gone, pids[0]), daemon)
        daemon.proc.send_signal(signal.SIGINT)
        assert daemon.proc.wait(timeout=STOP_SECONDS + START_TIMEOUT) == 0, daemon.err
        assert gone(pids[1])
        assert [r["pid"] for r in records(daemon, "daemon.worker_killed")] == [pids[1]]
        assert "Traceback" not in daemon.err
    finally:
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        kill_daemon(daemon)


def test_a_worker_starts_again_after_a_cleaner_emptied_the_run_directory(
    tmp_path: Path, db_dsn: str
) -> None:
    """The parent's run directory is in /tmp, whose cleaner (systemd-tmpfiles) removes
    files nothing touched for days: a worker started again must not depend on one written
    at the daemon's start."""
    with serving_workers(tmp_path, db_dsn) as (daemon, _, _):
        first = worker_pids(daemon)
        environ = Path(f"/proc/{first[1]}/environ").read_bytes().split(b"\0")
        variables = dict(line.decode().split("=", 1) for line in environ if b"=" in line)
        Path(variables[workers.SETTINGS_ENV]).unlink()
        os.kill(first[1], signal.SIGKILL)
        wait_until(
            "the new worker 1 listens",
            lambda: sum(r.get("worker") == 1 for r in records(daemon, "daemon.listening")) == 2,
            daemon,
        )
        assert daemon.stop() == 0, daemon.err
