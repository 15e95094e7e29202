"""Export control through the admin API and the agent: an account allowed export keys, keys
in its pool, registered products, the keys granted."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from satellite_agent.client import Agent, AgentError, RequestRefused
from tests.conftest import Api
from tests.helpers.api import (
    ACCOUNT,
    EXPORT_KEY,
    VOICE,
    new_agent,
    new_token,
)


async def setup_acme(admin: Api, keys: int = 1, *, allowed: bool = True) -> None:
    status, body = await admin.post(
        "/api/v1/accounts", {"name": "Acme", "exportControlledAllowed": allowed}
    )
    assert status == 200, body
    assert (await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Voice"}))[0] == 200
    if keys:
        await add_keys(admin, keys)


async def add_keys(admin: Api, quantity: int) -> int:
    status, body = await admin.post(
        VOICE + "/license-pool", {"entitlementTag": EXPORT_KEY, "quantity": quantity}
    )
    assert status == 200, body
    line: int = body["license"]["id"]
    return line


async def registered(
    admin: Api, server: TestServer, tmp_path: Path, serial: str, **token: Any
) -> Agent:
    agent = new_agent(tmp_path, server, serial)
    await agent.register(await new_token(admin, **token))
    return agent


async def export_position(admin: Api) -> dict[str, Any]:
    status, body = await admin.post(ACCOUNT + "/licenses", {})
    assert status == 200, body
    found = {line["entitlementTag"]: line for line in body["licenses"]}
    position: dict[str, Any] = found.get(EXPORT_KEY, {})
    return position


async def grants(db: asyncpg.Connection) -> list[tuple[str, str]]:
    """(product id, status) of every export key row."""
    rows = await db.fetch("SELECT product_id::text, status FROM export_keys ORDER BY granted_at")
    return [(r["product_id"], r["status"]) for r in rows]


def refusal(exc: pytest.ExceptionInfo[AgentError]) -> str:
    """The server's reason: of the refusal itself, or of the one behind a retried request."""
    refused = exc.value if isinstance(exc.value, RequestRefused) else exc.value.__cause__
    assert isinstance(refused, RequestRefused), exc.value
    return str(refused.problem["type"]).rsplit(":", 1)[1]


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"
