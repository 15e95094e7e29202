"""The real daemon with workers (``satellite serve --workers 2``): start it, find which
process holds the daemon's end of a connection, read its log by event."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import ssl
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.helpers.daemon import POLL, Daemon, base_env, free_port, kill_daemon, start, wait_serving
from tests.helpers.metrics import Scrape

WAIT = 30.0
CONNECTIONS = 24  # the kernel spreads them by a hash: all on one of 2 workers is 2 in 2**23
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_until(what: str, condition: Callable[[], Any], daemon: Daemon) -> Any:
    deadline = time.monotonic() + WAIT
    for _ in range(int(WAIT / POLL)):
        value = condition()
        if value or time.monotonic() > deadline:
            break
        time.sleep(POLL)
    assert value, f"{what}: {daemon.err[-4000:]}"
    return value


def records(daemon: Daemon, event: str) -> list[dict[str, Any]]:
    lines = (json.loads(line) for line in daemon.err.splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("event") == event]


def worker_pids(daemon: Daemon) -> dict[int, int]:
    """Each worker's pid now (the last one started for its index)."""
    return {r["worker"]: r["pid"] for r in records(daemon, "daemon.worker_started")}


def all_listening(daemon: Daemon, count: int) -> bool:
    listening = records(daemon, "daemon.workers_listening")
    return len(listening) == 1 and len(worker_pids(daemon)) == count


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return inodes


def server_side(client: socket.socket, pids: list[int]) -> int:
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
def connections(
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


def answering(port: int, pids: list[int]) -> set[int]:
    with connections(port) as made:
        return {server_side(conn.sock, pids) for conn in made}


def scrape(url: str) -> Scrape:
    with _opener.open(url, timeout=10) as response:
        return Scrape(response.read().decode())


def healthz_total(url: str) -> float:
    value = scrape(url).value(
        "satellite_http_requests_total", route="/healthz", method="GET", status="200"
    )
    return value or 0.0


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"  # (a zombie has stopped for good)


def workers_daemon(
    tmp_path: Path, dsn: str, *args: str, settings: str = ""
) -> tuple[Daemon, int, str]:
    """``settings``: more top-level lines of its config."""
    port = free_port(socket.AF_INET, "127.0.0.1")
    metrics_port = free_port(socket.AF_INET, "127.0.0.1")
    config = tmp_path / "satellite.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\nlisten = ["127.0.0.1:{port}"]\n{settings}'
        f"[database]\ndsn = {json.dumps(dsn)}\n"
        f'[metrics]\nserve = "own-listener"\nlisten = "127.0.0.1:{metrics_port}"\n',
        "utf-8",
    )
    env = base_env(tmp_path) | {"SATELLITE_CONFIG": str(config)}
    daemon = start(["serve", "--workers", "2", *args], tmp_path / "logs", env)
    return daemon, port, f"http://127.0.0.1:{metrics_port}/metrics"


@contextlib.contextmanager
def serving_workers(tmp_path: Path, dsn: str) -> Iterator[tuple[Daemon, int, str]]:
    """A daemon of two workers on plain HTTP (``workers_daemon``), once both listen; killed
    at the end if it still runs."""
    daemon, port, metrics = workers_daemon(tmp_path, dsn, "--plain-http")
    try:
        wait_serving(daemon, f"http://127.0.0.1:{port}")
        wait_until("both workers listen", lambda: all_listening(daemon, 2), daemon)
        yield daemon, port, metrics
    finally:
        kill_daemon(daemon)
