"""What the database server allows: its connection limit (the workers' pools share it)."""

from __future__ import annotations

import asyncpg


async def max_connections(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT current_setting('max_connections')::int"))
