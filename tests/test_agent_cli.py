"""The ``satellite-agent`` command against the real daemon (the daemon runs in this process,
the agent in a subprocess, so the event loop must not block while the agent runs)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
from aiohttp.test_utils import TestServer

from satellite_agent.client import Agent
from satellite_agent.state import Identity
from tests.conftest import ENHANCED, Api

TIMEOUT = 60
ACCOUNT = "/api/v1/accounts/Acme"


def agent_exe() -> str:
    return str(Path(sys.executable).parent / "satellite-agent")


class AgentCli:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    async def __call__(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            agent_exe(),
            "--state-dir",
            str(self.state_dir),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if not k.startswith("SATELLITE")}
            | (env or {}),
        )
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def ok(self, *args: str) -> str:
        code, out, err = await self(*args)
        assert code == 0, (args, out, err)
        return out


async def token_for(admin: Api, pool: int = 10) -> str:
    assert (await admin.post("/api/v1/accounts", {"name": "Acme"}))[0] == 200
    assert (await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Voice"}))[0] == 200
    status, body = await admin.post(
        ACCOUNT + "/virtual-accounts/Voice/license-pool",
        {"entitlementTag": ENHANCED, "quantity": pool},
    )
    assert status == 200, body
    status, body = await admin.post(ACCOUNT + "/virtual-accounts/Voice/tokens", {})
    assert status == 200, body
    token: str = body["tokenInfo"]["token"]
    return token


async def test_every_command_end_to_end(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    token = await token_for(admin)
    agent = AgentCli(tmp_path / "product")
    url = str(server.make_url("")).rstrip("/")
    out = await agent.ok("init", "--pid", "UCM", "--serial", "FCH2201A0B1", "--url", url)
    assert "in evaluation until" in out
    status = json.loads(await agent.ok("status", "--json"))
    assert status["registration"] == "evaluation"
    assert status["mayAddUsers"] is True

    await agent.ok("privacy", "on")
    out = await agent.ok("register", token)
    assert "registered as" in out
    row = await db.fetchrow("SELECT hostname, ip_address FROM product_instances")
    assert row is not None
    assert (row["hostname"], row["ip_address"]) == (None, None)  # privacy: neither sent

    usage_file = tmp_path / "usage.txt"
    usage_file.write_text(f"{ENHANCED}=4\n")
    out = await agent.ok("usage", "update", "--file", str(usage_file))
    assert "AUTHORIZED" in out
    out = await agent.ok("usage", "update", "--usage", f"{ENHANCED}=12")
    assert "OUT_OF_COMPLIANCE" in out
    await agent.ok("renew", "authorization")
    old_key = (tmp_path / "product" / "key.pem").read_bytes()
    out = await agent.ok("renew", "registration")
    assert "certificate expires" in out
    assert (tmp_path / "product" / "key.pem").read_bytes() != old_key
    # The new key signs from now on.
    await agent.ok("usage", "update", "--usage", f"{ENHANCED}=3")

    status = json.loads(await agent.ok("status", "--json"))
    assert status["registration"] == "registered"
    assert status["virtualAccount"] == "Voice"
    assert status["authorization"]["state"] == "AUTHORIZED"
    assert status["certificateExpiresAt"]
    assert status["mayAddUsers"] is True

    out = await agent.ok("deregister")
    assert "deregistered" in out
    status, body = await admin.post(ACCOUNT + "/licenses", {})
    assert body["licenses"][0]["inUse"] == 0


async def test_errors_are_one_line(admin: Api, server: TestServer, tmp_path: Path) -> None:
    agent = AgentCli(tmp_path / "product")
    code, _, err = await agent("status")
    assert code != 0
    assert err.count("\n") == 1
    assert err.startswith("error:")
    await agent.ok("init", "--pid", "UCM", "--serial", "FCH1", "--url", "http://127.0.0.1:9")
    code, _, err = await agent("register", "x" * 43 + "." + "y" * 43)
    assert code != 0
    assert err.startswith("error: cannot reach")
    assert err.count("\n") == 1
    code, _, err = await agent("usage", "update", "--usage", "nonsense")
    assert code != 0
    assert "TAG=COUNT" in err


async def test_deregister_without_the_server_warns_and_forgets_locally(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    token = await token_for(admin)
    agent = AgentCli(tmp_path / "product")
    url = str(server.make_url("")).rstrip("/")
    await agent.ok("init", "--pid", "UCM", "--serial", "FCH9", "--url", url)
    await agent.ok("register", token)
    await agent.ok("transport", "url", "http://127.0.0.1:9")
    code, _, err = await agent("deregister")
    assert code == 0, err
    assert "remove this product on the server by hand" in err
    status = json.loads(await agent.ok("status", "--json"))
    assert status["registration"] != "registered"


def test_evaluation_expires_after_90_days(tmp_path: Path) -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    now = [start]
    agent = Agent(tmp_path / "product", clock=lambda: now[0])
    agent.init(
        Identity(pid="UCM", serial_number="E1", uuid="u", product_type="UCM", product_version="15")
    )
    now[0] = start + dt.timedelta(days=89, hours=23)
    assert agent.may_add_users() is True
    now[0] = start + dt.timedelta(days=90)
    assert agent.may_add_users() is False


async def test_run_reports_on_schedule_and_stops_on_sigterm(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    token = await token_for(admin)
    agent = AgentCli(tmp_path / "product")
    url = str(server.make_url("")).rstrip("/")
    await agent.ok("init", "--pid", "UCM", "--serial", "FCH7", "--url", url)
    await agent.ok("register", token)
    usage_file = tmp_path / "usage.txt"
    usage_file.write_text(f"{ENHANCED}=2\n")
    proc = await asyncio.create_subprocess_exec(
        agent_exe(),
        "--state-dir",
        str(tmp_path / "product"),
        "run",
        "--usage-file",
        str(usage_file),
        "--usage-every",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:

        async def in_use() -> int:
            status, body = await admin.post(ACCOUNT + "/licenses", {})
            assert status == 200, body
            count: int = body["licenses"][0]["inUse"]
            return count

        for expected in (2, 5):
            usage_file.write_text(f"{ENHANCED}={expected}\n")
            for _ in range(150):  # at most 15 s
                if await in_use() == expected:
                    break
                await asyncio.sleep(0.1)
            assert await in_use() == expected
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        assert proc.returncode == 0, err
        assert b"stopped" in err
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


_WRITER = """
import datetime as dt, sys
from pathlib import Path
from satellite_agent.state import Identity, StateDir
state_dir = StateDir(Path(sys.argv[1]))
state = state_dir.load()
n = 0
while True:
    n += 1
    state.usage = {f"tag-{i}": n for i in range(200)}
    state_dir.save(state)
"""


def test_agent_state_survives_a_crash_mid_write(tmp_path: Path) -> None:
    """SIGKILL while the state is being rewritten: it is the old or the new, never broken."""
    agent = Agent(tmp_path / "product")
    agent.init(
        Identity(pid="UCM", serial_number="K1", uuid="u", product_type="UCM", product_version="15")
    )
    for attempt in range(12):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tmp_path / "product")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.3 + 0.05 * attempt)
        proc.kill()
        proc.wait(timeout=10)
        state = agent.state  # parses, or this raises
        assert state.identity.serial_number == "K1"
        counts = set(state.usage.values())
        assert len(counts) <= 1  # one write, whole
    leftovers = [p.name for p in (tmp_path / "product").iterdir() if p.name.startswith(".")]
    # A killed writer may leave its temporary file behind; never a torn state.json.
    assert all(name.startswith(".state.json.") for name in leftovers)
    Agent(tmp_path / "product").dir.remove_leftovers()  # what the next start does
    assert [p.name for p in (tmp_path / "product").iterdir() if p.name.startswith(".")] == []
