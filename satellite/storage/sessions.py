"""The console's sign-in sessions: stored by the digest of their id, never the id."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class SessionRow:
    principal_id: int
    csrf_secret: str


async def insert_session(
    conn: asyncpg.Connection, digest: bytes, principal_id: int, csrf_secret: str
) -> None:
    await conn.execute(
        "INSERT INTO console_sessions (session_digest, principal_id, csrf_secret) "
        "VALUES ($1, $2, $3)",
        digest,
        principal_id,
        csrf_secret,
    )


async def touch_live_session(
    conn: asyncpg.Connection, digest: bytes, idle: dt.timedelta, absolute: dt.timedelta
) -> SessionRow | None:
    """The session if it is neither idle for ``idle`` nor older than ``absolute``; it is
    seen now (which keeps it from going idle)."""
    row = await conn.fetchrow(
        "UPDATE console_sessions SET last_seen_at = now() "
        "WHERE session_digest = $1 AND last_seen_at > now() - $2::interval "
        "AND created_at > now() - $3::interval "
        "RETURNING principal_id, csrf_secret",
        digest,
        idle,
        absolute,
    )
    return SessionRow(row["principal_id"], row["csrf_secret"]) if row else None


async def delete_session(conn: asyncpg.Connection, digest: bytes) -> int | None:
    """End one session; return its principal's id (None: there was none)."""
    principal_id: int | None = await conn.fetchval(
        "DELETE FROM console_sessions WHERE session_digest = $1 RETURNING principal_id", digest
    )
    return principal_id


async def delete_principal_sessions(conn: asyncpg.Connection, principal_id: int) -> int:
    result = await conn.execute(
        "DELETE FROM console_sessions WHERE principal_id = $1", principal_id
    )
    return int(result.split()[-1])


async def forget_ended(
    conn: asyncpg.Connection, *, seen_before: dt.datetime, begun_before: dt.datetime, limit: int
) -> int:
    """Delete up to ``limit`` sessions last seen before ``seen_before`` or begun before
    ``begun_before`` (the ones ``touch_live_session`` no longer resumes); how many."""
    result = await conn.execute(
        "DELETE FROM console_sessions WHERE id IN (SELECT id "
        "FROM console_sessions WHERE last_seen_at <= $1 OR created_at <= $2 LIMIT $3)",
        seen_before,
        begun_before,
        limit,
    )
    return int(result.rsplit(" ", 1)[1])
