"""Product instances through the admin API: registered by the real agent, listed, their events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestServer

from satellite_agent.client import Agent
from tests.conftest import Api
from tests.helpers.api import ACCOUNT, VOICE, new_agent, new_token

LAB = ACCOUNT + "/virtual-accounts/Lab"


async def register(
    admin: Api, tmp_path: Path, server: TestServer, serial: str, *, share: bool = True
) -> Agent:
    agent = new_agent(tmp_path, server, serial)
    if not share:
        state = agent.state
        state.share_host_identity = False
        agent.save(state)
    await agent.register(await new_token(admin))
    return agent


def product_id(agent: Agent) -> str:
    found = agent.state.product_instance_id
    assert found is not None
    return found


async def devices(api: Api, base: str = VOICE, query: str = "") -> dict[str, Any]:
    status, body = await api.get(f"{base}/devices{query}")
    assert status == 200, body
    return body  # type: ignore[no-any-return]


async def serials(api: Api, base: str = VOICE, query: str = "") -> list[str]:
    return [d["sudi"]["udiSerialNumber"] for d in (await devices(api, base, query))["devices"]]


def sudi(serial: str) -> dict[str, str]:
    return {"udiPid": "UCM", "udiSerialNumber": serial}


async def product_events(db: asyncpg.Connection, action: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT actor, target, details FROM events WHERE action = $1 ORDER BY id", action
    )
    return [{**dict(r), "details": json.loads(r["details"])} for r in rows]


async def snapshot(db: asyncpg.Connection) -> list[Any]:
    return [
        [tuple(r) for r in await db.fetch(f"SELECT * FROM {table} ORDER BY 1, 2")]  # noqa: S608
        for table in ("product_instances", "product_usage", "events")
    ]
