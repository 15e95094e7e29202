"""The real daemon in a subprocess: embedded PostgreSQL, IPv4 and IPv6, sd_notify, SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from http import client as http_client
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import satellite_exe
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
    wait_serving,
)


def test_daemon_on_embedded_postgres_serves_stops_and_restarts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    port4 = free_port(socket.AF_INET, "127.0.0.1")
    port6 = free_port(socket.AF_INET6, "::1")
    args = [
        "serve",
        "--state-dir",
        str(state),
        "--listen",
        f"127.0.0.1:{port4}",
        "--listen",
        f"[::1]:{port6}",
    ]
    # HTTPS by default, with a certificate from the server's CA.
    v4, v6 = f"https://127.0.0.1:{port4}", f"https://[::1]:{port6}"
    ca = state / "keys" / "ca.crt"
    daemon: Daemon | None = None
    with notify_socket() as (sock, path):
        env = base_env(tmp_path) | {"NOTIFY_SOCKET": path}
        try:
            # First start: an empty state directory is initialized and the credentials shown.
            daemon = start(args, tmp_path / "logs", env, sock)
            daemon.wait_for_notify("READY=1", START_TIMEOUT)
            client_ids = named_values(daemon.out, "client_id")
            secrets = named_values(daemon.out, "client_secret")
            assert len(client_ids) == 1, daemon.out
            assert len(secrets) == 1, daemon.out
            assert (state / "keys" / "ca.key").is_file()
            assert (state / "pgdata" / "PG_VERSION").is_file()
            assert f"--cacert {ca}" in daemon.out

            for base in (v4, v6):
                assert http("GET", f"{base}/healthz", ca=ca)[0] == 200, base
                status, body = http("GET", f"{base}/readyz", ca=ca)
                assert status == 200, (base, body)
            # Nothing in clear: plain HTTP is not served.
            with pytest.raises((urllib.error.URLError, ConnectionError, http_client.HTTPException)):
                http("GET", f"http://127.0.0.1:{port4}/healthz")

            token = daemon_login(v4, client_ids[0], secrets[0], ca)
            status, body = http("POST", f"{v4}/api/v1/accounts", {"name": "Acme"}, token, ca=ca)
            assert status == 200, body
            status, body = http(
                "POST", f"{v6}/api/v1/upstream_satellites/accounts", None, token, ca=ca
            )
            assert status == 200, body
            assert [a["name"] for a in body["accounts"]] == ["Acme"]

            assert "STOPPING=1" not in daemon.messages
            started = time.monotonic()
            assert daemon.stop() == 0, daemon.err
            assert time.monotonic() - started < STOP_TIMEOUT
            assert "STOPPING=1" in daemon.messages, daemon.messages
            assert daemon.messages.count("READY=1") == 1
            # The embedded PostgreSQL stopped with the daemon.
            assert not (state / "pgdata" / "postmaster.pid").exists()
            with contextlib.suppress(urllib.error.URLError):
                http("GET", f"{v4}/healthz", ca=ca)
                raise AssertionError("still answering after SIGTERM")

            # Second start on the same state directory: same data, no new credentials.
            # This time systemd asks for a watchdog every 0.2 s.
            watchdog_env = env | {"WATCHDOG_USEC": "200000"}
            daemon = start(args, tmp_path / "logs", watchdog_env, sock)
            daemon.wait_for_notify("READY=1", START_TIMEOUT)
            daemon.wait_for_notify("WATCHDOG=1", 5.0)
            daemon.proc.send_signal(signal.SIGHUP)  # reload: keeps serving
            assert "client_secret" not in daemon.out
            assert "client_id" not in daemon.out
            token = daemon_login(v6, client_ids[0], secrets[0], ca)
            status, body = http(
                "POST", f"{v4}/api/v1/upstream_satellites/accounts", None, token, ca=ca
            )
            assert status == 200, body
            assert [a["name"] for a in body["accounts"]] == ["Acme"]
            assert daemon.stop() == 0, daemon.err
            assert "STOPPING=1" in daemon.messages
        finally:
            kill_daemon(daemon)
            stop_orphaned_postgres(state / "pgdata")


def test_daemon_logs_are_json_lines(tmp_path: Path, db_dsn: str, state_dir: Path) -> None:
    port = free_port(socket.AF_INET, "127.0.0.1")
    config = tmp_path / "satellite.toml"
    config.write_text(f"[database]\ndsn = {json.dumps(db_dsn)}\n", encoding="utf-8")
    args = [
        "--config",
        str(config),
        "serve",
        "--state-dir",
        str(state_dir),
        "--listen",
        f"127.0.0.1:{port}",
        "--plain-http",  # as asked: no certificate is issued into the shared state directory
    ]
    daemon: Daemon | None = None
    try:
        daemon = start(args, tmp_path / "logs", base_env(tmp_path))
        wait_serving(daemon, f"http://127.0.0.1:{port}")
        status, _ = http(
            "GET",
            f"http://127.0.0.1:{port}/api/v1/openapi.json",
            headers={"X-Request-ID": "test-request-42"},
        )
        assert status == 200
        assert daemon.stop() == 0, daemon.err
    finally:
        kill_daemon(daemon)
    lines = [line for line in daemon.err.splitlines() if line.strip()]
    assert lines, "the daemon logged nothing"
    records = [json.loads(line) for line in lines]
    events = [r.get("event") for r in records]
    assert "daemon.listening" in events
    assert "daemon.stopped" in events
    listening = records[events.index("daemon.listening")]
    assert listening["addresses"] == [f"http://127.0.0.1:{port}"]
    requests = [r for r in records if r.get("request_id") == "test-request-42"]
    assert [(r["event"], r["path"], r["status"]) for r in requests] == [
        ("http.request", "/api/v1/openapi.json", 200)
    ]


def test_serve_refuses_a_database_it_may_not_or_cannot_use(
    tmp_path: Path, fresh_db: str, db_dsn: str
) -> None:
    async def from_the_future() -> None:
        conn = await asyncpg.connect(db_dsn)
        try:
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) "
                "VALUES (999, 'future', 'x')"
            )
        finally:
            await conn.close()

    asyncio.run(from_the_future())
    runs = []
    for name, dsn, extra in (
        ("unmigrated", fresh_db, ["--no-migrate"]),
        ("newer", db_dsn, []),
    ):
        config = tmp_path / f"{name}.toml"
        config.write_text(
            f"state_dir = {json.dumps(str(tmp_path / name))}\n"
            f"[database]\ndsn = {json.dumps(dsn)}\n",
            encoding="utf-8",
        )
        port = free_port(socket.AF_INET, "127.0.0.1")
        args = ["--config", str(config), "serve", "--listen", f"127.0.0.1:{port}", *extra]
        runs.append((port, start(args, tmp_path / name / "logs", base_env(tmp_path))))
    try:
        for port, daemon in runs:
            try:
                code = daemon.proc.wait(timeout=START_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    http("GET", f"http://127.0.0.1:{port}/healthz")
                raise AssertionError(f"still running: {daemon.err}") from None
            assert code != 0
            lines = daemon.err.splitlines()
            assert len(lines) == 1, daemon.err
            assert lines[0].startswith("error: ")
        unmigrated, newer = (d.err for _, d in runs)
        assert "migrate" in unmigrated
        assert "newer" in newer
    finally:
        for _, daemon in runs:
            kill_daemon(daemon)

    async def untouched() -> bool:
        conn = await asyncpg.connect(fresh_db)
        try:
            return bool(await conn.fetchval("SELECT to_regclass('schema_migrations') IS NULL"))
        finally:
            await conn.close()

    assert asyncio.run(untouched()), "--no-migrate must not migrate"


def _served_certificate(port: int, context: ssl.SSLContext) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_https_with_the_init_certificate_and_reload_on_sighup(tmp_path: Path, db_dsn: str) -> None:
    state = tmp_path / "state"
    config = tmp_path / "satellite.toml"
    config.write_text(f'state_dir = "{state}"\n[database]\ndsn = "{db_dsn}"\n')
    env = base_env(tmp_path) | {"SATELLITE_CONFIG": str(config)}
    init = subprocess.run(
        [satellite_exe(), "init", "--tls-hostname", "127.0.0.1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    cert_path = state / "tls" / "server.crt"
    trusted = ssl.create_default_context(cafile=str(state / "keys" / "ca.crt"))
    port = free_port(socket.AF_INET, "127.0.0.1")
    daemon: Daemon | None = None
    with notify_socket() as (sock, path):
        try:
            daemon = start(
                ["serve", "--listen", f"127.0.0.1:{port}"],
                tmp_path / "logs",
                env | {"NOTIFY_SOCKET": path},
                sock,
            )
            daemon.wait_for_notify("READY=1", START_TIMEOUT)
            first = _served_certificate(port, trusted)
            assert first == ssl.PEM_cert_to_DER_cert(cert_path.read_text())
            request = urllib.request.Request(f"https://127.0.0.1:{port}/healthz")
            with urllib.request.urlopen(request, context=trusted, timeout=10) as response:  # noqa: S310
                assert response.status == 200
            # Plain HTTP is not served on a TLS port.
            with pytest.raises((urllib.error.URLError, ConnectionError, http_client.HTTPException)):
                http("GET", f"http://127.0.0.1:{port}/healthz")

            # A new certificate in place (init for another name), then SIGHUP: new
            # connections get it.
            again = subprocess.run(
                [satellite_exe(), "init", "--tls-hostname", "satellite.example.net"],
                env=env,
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT,
                check=False,
            )
            assert again.returncode == 0, again.stderr
            assert str(cert_path) in again.stdout
            daemon.proc.send_signal(signal.SIGHUP)
            expected = ssl.PEM_cert_to_DER_cert(cert_path.read_text())
            deadline = time.monotonic() + 10
            served = first
            while served != expected and time.monotonic() < deadline:
                time.sleep(POLL)
                served = _served_certificate(port, trusted)
            assert served == expected
            assert daemon.stop() == 0, daemon.err
        finally:
            kill_daemon(daemon)
