"""Backup and restore end to end on the embedded database: the real daemon serves, the
real agent registers and reports, ``satellite backup`` runs while the daemon serves; the
host is lost; ``satellite restore`` onto a new state directory and a new daemon on it, and
the product, with its old state and no CA file, reports to it: its token's pin holds."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

from satellite_agent.client import Agent
from tests.conftest import ENHANCED
from tests.helpers.cli import Cli
from tests.helpers.daemon import (
    Daemon,
    base_env,
    daemon_login,
    free_port,
    http,
    kill_daemon,
    named_values,
    start,
    stop_orphaned_postgres,
)
from tests.test_serve_https import VOICE, _register_and_report, _wait_healthy

ENV = {"SATELLITE_BACKUP_PASSPHRASE": "correct horse battery staple"}


def embedded_config(path: Path, state: Path) -> Path:
    path.write_text(f"state_dir = {json.dumps(str(state))}\n", encoding="utf-8")
    return path


def serve(config: Path, tmp_path: Path, logs: str) -> tuple[Daemon, str]:
    port = free_port(socket.AF_INET, "127.0.0.1")
    daemon = start(
        ["--config", str(config), "serve", "--listen", f"127.0.0.1:{port}"],
        tmp_path / logs,
        base_env(tmp_path),
    )
    return daemon, f"https://127.0.0.1:{port}"


async def report_to(product: Path, url: str, count: int) -> dict[str, object]:
    agent = Agent(product)
    state = agent.state
    assert state.registration == "registered"
    assert state.transport.ca_file is None
    state.transport.url = url  # the restored server's address (a new port in this test)
    agent.save(state)
    state = await agent.report_usage({ENHANCED: count})
    assert state.authorization is not None
    return state.authorization


def test_a_product_reports_to_a_daemon_restored_from_a_backup(tmp_path: Path) -> None:
    old, new = tmp_path / "a", tmp_path / "b"
    old_config = embedded_config(tmp_path / "old.toml", old)
    new_config = embedded_config(tmp_path / "new.toml", new)
    product = tmp_path / "product"
    out = tmp_path / "satellite.backup"
    daemon: Daemon | None = None
    try:
        daemon, base = serve(old_config, tmp_path, "old-logs")
        ca = old / "keys" / "ca.crt"
        _wait_healthy(daemon, base, ca)
        client_id = named_values(daemon.out, "client_id")[0]
        client_secret = named_values(daemon.out, "client_secret")[0]
        token = daemon_login(base, client_id, client_secret, ca)
        for path, body in (
            ("/api/v1/accounts", {"name": "Acme"}),
            ("/api/v1/accounts/Acme/virtual-accounts", {"name": "Voice"}),
            (VOICE + "/license-pool", {"entitlementTag": ENHANCED, "quantity": 5}),
        ):
            status, answer = http("POST", base + path, body, token, ca=ca)
            assert status == 200, answer
        status, answer = http("POST", base + VOICE + "/tokens", {}, token, ca=ca)
        assert status == 200, answer
        authorization = asyncio.run(
            _register_and_report(product, base, answer["tokenInfo"]["token"])
        )
        assert authorization["state"] == "AUTHORIZED"

        Cli(old_config, tmp_path).spawn("backup", "--out", str(out), env=ENV).ok()
        assert daemon.stop() == 0, daemon.err
        daemon = None

        restored = Cli(new_config, tmp_path).spawn("restore", str(out), env=ENV).ok()
        assert "restored" in restored.out
        daemon, base = serve(new_config, tmp_path, "new-logs")
        _wait_healthy(daemon, base, new / "keys" / "ca.crt")
        assert "client_secret" not in daemon.out  # the restored database has its admin
        authorization = asyncio.run(report_to(product, base, 4))
        assert authorization["state"] == "AUTHORIZED"
        # The old admin client signs in to the restored server.
        token = daemon_login(base, client_id, client_secret, new / "keys" / "ca.crt")
        status, answer = http(
            "GET", base + VOICE + "/devices", None, token, ca=new / "keys" / "ca.crt"
        )
        assert status == 200, answer
        assert daemon.stop() == 0, daemon.err
        daemon = None
    finally:
        kill_daemon(daemon)
        for state in (old, new):
            stop_orphaned_postgres(state / "pgdata")
