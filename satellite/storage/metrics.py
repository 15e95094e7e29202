"""The counts the metrics show that only the database knows, each one aggregated query."""

from __future__ import annotations

import asyncpg


async def limit_statements(conn: asyncpg.Connection, milliseconds: int) -> None:
    """Statements of the rest of this transaction are cancelled after ``milliseconds``."""
    await conn.execute("SELECT set_config('statement_timeout', $1, true)", f"{milliseconds}ms")


async def product_instances_by_status(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT status, count(*) AS n FROM product_instances GROUP BY status ORDER BY status"
    )
    return {row["status"]: int(row["n"]) for row in rows}


async def open_alerts_by_type(conn: asyncpg.Connection) -> list[tuple[str, str, int]]:
    """(message type, severity, how many are open)."""
    rows = await conn.fetch(
        "SELECT message_type, severity, count(*) AS n FROM alerts WHERE cleared_at IS NULL "
        "GROUP BY message_type, severity ORDER BY message_type, severity"
    )
    return [(row["message_type"], row["severity"], int(row["n"])) for row in rows]


async def pending_deliveries_by_account(
    conn: asyncpg.Connection,
) -> list[tuple[str, int, float]]:
    """(account name, pending webhook deliveries, seconds since the oldest one's event) of
    each account with a delivery pending."""
    rows = await conn.fetch(
        "SELECT a.name, count(*) AS n, "
        "extract(epoch FROM now() - min(d.created_at))::float8 AS oldest "
        "FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id "
        "JOIN accounts a ON a.id = w.account_id WHERE d.state = 'pending' "
        "GROUP BY a.name ORDER BY a.name"
    )
    return [(row["name"], int(row["n"]), max(0.0, float(row["oldest"]))) for row in rows]
