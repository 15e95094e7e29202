"""The audit log."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from satellite.domain.models import Event
from satellite.domain.paging import sql_limit


async def insert_event(
    conn: asyncpg.Connection,
    *,
    account_id: int | None,
    actor: str,
    action: str,
    target: str,
    details: dict[str, Any],
    request_id: str | None,
) -> None:
    await conn.execute(
        "INSERT INTO events (account_id, actor, action, target, details, request_id) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        account_id,
        actor,
        action,
        target,
        details,
        request_id,
    )


async def list_events(
    conn: asyncpg.Connection,
    *,
    account_ids: list[int] | None,
    action: str | None,
    actor: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    limit: int,
    offset: int,
) -> tuple[int, list[Event]]:
    """Newest first. ``account_ids`` None means every event, account or not."""
    where = (
        "($1::bigint[] IS NULL OR e.account_id = ANY($1::bigint[])) "
        "AND ($2::text IS NULL OR e.action = $2 OR starts_with(e.action, $2 || '.')) "
        "AND ($3::text IS NULL OR e.actor = $3) "
        "AND ($4::timestamptz IS NULL OR e.occurred_at >= $4) "
        "AND ($5::timestamptz IS NULL OR e.occurred_at < $5)"
    )
    args = (account_ids, action, actor, since, until)
    total = await conn.fetchval(f"SELECT count(*) FROM events e WHERE {where}", *args)
    rows = await conn.fetch(
        f"SELECT e.id, e.occurred_at, a.name AS account, e.actor, e.action, e.target, e.details, "
        f"e.request_id FROM events e LEFT JOIN accounts a ON a.id = e.account_id "
        f"WHERE {where} ORDER BY e.id DESC LIMIT $6 OFFSET $7",
        *args,
        sql_limit(limit),
        offset,
    )
    return int(total), [Event(**dict(r)) for r in rows]
