"""The real daemon in a subprocess: start it, talk HTTP to it, stop it, clean up after it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import satellite_exe

START_TIMEOUT = 60.0  # a first start runs initdb for the embedded PostgreSQL
STOP_TIMEOUT = 30.0
POLL = 0.1

# Straight to the daemon, whatever proxy the environment names.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port(family: socket.AddressFamily, host: str) -> int:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def http(
    method: str,
    url: str,
    body: Any = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    ca: Path | None = None,
) -> tuple[int, Any]:
    """One request; for https:// URLs, TLS trusts ``ca`` (the server's keys/ca.crt)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s) only
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    opener = _opener
    if ca is not None:
        context = ssl.create_default_context(cafile=str(ca))
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
    try:
        with opener.open(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw else None


@contextlib.contextmanager
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A unix datagram socket standing in for systemd's, on a short path."""
    directory = tempfile.mkdtemp(prefix="sat-notify-")
    path = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(path)
        sock.settimeout(POLL)
        yield sock, path
    finally:
        sock.close()
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path
    notify: socket.socket | None = None
    messages: list[str] = field(default_factory=list)

    @property
    def out(self) -> str:
        return self.out_path.read_text("utf-8", errors="replace")

    @property
    def err(self) -> str:
        return self.err_path.read_text("utf-8", errors="replace")

    def _receive(self) -> None:
        assert self.notify is not None
        try:
            data = self.notify.recv(4096)
        except TimeoutError:
            return
        self.messages += data.decode().splitlines()

    def wait_for_notify(self, message: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / POLL) + 1):
            if message in self.messages:
                return
            if self.proc.poll() is not None:
                self._drain()
                break
            if time.monotonic() > deadline:
                break
            self._receive()
        assert message in self.messages, (
            f"no {message} (got {self.messages}); exit={self.proc.poll()}\n"
            f"stdout: {self.out}\nstderr: {self.err}"
        )

    def _drain(self) -> None:
        if self.notify is not None:
            for _ in range(10):
                before = len(self.messages)
                self._receive()
                if len(self.messages) == before:
                    return

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=STOP_TIMEOUT)
        self._drain()
        return code


def start(
    args: list[str], logs: Path, env: dict[str, str], notify: socket.socket | None = None
) -> Daemon:
    logs.mkdir(parents=True, exist_ok=True)
    run = len(list(logs.glob("*.out")))
    out_path, err_path = logs / f"{run}.out", logs / f"{run}.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            [satellite_exe(), *args], stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env
        )
    return Daemon(proc, out_path, err_path, notify)


def base_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SATELLITE_CONFIG", "STATE_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_USEC"}
    }
    env["XDG_STATE_HOME"] = str(tmp_path / "xdg-state")
    return env


def kill_daemon(daemon: Daemon | None) -> None:
    if daemon is not None and daemon.proc.poll() is None:
        daemon.proc.kill()
        daemon.proc.wait(timeout=STOP_TIMEOUT)


def stop_orphaned_postgres(pgdata: Path) -> None:
    """If a daemon died without stopping its embedded PostgreSQL, stop that server by its pid."""
    pidfile = pgdata / "postmaster.pid"
    with contextlib.suppress(ValueError, OSError, IndexError):
        pid = int(pidfile.read_text().splitlines()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"postgres" not in cmdline or str(pgdata).encode() not in cmdline:
            return  # a stale pid file: that pid is someone else's now
        os.kill(pid, signal.SIGINT)  # fast shutdown
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(POLL)


def named_values(out: str, name: str) -> list[str]:
    prefix = f"{name}: "
    return [line[len(prefix) :].strip() for line in out.splitlines() if line.startswith(prefix)]


def daemon_login(base: str, client_id: str, client_secret: str, ca: Path | None = None) -> str:
    status, body = http(
        "POST",
        f"{base}/backend/oauth/token",
        {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        },
        ca=ca,
    )
    assert status == 200, body
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] > 0
    token: str = body["access_token"]
    return token


def printed_admin_login(daemon: Daemon, base: str) -> str:
    """A token of the one system admin whose credentials the daemon's first start printed."""
    (client_id,), (secret,) = (
        named_values(daemon.out, "client_id"),
        named_values(daemon.out, "client_secret"),
    )
    return daemon_login(base, client_id, secret)


def wait_serving(daemon: Daemon, base: str, path: str = "/healthz") -> None:
    """Until ``base + path`` answers 200 (bounded by START_TIMEOUT); the daemon must not
    exit meanwhile."""
    deadline = time.monotonic() + START_TIMEOUT
    for _ in range(int(START_TIMEOUT / POLL)):
        assert daemon.proc.poll() is None, daemon.err
        with contextlib.suppress(OSError):
            if http("GET", base + path)[0] == 200:
                return
        assert time.monotonic() < deadline, daemon.err
        time.sleep(POLL)
    raise AssertionError(f"{base}{path} did not answer 200: {daemon.err}")
