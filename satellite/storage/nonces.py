"""The device API's server nonces already used: each is good once."""

from __future__ import annotations

import datetime as dt

import asyncpg


async def use_nonce(conn: asyncpg.Connection, nonce: str) -> bool:
    """Record ``nonce`` as used; False when it was used before (a replay)."""
    result = await conn.execute(
        "INSERT INTO used_nonces (nonce) VALUES ($1) ON CONFLICT DO NOTHING", nonce
    )
    return result.endswith(" 1")


async def forget_used_nonces(conn: asyncpg.Connection, before: dt.datetime) -> int:
    """Nonces issued before ``before`` are refused as stale anyway: no need to keep them.

    Return how many were forgotten.
    """
    result = await conn.execute("DELETE FROM used_nonces WHERE used_at < $1", before)
    return int(result.rsplit(" ", 1)[1])
