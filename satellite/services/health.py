"""Readiness: the database answers and its schema is the one this code expects."""

from __future__ import annotations

from satellite.errors import SchemaMismatch
from satellite.storage.db import Database
from satellite.storage.migrations import Migration, schema_status


async def check_ready(db: Database, migrations: list[Migration]) -> None:
    async with db.connection() as conn:
        status = await schema_status(conn, migrations)
    if status.pending:
        raise SchemaMismatch(
            f"database schema at {status.current}, this satellite needs {status.latest}: "
            "run 'satellite migrate'"
        )
