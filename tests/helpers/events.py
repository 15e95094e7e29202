"""The audit log seen from the database: how many events it holds, and an event that cannot
be written (to see a change roll back with its event)."""

from __future__ import annotations

import asyncpg


async def event_count(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM events"))


async def refuse_events(db: asyncpg.Connection, action: str) -> None:
    """Make the audit insert of ``action`` fail inside the database."""
    await db.execute(
        f"ALTER TABLE events ADD CONSTRAINT refuse_{action.replace('.', '_')} "
        f"CHECK (action <> '{action}') NOT VALID"
    )
