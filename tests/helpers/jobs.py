"""For the scheduled jobs' tests: a clock standing at a moment, agents registered by serial
number, and the alerts, usage and events the jobs leave."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestServer

from satellite_agent.client import Agent
from satellite_agent.state import Identity
from tests.conftest import ENHANCED, Api
from tests.helpers.api import ACCOUNT, VOICE

DAY = dt.timedelta(days=1)
PRODUCT = "PID:UCM SN:FCH0001"


def at(moment: dt.datetime) -> Callable[[], dt.datetime]:
    return lambda: moment


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def setup_voice(admin: Api, lines: list[dict[str, Any]]) -> None:
    status, body = await admin.post("/api/v1/accounts", {"name": "Acme"})
    assert status == 200, body
    status, body = await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Voice"})
    assert status == 200, body
    for line in lines:
        status, body = await admin.post(VOICE + "/license-pool", line)
        assert status == 200, body


async def registered_agent(admin: Api, server: TestServer, tmp_path: Path, serial: str) -> Agent:
    status, body = await admin.post(VOICE + "/tokens", {})
    assert status == 200, body
    agent = Agent(tmp_path / f"agent-{serial}-{uuid.uuid4().hex[:8]}")
    state = agent.init(
        Identity(
            pid="UCM",
            serial_number=serial,
            uuid=f"6f1e0c5a-0000-4000-8000-{serial[-6:].rjust(12, '0')}",
            product_type="UCM",
            product_version="15.0",
        )
    )
    state.transport.url = str(server.make_url("")).rstrip("/")
    state.share_host_identity = False  # so the product is known by PID and serial number
    agent.save(state)
    await agent.register(body["tokenInfo"]["token"])
    return agent


async def open_alerts(admin: Api) -> list[tuple[str, str, str]]:
    status, body = await admin.post(ACCOUNT + "/alerts", {})
    assert status == 200, body
    return sorted((a["messageType"], a["severity"], a["source"]) for a in body["alerts"])


async def alert_messages(admin: Api, message_type: str) -> list[str]:
    status, body = await admin.post(ACCOUNT + "/alerts", {})
    assert status == 200, body
    return [a["message"] for a in body["alerts"] if a["messageType"] == message_type]


async def in_use(admin: Api, tag: str = ENHANCED) -> int:
    status, body = await admin.post(ACCOUNT + "/licenses", {})
    assert status == 200, body
    counts: dict[str, int] = {line["entitlementTag"]: line["inUse"] for line in body["licenses"]}
    return counts.get(tag, 0)


async def scheduler_events(db: asyncpg.Connection) -> list[tuple[str, str]]:
    rows = await db.fetch(
        "SELECT action, target FROM events WHERE actor = 'system:scheduler' ORDER BY id"
    )
    return [(r["action"], r["target"]) for r in rows]
