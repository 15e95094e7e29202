"""HTTPS by default, end to end: the real daemon in a subprocess serves HTTPS with a
certificate from its own CA, and the real agent, given nothing but the URL and a token,
registers and reports over it (the token pinned the CA)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from pathlib import Path

from satellite_agent.client import Agent
from satellite_agent.state import Identity
from tests.conftest import ENHANCED
from tests.test_serve import (
    POLL,
    START_TIMEOUT,
    Daemon,
    _kill,
    _login,
    _values,
    base_env,
    free_port,
    http,
    start,
)

VOICE = "/api/v1/accounts/Acme/virtual-accounts/Voice"


def _wait_healthy(daemon: Daemon, base: str, ca: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    for _ in range(int(START_TIMEOUT / POLL)):
        assert daemon.proc.poll() is None, daemon.err
        with contextlib.suppress(OSError):
            if ca.exists() and http("GET", f"{base}/healthz", ca=ca)[0] == 200:
                return
        assert time.monotonic() < deadline, daemon.err
        time.sleep(POLL)
    raise AssertionError(f"not healthy: {daemon.err}")


async def _register_and_report(product: Path, url: str, token: str) -> dict[str, object]:
    agent = Agent(product)
    state = agent.init(
        Identity(
            pid="UCM",
            serial_number="FCH2201A0B1",
            uuid="u-https",
            product_type="UCM",
            product_version="15",
        )
    )
    state.transport.url = url  # and no CA file: the token's pin is all the trust it needs
    agent.save(state)
    await agent.register(token)
    state = await agent.report_usage({ENHANCED: 3})
    assert state.authorization is not None
    return state.authorization


def test_the_agent_verifies_the_real_daemon_through_its_token(tmp_path: Path, db_dsn: str) -> None:
    state = tmp_path / "state"
    config = tmp_path / "satellite.toml"
    config.write_text(
        f"state_dir = {json.dumps(str(state))}\n[database]\ndsn = {json.dumps(db_dsn)}\n",
        encoding="utf-8",
    )
    port = free_port(socket.AF_INET, "127.0.0.1")
    base = f"https://127.0.0.1:{port}"
    ca = state / "keys" / "ca.crt"
    daemon: Daemon | None = None
    try:
        daemon = start(
            ["--config", str(config), "serve", "--listen", f"127.0.0.1:{port}"],
            tmp_path / "logs",
            base_env(tmp_path),
        )
        _wait_healthy(daemon, base, ca)
        token = _login(
            base, _values(daemon.out, "client_id")[0], _values(daemon.out, "client_secret")[0], ca
        )
        for path, body in (
            ("/api/v1/accounts", {"name": "Acme"}),
            ("/api/v1/accounts/Acme/virtual-accounts", {"name": "Voice"}),
            (VOICE + "/license-pool", {"entitlementTag": ENHANCED, "quantity": 5}),
        ):
            status, answer = http("POST", base + path, body, token, ca=ca)
            assert status == 200, answer
        status, answer = http("POST", base + VOICE + "/tokens", {}, token, ca=ca)
        assert status == 200, answer
        product_token = answer["tokenInfo"]["token"]

        authorization = asyncio.run(_register_and_report(tmp_path / "product", base, product_token))
        assert authorization["state"] == "AUTHORIZED"
        assert daemon.stop() == 0, daemon.err
    finally:
        _kill(daemon)
