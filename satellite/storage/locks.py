"""PostgreSQL advisory locks: one holder at a time among every process on the database."""

from __future__ import annotations

import asyncpg


async def try_transaction_lock(conn: asyncpg.Connection, key: int) -> bool:
    """Take the advisory lock ``key`` until the current transaction ends, if it is free.

    False when another transaction holds it; never waits.
    """
    taken: bool = await conn.fetchval("SELECT pg_try_advisory_xact_lock($1::bigint)", key)
    return taken
