"""'Do not share host name and address' turned on after registering (issue 11, section 7):
the real agent command against the real daemon."""

from __future__ import annotations

import socket
from pathlib import Path

import asyncpg
from aiohttp.test_utils import TestServer

from satellite.storage import sync
from tests.conftest import ENHANCED, Api
from tests.test_agent_cli import AgentCli
from tests.test_device import VOICE, base_url, new_token, setup_voice


async def test_privacy_on_after_registering_clears_them_on_the_next_request(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, enhanced=5)
    agent = AgentCli(tmp_path / "product")
    await agent.ok("init", "--pid", "UCM", "--serial", "FCH7001", "--url", base_url(server))
    await agent.ok("register", await new_token(admin))
    row = await db.fetchrow("SELECT hostname FROM product_instances")
    assert row is not None
    assert row["hostname"] == socket.gethostname()  # shared at registration

    await agent.ok("privacy", "on")
    # What a sync request exports: the changes from here on.
    since = await db.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
    await agent.ok("usage", "update", "--usage", f"{ENHANCED}=1")

    row = await db.fetchrow("SELECT hostname, ip_address FROM product_instances")
    assert row is not None
    assert (row["hostname"], row["ip_address"]) == (None, None)
    status, body = await admin.get(f"{VOICE}/devices")
    assert status == 200, body
    assert "hostName" not in body["devices"][0] or body["devices"][0]["hostName"] is None
    account_id = await db.fetchval("SELECT id FROM accounts WHERE name = 'Acme'")
    async with db.transaction():
        exported = [row async for row in sync.changed_products(db, account_id, since)]
    assert [(r.udi_serial, r.hostname, r.ip_address) for r in exported] == [("FCH7001", None, None)]
    # Later requests change nothing more there.
    await agent.ok("usage", "update", "--usage", f"{ENHANCED}=2")
    since = await db.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
    await agent.ok("renew", "authorization")
    async with db.transaction():
        assert [row async for row in sync.changed_products(db, account_id, since)] == []
