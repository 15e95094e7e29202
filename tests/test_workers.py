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
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from satellite import workers
from satellite.config import DatabaseSettings, Settings, worker_count
from satellite.errors import ConfigError
from satellite.scheduler.jobs import JOBS
from satellite.storage.db import Database
from tests.conftest import satellite_exe
from tests.helpers.cli import query
from tests.helpers.daemon import (
    POLL,
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
from tests.helpers.metrics import Scrape
from tests.test_serve_postgres_death import kill_and_wait, postmaster_pid

WAIT = 30.0
CONNECTIONS = 24  # the kernel spreads them by a hash: all on one of 2 workers is 2 in 2**23
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _wait(what: str, condition: Callable[[], Any], daemon: Daemon) -> Any:
    deadline = time.monotonic() + WAIT
    for _ in range(int(WAIT / POLL)):
        value = condition()
        if value or time.monotonic() > deadline:
            break
        time.sleep(POLL)
    assert value, f"{what}: {daemon.err[-4000:]}"
    return value


def _records(daemon: Daemon, event: str) -> list[dict[str, Any]]:
    lines = (json.loads(line) for line in daemon.err.splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("event") == event]


def _worker_pids(daemon: Daemon) -> dict[int, int]:
    """Each worker's pid now (the last one started for its index)."""
    return {r["worker"]: r["pid"] for r in _records(daemon, "daemon.worker_started")}


def _listening(daemon: Daemon, count: int) -> bool:
    listening = _records(daemon, "daemon.workers_listening")
    return len(listening) == 1 and len(_worker_pids(daemon)) == count


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return inodes


def _server_side(client: socket.socket, pids: list[int]) -> int:
    """The pid of the process that holds the daemon's end of ``client``'s connection (the
    connection's entry in /proc/net/tcp whose peer is ``client``'s address)."""
    client_port = client.getsockname()[1]
    inodes = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].split(":")[1], 16) == client_port:
            inodes[fields[9]] = fields[1]
    owners = [pid for pid in pids if _socket_inodes(pid) & inodes.keys()]
    assert len(owners) == 1, (owners, pids)
    return owners[0]


@contextlib.contextmanager
def _connections(
    port: int, context: ssl.SSLContext | None = None
) -> Iterator[list[http.client.HTTPConnection]]:
    """CONNECTIONS kept-alive connections, each having had one GET /healthz answered."""
    made: list[http.client.HTTPConnection] = []
    try:
        for _ in range(CONNECTIONS):
            conn: http.client.HTTPConnection = (
                http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
                if context is not None
                else http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            )
            made.append(conn)
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            assert response.status == 200
        yield made
    finally:
        for conn in made:
            conn.close()


def _answering(port: int, pids: list[int]) -> set[int]:
    with _connections(port) as made:
        return {_server_side(conn.sock, pids) for conn in made}


def _scrape(url: str) -> Scrape:
    with _opener.open(url, timeout=10) as response:
        return Scrape(response.read().decode())


def _healthz_total(url: str) -> float:
    value = _scrape(url).value(
        "satellite_http_requests_total", route="/healthz", method="GET", status="200"
    )
    return value or 0.0


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"  # (a zombie has stopped for good)


def _daemon(tmp_path: Path, dsn: str, *args: str) -> tuple[Daemon, int, str]:
    port = free_port(socket.AF_INET, "127.0.0.1")
    metrics_port = free_port(socket.AF_INET, "127.0.0.1")
    config = tmp_path / "satellite.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\nlisten = ["127.0.0.1:{port}"]\n'
        f"[database]\ndsn = {json.dumps(dsn)}\n"
        f'[metrics]\nserve = "own-listener"\nlisten = "127.0.0.1:{metrics_port}"\n',
        "utf-8",
    )
    env = base_env(tmp_path) | {"SATELLITE_CONFIG": str(config)}
    daemon = start(["serve", "--workers", "2", *args], tmp_path / "logs", env)
    return daemon, port, f"http://127.0.0.1:{metrics_port}/metrics"


def test_two_workers_answer_count_together_run_the_jobs_once_and_stop(
    tmp_path: Path, db_dsn: str
) -> None:
    daemon: Daemon | None = None
    try:
        daemon, port, metrics = _daemon(tmp_path, db_dsn, "--plain-http")
        wait_serving(daemon, f"http://127.0.0.1:{port}")
        _wait("both workers listen", lambda: _listening(daemon, 2), daemon)
        pids = list(_worker_pids(daemon).values())

        # Connections go to both processes.
        assert _answering(port, pids) == set(pids)

        # The scheduled jobs: one scheduler, in one worker, each job done once.
        def runs() -> list[dict[str, Any]]:
            rows = [dict(row) for row in query(db_dsn, "SELECT job, node, outcome FROM job_runs")]
            return rows if {row["job"] for row in rows} >= set(JOBS) else []

        rows = _wait("the jobs ran", runs, daemon)
        assert sorted(row["job"] for row in rows) == sorted(JOBS), rows
        assert {row["outcome"] for row in rows} == {"done"}, rows
        assert len({row["node"] for row in rows}) == 1, rows
        assert [r["worker"] for r in _records(daemon, "scheduler.started")] == [0]

        # A scrape counts the requests of both workers: the one of wait_serving and those
        # of the connections above.
        assert _healthz_total(metrics) == 1 + CONNECTIONS

        # SIGHUP to the daemon: every worker reads the config again.
        daemon.proc.send_signal(signal.SIGHUP)
        _wait(
            "both workers reloaded",
            lambda: {r["worker"] for r in _records(daemon, "config.reloaded")} == {0, 1},
            daemon,
        )

        # SIGTERM: the workers stop, then the daemon; no process stays behind.
        assert daemon.stop() == 0, daemon.err
        assert all(_gone(pid) for pid in pids), pids
        assert {r.get("worker") for r in _records(daemon, "daemon.stopped")} == {0, 1, None}
    finally:
        kill_daemon(daemon)


def test_a_killed_worker_is_replaced_and_no_worker_outlives_a_killed_daemon(
    tmp_path: Path, db_dsn: str
) -> None:
    daemon: Daemon | None = None
    try:
        daemon, port, metrics = _daemon(tmp_path, db_dsn, "--plain-http")
        wait_serving(daemon, f"http://127.0.0.1:{port}")
        _wait("both workers listen", lambda: _listening(daemon, 2), daemon)
        first = _worker_pids(daemon)
        _answering(port, list(first.values()))
        before = _healthz_total(metrics)

        os.kill(first[1], signal.SIGKILL)
        _wait("worker 1 started again", lambda: _worker_pids(daemon)[1] != first[1], daemon)
        exited = _records(daemon, "daemon.worker_exited")
        assert [(r["worker"], r["exit_code"]) for r in exited] == [(1, -signal.SIGKILL)]
        _wait(
            "the new worker 1 listens",
            lambda: sum(r.get("worker") == 1 for r in _records(daemon, "daemon.listening")) == 2,
            daemon,
        )
        now = _worker_pids(daemon)
        assert now[0] == first[0]
        # The daemon answers, from both processes, and the dead worker's counts still count.
        assert _answering(port, list(now.values())) == set(now.values())
        assert _healthz_total(metrics) == before + CONNECTIONS

        # The daemon killed outright: its workers stop too (none is left serving the port).
        daemon.proc.kill()
        daemon.proc.wait(timeout=10)
        for pid in now.values():
            _wait(f"worker {pid} gone", functools.partial(_gone, pid), daemon)
    finally:
        kill_daemon(daemon)


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
        daemon, port, _ = _daemon(tmp_path, db_dsn)
        _wait("both workers listen", lambda: _listening(daemon, 2), daemon)
        pids = list(_worker_pids(daemon).values())
        state = tmp_path / "state"
        trusted = ssl.create_default_context(cafile=str(state / "keys" / "ca.crt"))

        def served() -> dict[int, set[bytes]]:
            by_pid: dict[int, set[bytes]] = {}
            with _connections(port, trusted) as made:
                for conn in made:
                    pid = _server_side(conn.sock, pids)
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
        _wait(
            "every worker loaded it",
            lambda: {r["worker"] for r in _records(daemon, "tls.reloaded")} == {0, 1},
            daemon,
        )
        assert served() == {pid: {renewed} for pid in pids}
        assert daemon.stop() == 0, daemon.err
    finally:
        kill_daemon(daemon)


@pytest.mark.parametrize("value", ["0", "65", "many", "-1"])
def test_a_bad_workers_value_is_one_line(tmp_path: Path, value: str) -> None:
    done = subprocess.run(
        [satellite_exe(), "serve", "--state-dir", str(tmp_path / "state"), "--workers", value],
        env=base_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert done.returncode != 0
    assert done.stderr.splitlines() == [
        f'error: --workers: {value!r} is not "auto" or a number of 1 to 64'
    ]
    assert not (tmp_path / "state").exists(), "nothing is started or created"


def test_a_bad_workers_setting_names_it(tmp_path: Path) -> None:
    config = tmp_path / "satellite.toml"
    config.write_text("workers = 0\n", "utf-8")
    done = subprocess.run(
        [satellite_exe(), "--config", str(config), "serve", "--state-dir", str(tmp_path / "s")],
        env=base_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert done.returncode != 0
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: {config}: workers: "), line


@pytest.mark.unit
def test_auto_is_a_worker_per_core_on_a_bigger_host() -> None:
    assert [worker_count("auto", cores) for cores in (1, 2, 3, 4, 8, 64)] == [1, 1, 3, 4, 8, 8]
    assert worker_count(3) == 3


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
        _wait("both workers listen", lambda: _listening(daemon, 2), daemon)
        pids = list(_worker_pids(daemon).values())
        assert request("GET", f"{base}/readyz")[1]["embedded_postgres"]["restarts"] == 0

        kill_and_wait(postmaster_pid(state / "pgdata"))

        def restarted_everywhere() -> bool:
            """Every worker's /readyz says ready after one restart."""
            with _connections(port) as made:
                seen = {}
                for conn in made:
                    conn.request("GET", "/readyz")
                    response = conn.getresponse()
                    body = json.loads(response.read())
                    seen[_server_side(conn.sock, pids)] = (response.status, body)
            return set(seen) == set(pids) and all(
                status == 200 and body["embedded_postgres"]["restarts"] == 1
                for status, body in seen.values()
            )

        _wait("the embedded PostgreSQL restarted", restarted_everywhere, daemon)
        assert (
            _scrape(f"http://127.0.0.1:{metrics_port}/metrics").value(
                "satellite_embedded_postgres_restarts_total"
            )
            == 1
        )
        assert daemon.stop() == 0, daemon.err
        assert all(_gone(pid) for pid in pids), pids
    finally:
        kill_daemon(daemon)
        stop_orphaned_postgres(state / "pgdata")


def test_workers_whose_pools_the_database_cannot_hold_are_refused(
    tmp_path: Path, db_dsn: str
) -> None:
    max_connections = int(query(db_dsn, "SHOW max_connections")[0]["max_connections"])
    pool = max_connections // 2 + 1  # two of them are over the limit
    config = tmp_path / "satellite.toml"
    config.write_text(f"[database]\ndsn = {json.dumps(db_dsn)}\npool_max_size = {pool}\n", "utf-8")
    port = free_port(socket.AF_INET, "127.0.0.1")
    serve = ["serve", "--state-dir", str(tmp_path / "s"), "--listen", f"127.0.0.1:{port}"]
    done = subprocess.run(
        [satellite_exe(), "--config", str(config), *serve, "--plain-http", "--workers", "2"],
        env=base_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert done.returncode != 0
    assert done.stderr.splitlines()[-1] == (
        f"error: workers: 2 workers of database.pool_max_size {pool} (+ 1 of the parent) "
        f"need {2 * pool + 1} connections, the database's max_connections is "
        f"{max_connections}: lower one or the other"
    ), done.stderr
    assert "daemon.worker_started" not in done.stderr


async def test_auto_starts_as_many_workers_as_the_database_has_connections_for(
    db_dsn: str,
) -> None:
    """ "auto" on a bigger host: the workers whose pools fit in max_connections; a number
    that does not fit is refused (the daemon test above)."""
    probe = await Database.connect(db_dsn, DatabaseSettings(pool_min_size=1, pool_max_size=1))
    try:
        async with probe.connection() as conn:
            limit = int(await conn.fetchval("SHOW max_connections"))
        pool = (limit - 1) // 3  # three pools and the parent's connection fit, four do not
        settings = Settings(database=DatabaseSettings(dsn=db_dsn, pool_max_size=pool))
        assert await workers.fit_connections(probe, settings, workers.Plan(8, auto=True)) == 3
        assert await workers.fit_connections(probe, settings, workers.Plan(3, auto=False)) == 3
        with pytest.raises(ConfigError, match="lower one or the other"):
            await workers.fit_connections(probe, settings, workers.Plan(4, auto=False))
    finally:
        await probe.close()


@pytest.mark.unit
def test_auto_is_one_where_several_cannot_share_the_addresses_and_a_number_is_refused() -> None:
    zero = Settings(listen=["127.0.0.1:0"], workers=4)
    with pytest.raises(ConfigError, match=r"^workers: listen: 127.0.0.1:0: port 0 with 4"):
        workers.plan(zero, None)
    assert workers.plan(zero, "1") == workers.Plan(1, auto=False)
    fixed = Settings(listen=["127.0.0.1:8443"])
    assert workers.plan(fixed, "3") == workers.Plan(3, auto=False)
    # "auto" (the default) on 8 cores: 8 workers, or 1 where a port is 0.
    assert workers.plan(fixed, None, cores=8) == workers.Plan(8, auto=True)
    assert workers.plan(Settings(listen=["127.0.0.1:0"]), None, cores=8) == workers.Plan(1, False)
    with pytest.raises(ConfigError, match=r"^--workers: '0' is not"):
        workers.plan(fixed, "0")


def test_a_worker_that_keeps_exiting_stops_the_daemon_with_an_error(
    tmp_path: Path, db_dsn: str
) -> None:
    daemon: Daemon | None = None
    try:
        daemon, port, _ = _daemon(tmp_path, db_dsn, "--plain-http")
        wait_serving(daemon, f"http://127.0.0.1:{port}")
        _wait("both workers listen", lambda: _listening(daemon, 2), daemon)
        killed: list[int] = []
        for _ in range(workers.MAX_FAILURES):
            _wait("worker 1 runs", lambda: _worker_pids(daemon).get(1) not in killed, daemon)
            pid = _worker_pids(daemon)[1]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        code = daemon.proc.wait(timeout=START_TIMEOUT)
        assert code == 1, daemon.err
        assert daemon.err.splitlines()[-1] == (
            f"error: worker 1 exited {workers.MAX_FAILURES} times in a row, each within "
            f"{workers.STEADY_SECONDS:.0f} s of its start (last exit code -9)"
        )
        assert [r["worker"] for r in _records(daemon, "daemon.worker_failing")] == [1]
        assert all(_gone(pid) for pid in _worker_pids(daemon).values())
    finally:
        kill_daemon(daemon)


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
            listening = {r["worker"] for r in _records(daemon, "daemon.listening")}
            assert listening == {0, 1}, daemon.err
            daemon.wait_for_notify("WATCHDOG=1", 5.0)
            assert "STATUS=serving with 2 workers" in daemon.messages
            assert "STATUS=serving" not in daemon.messages
            assert daemon.stop() == 0, daemon.err
            assert "STOPPING=1" in daemon.messages
        finally:
            kill_daemon(daemon)
