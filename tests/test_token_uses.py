"""A token's uses: counted for every registration, and a shared token without a use limit
does not make its registrations wait on each other (the registrations of a whole site)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestServer

from tests.conftest import Api
from tests.helpers.api import ACCOUNT, new_agent, new_token, setup_voice

TOKENS = f"{ACCOUNT}/virtual-accounts/Voice/tokens"


async def token_info(admin: Api, token: str) -> dict[str, Any]:
    status, body = await admin.get(TOKENS)
    assert status == 200, body
    found: dict[str, Any] = next(t for t in body["tokens"] if t["token"] == token)
    return found


async def test_a_token_without_a_limit_is_not_held_by_a_lock_on_its_row(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_voice(admin)
    token = await new_token(admin)
    first = new_agent(tmp_path, server, "FCH0001")
    await first.register(token)
    # Another transaction holds the token's row (as a registration taking its use did):
    # registrations with the token go on meanwhile.
    async with db.transaction():
        await db.execute("SELECT 1 FROM registration_tokens FOR NO KEY UPDATE")
        others = [new_agent(tmp_path, server, f"FCH{n:04d}") for n in range(2, 5)]
        await asyncio.wait_for(asyncio.gather(*(a.register(token) for a in others)), 20)
    info = await token_info(admin, token)
    assert (info["uses"], info["status"]) == (4, "Active")
    assert await db.fetchval("SELECT count(*) FROM product_instances") == 4


async def test_a_limited_token_has_exactly_as_many_winners_as_uses(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_voice(admin)
    token = await new_token(admin, numberOfUses=3)
    agents = [new_agent(tmp_path, server, f"FCH{n:04d}") for n in range(7)]
    results = await asyncio.gather(*(a.register(token) for a in agents), return_exceptions=True)
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 3, results
    assert await db.fetchval("SELECT count(*) FROM product_instances") == 3
    info = await token_info(admin, token)
    assert (info["uses"], info["status"]) == (3, "Used")
