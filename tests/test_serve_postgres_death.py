"""The real daemon when its database dies: kill -9 of the embedded postmaster under load,
a daemon killed -9 before, the systemd watchdog while the database is gone."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
import urllib.error
from collections import Counter
from pathlib import Path

from satellite.errors import StateDirError
from satellite.storage.embedded import EmbeddedPostgres, alive
from tests.helpers.daemon import (
    POLL,
    START_TIMEOUT,
    STOP_TIMEOUT,
    Daemon,
    base_env,
    daemon_login,
    free_port,
    http,
    kill_daemon,
    named_values,
    notify_socket,
    start,
    stop_orphaned_postgres,
)

RECOVERY_TIMEOUT = 60.0
LOAD_THREADS = 2
LOAD_REQUESTS = 3000  # per thread, at most


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().splitlines()[0])


def kill_and_wait(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    for _ in range(int(STOP_TIMEOUT / POLL)):
        if not alive(pid):
            return
        time.sleep(POLL)
    raise AssertionError(f"{pid} did not die")


def wait_ready(base: str, timeout: float) -> tuple[int, object]:
    """Poll /readyz until 200 or ``timeout``; the last answer."""
    deadline = time.monotonic() + timeout
    answer: tuple[int, object] = (0, None)
    for _ in range(int(timeout / POLL) + 1):
        with contextlib.suppress(OSError):
            answer = http("GET", f"{base}/readyz")
            if answer[0] == 200:
                return answer
        if time.monotonic() > deadline:
            break
        time.sleep(POLL)
    return answer


class Load:
    """A few threads asking for what needs the database, counting the statuses."""

    def __init__(self, base: str, token: str) -> None:
        self.statuses: Counter[int] = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(base, token)) for _ in range(LOAD_THREADS)
        ]

    def _run(self, base: str, token: str) -> None:
        for _ in range(LOAD_REQUESTS):
            if self._stop.is_set():
                return
            try:
                status, _ = http("GET", f"{base}/api/v1/accounts", token=token)
            except (urllib.error.URLError, OSError):
                status = 0  # no answer at all
            with self._lock:
                self.statuses[status] += 1

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=STOP_TIMEOUT)


def test_a_killed_postmaster_is_restarted_and_a_clean_stop_stops_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    pgdata = state / "pgdata"
    port = free_port(socket.AF_INET, "127.0.0.1")
    args = ["serve", "--plain-http", "--state-dir", str(state), "--listen", f"127.0.0.1:{port}"]
    base = f"http://127.0.0.1:{port}"
    first: Daemon | None = None
    daemon: Daemon | None = None
    with notify_socket() as (sock, path):
        env = base_env(tmp_path) | {"NOTIFY_SOCKET": path}
        try:
            # A daemon killed -9 leaves its pid in the wheel's handle file, and its
            # PostgreSQL running; the next daemon joins that server.
            first = start(args, tmp_path / "logs", env, sock)
            first.wait_for_notify("READY=1", START_TIMEOUT)
            client_id, secret = (
                named_values(first.out, "client_id")[0],
                named_values(first.out, "client_secret")[0],
            )
            first.proc.kill()
            first.proc.wait(timeout=STOP_TIMEOUT)
            assert first.proc.pid in json.loads((pgdata / ".handle_pids.json").read_text())
            daemon = start(args, tmp_path / "logs", env, sock)
            daemon.wait_for_notify("READY=1", START_TIMEOUT)
            token = daemon_login(base, client_id, secret)
            assert http("POST", f"{base}/api/v1/accounts", {"name": "Acme"}, token)[0] == 200

            # kill -9 the postmaster while requests come in.
            pid = postmaster_pid(pgdata)
            with Load(base, token) as load:
                time.sleep(0.5)  # the load is under way
                killed = time.monotonic()
                kill_and_wait(pid)
                status, body = wait_ready(base, RECOVERY_TIMEOUT)
                recovered = time.monotonic() - killed
                assert status == 200, (body, daemon.err[-3000:])
                time.sleep(0.5)  # and it goes on serving
            assert postmaster_pid(pgdata) != pid
            status, body = wait_ready(base, RECOVERY_TIMEOUT)
            assert status == 200, body
            assert isinstance(body, dict)
            assert body["embedded_postgres"]["state"] == "running"
            assert body["embedded_postgres"]["restarts"] == 1
            print(
                f"\npostmaster killed -> /readyz 200 in {recovered:.1f} s; "
                f"statuses under load: {dict(sorted(load.statuses.items()))}"
            )
            failed = {s: n for s, n in load.statuses.items() if (s >= 500 and s != 503) or s == 0}
            assert failed == {}, load.statuses
            assert load.statuses[200] > 0
            assert http("POST", f"{base}/api/v1/accounts", {"name": "Beta"}, token)[0] == 200

            events = [json.loads(line).get("event") for line in daemon.err.splitlines() if line]
            assert "embedded_postgres.died" in events
            assert "embedded_postgres.restarted" in events

            # A clean stop stops the PostgreSQL it restarted, though the killed daemon's
            # pid is still in the handle file.
            restarted = postmaster_pid(pgdata)
            assert daemon.stop() == 0, daemon.err
            assert not alive(restarted)
            assert not (pgdata / "postmaster.pid").exists()
        finally:
            kill_daemon(first)
            kill_daemon(daemon)
            stop_orphaned_postgres(pgdata)


def _restart(embedded: EmbeddedPostgres) -> None:
    for _ in range(int(RECOVERY_TIMEOUT / POLL)):
        with contextlib.suppress(StateDirError):
            embedded.restart_if_dead()
            if embedded.running():
                return
        time.sleep(POLL)
    raise AssertionError("the database did not start again")


def _collect(daemon: Daemon, seconds: float) -> list[str]:
    """The notifications of the next ``seconds``."""
    daemon.messages.clear()
    for _ in range(int(seconds / POLL)):
        daemon._receive()
    return list(daemon.messages)


def test_the_watchdog_stops_while_the_database_cannot_be_reached(tmp_path: Path) -> None:
    embedded = EmbeddedPostgres(tmp_path / "db")  # a database server outside the daemon
    dsn = embedded.start()
    config = tmp_path / "satellite.toml"
    config.write_text(
        f"[database]\ndsn = {json.dumps(dsn)}\n[systemd]\nwatchdog_not_ready_seconds = 1.0\n",
        encoding="utf-8",
    )
    port = free_port(socket.AF_INET, "127.0.0.1")
    args = [
        "--config",
        str(config),
        "serve",
        "--plain-http",
        "--state-dir",
        str(tmp_path / "state"),
    ]
    args += ["--listen", f"127.0.0.1:{port}"]
    base = f"http://127.0.0.1:{port}"
    daemon: Daemon | None = None
    try:
        with notify_socket() as (sock, path):
            env = base_env(tmp_path) | {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"}
            daemon = start(args, tmp_path / "logs", env, sock)
            daemon.wait_for_notify("READY=1", START_TIMEOUT)
            daemon.wait_for_notify("WATCHDOG=1", 5.0)

            kill_and_wait(postmaster_pid(embedded.pgdata))
            assert http("GET", f"{base}/readyz")[0] == 503
            daemon.wait_for_notify("STATUS=database unavailable: watchdog withheld", 10.0)
            assert "WATCHDOG=1" not in _collect(daemon, 1.0)

            # The database is back: so is the watchdog.
            _restart(embedded)
            daemon.messages.clear()
            daemon.wait_for_notify("WATCHDOG=1", 10.0)
            assert "STATUS=serving" in daemon.messages
            assert daemon.stop() == 0, daemon.err
    finally:
        kill_daemon(daemon)
        embedded.stop()
