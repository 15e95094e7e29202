"""Alerts per account: raised once per key while open, cleared when the cause is gone."""

from __future__ import annotations

import asyncpg

from satellite.domain.alerts import AlertDetails, AlertType, check_details
from satellite.domain.models import Alert, Severity
from satellite.domain.paging import sql_limit


async def raise_alert(
    conn: asyncpg.Connection,
    *,
    account_id: int,
    virtual_account_id: int | None,
    dedupe_key: str,
    message_type: AlertType,
    severity: Severity,
    source: str,
    message: str,
    details: AlertDetails,
) -> bool:
    """Open an alert, or bring the open one with the same key up to date. ``details``: the
    values ``message`` is made of, with the keys of its type (``domain.alerts``), so a
    reader can say it in another language.

    Return True when a new alert opened.
    """
    inserted: bool = await conn.fetchval(
        "INSERT INTO alerts (account_id, virtual_account_id, dedupe_key, message_type, severity, "
        "source, message, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
        "ON CONFLICT (account_id, dedupe_key) WHERE cleared_at IS NULL DO UPDATE SET "
        "message_type = EXCLUDED.message_type, severity = EXCLUDED.severity, "
        "source = EXCLUDED.source, message = EXCLUDED.message, details = EXCLUDED.details "
        "RETURNING (xmax = 0) AS inserted",
        account_id,
        virtual_account_id,
        dedupe_key,
        message_type,
        severity,
        source,
        message,
        check_details(message_type, details),
    )
    return inserted


async def rename_pool_alerts(conn: asyncpg.Connection, va_id: int, name: str) -> None:
    """The open pool alerts of a renamed virtual account name it by its new name (their
    source; raised by the licenses service with keys "pool:<id>:...")."""
    await conn.execute(
        "UPDATE alerts SET source = $2 WHERE virtual_account_id = $1 AND cleared_at IS NULL "
        "AND starts_with(dedupe_key, 'pool:')",
        va_id,
        name,
    )


async def clear_alerts_except(
    conn: asyncpg.Connection, account_id: int, key_prefix: str, keep: list[str]
) -> None:
    """Clear the open alerts whose key starts with ``key_prefix`` and is not in ``keep``."""
    await conn.execute(
        "UPDATE alerts SET cleared_at = now() WHERE account_id = $1 AND cleared_at IS NULL "
        "AND starts_with(dedupe_key, $2) AND NOT (dedupe_key = ANY($3::text[]))",
        account_id,
        key_prefix,
        keep,
    )


async def list_alerts(
    conn: asyncpg.Connection, account_id: int, limit: int, offset: int, include_cleared: bool
) -> list[Alert]:
    rows = await conn.fetch(
        "SELECT al.id, a.name AS account, va.name AS virtual_account, al.message_type, "
        "al.severity, al.source, al.message, al.details, al.created_at, al.cleared_at "
        "FROM alerts al JOIN accounts a ON a.id = al.account_id "
        "LEFT JOIN virtual_accounts va ON va.id = al.virtual_account_id "
        "WHERE al.account_id = $1 AND ($2 OR al.cleared_at IS NULL) "
        "ORDER BY al.id DESC LIMIT $3 OFFSET $4",
        account_id,
        include_cleared,
        sql_limit(limit),
        offset,
    )
    return [Alert(**dict(r)) for r in rows]


async def count_alerts(conn: asyncpg.Connection, account_id: int, include_cleared: bool) -> int:
    count = await conn.fetchval(
        "SELECT count(*) FROM alerts WHERE account_id = $1 AND ($2 OR cleared_at IS NULL)",
        account_id,
        include_cleared,
    )
    return int(count)


async def accounts_with_open_alerts(conn: asyncpg.Connection, key_prefix: str) -> list[int]:
    """Ids of the accounts with an open alert whose key starts with ``key_prefix``."""
    rows = await conn.fetch(
        "SELECT DISTINCT account_id FROM alerts WHERE cleared_at IS NULL "
        "AND starts_with(dedupe_key, $1) ORDER BY account_id",
        key_prefix,
    )
    return [row["account_id"] for row in rows]


async def clear_alerts(conn: asyncpg.Connection, account_id: int, keys: list[str]) -> None:
    """Clear the open alerts with these keys (those not open are left as they are)."""
    await conn.execute(
        "UPDATE alerts SET cleared_at = now() WHERE account_id = $1 AND cleared_at IS NULL "
        "AND dedupe_key = ANY($2::text[])",
        account_id,
        keys,
    )
