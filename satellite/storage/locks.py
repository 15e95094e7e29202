"""PostgreSQL advisory locks: one holder at a time among every process on the database."""

from __future__ import annotations

import asyncpg


async def try_transaction_lock(conn: asyncpg.Connection, key: int) -> bool:
    """Take the advisory lock ``key`` until the current transaction ends, if it is free.

    False when another transaction holds it; never waits.
    """
    taken: bool = await conn.fetchval("SELECT pg_try_advisory_xact_lock($1::bigint)", key)
    return taken


async def try_session_lock(conn: asyncpg.Connection, key: int) -> bool:
    """Take the advisory lock ``key`` for this connection's session, if it is free; the
    caller must ``release_session_lock`` in a finally (before the connection goes back)."""
    taken: bool = await conn.fetchval("SELECT pg_try_advisory_lock($1::bigint)", key)
    return taken


async def release_session_lock(conn: asyncpg.Connection, key: int) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1::bigint)", key)


async def transaction_lock(conn: asyncpg.Connection, key: int) -> None:
    """Take the advisory lock ``key`` until the current transaction ends, waiting for the
    transaction that holds it to end first."""
    await conn.execute("SELECT pg_advisory_xact_lock($1::bigint)", key)
