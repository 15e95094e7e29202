"""Webhooks, their delivery queue (filled by a trigger on alerts: sql/016) and its log."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from satellite.domain.paging import sql_limit
from satellite.domain.webhooks import Attempt, Delivery, DueDelivery, Outcome, Webhook

_WEBHOOK = (
    "id, public_id, account_id, url, secret, events, alert_types, enabled, description, "
    "created_at, updated_at"
)
_DELIVERY = "id, event, state, created_at, next_attempt_at, attempts, finished_at"


async def insert_webhook(
    conn: asyncpg.Connection,
    *,
    public_id: uuid.UUID,
    account_id: int,
    url: str,
    secret: bytes,
    events: list[str],
    alert_types: list[str],
    enabled: bool,
    description: str,
) -> Webhook:
    row = await conn.fetchrow(
        "INSERT INTO webhooks (public_id, account_id, url, secret, events, alert_types, "
        "enabled, description) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
        f"RETURNING {_WEBHOOK}",
        public_id,
        account_id,
        url,
        secret,
        events,
        alert_types,
        enabled,
        description,
    )
    assert row is not None
    return Webhook(**dict(row))


async def get_webhook(
    conn: asyncpg.Connection, account_id: int, public_id: uuid.UUID, *, for_update: bool = False
) -> Webhook | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {_WEBHOOK} FROM webhooks WHERE account_id = $1 AND public_id = $2{lock}",
        account_id,
        public_id,
    )
    return None if row is None else Webhook(**dict(row))


async def list_webhooks(conn: asyncpg.Connection, account_id: int) -> list[Webhook]:
    rows = await conn.fetch(
        f"SELECT {_WEBHOOK} FROM webhooks WHERE account_id = $1 ORDER BY id",
        account_id,
    )
    return [Webhook(**dict(r)) for r in rows]


async def count_webhooks(conn: asyncpg.Connection, account_id: int) -> int:
    count = await conn.fetchval("SELECT count(*) FROM webhooks WHERE account_id = $1", account_id)
    return int(count)


async def update_webhook(
    conn: asyncpg.Connection,
    webhook_id: int,
    *,
    url: str,
    events: list[str],
    alert_types: list[str],
    enabled: bool,
    description: str,
) -> Webhook:
    row = await conn.fetchrow(
        "UPDATE webhooks SET url = $2, events = $3, alert_types = $4, enabled = $5, "
        f"description = $6, updated_at = now() WHERE id = $1 RETURNING {_WEBHOOK}",
        webhook_id,
        url,
        events,
        alert_types,
        enabled,
        description,
    )
    assert row is not None
    return Webhook(**dict(row))


async def set_secret(conn: asyncpg.Connection, webhook_id: int, secret: bytes) -> None:
    await conn.execute(
        "UPDATE webhooks SET secret = $2, updated_at = now() WHERE id = $1", webhook_id, secret
    )


async def delete_webhook(conn: asyncpg.Connection, webhook_id: int) -> None:
    await conn.execute("DELETE FROM webhooks WHERE id = $1", webhook_id)


async def cancel_pending(conn: asyncpg.Connection, webhook_id: int) -> int:
    """Cancel the webhook's deliveries not made yet (it was disabled); how many."""
    result = await conn.execute(
        "UPDATE webhook_deliveries SET state = 'cancelled', finished_at = now() "
        "WHERE webhook_id = $1 AND state = 'pending'",
        webhook_id,
    )
    return int(result.split()[-1])


async def enqueue(conn: asyncpg.Connection, webhook_id: int, event: str, payload: str) -> int:
    """A delivery of ``payload`` to the webhook (alerts enqueue theirs by trigger); its id."""
    delivery_id: int = await conn.fetchval(
        "INSERT INTO webhook_deliveries (webhook_id, event, payload) VALUES ($1, $2, $3) "
        "RETURNING id",
        webhook_id,
        event,
        payload,
    )
    return delivery_id


async def count_deliveries(conn: asyncpg.Connection, webhook_id: int) -> int:
    count = await conn.fetchval(
        "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1", webhook_id
    )
    return int(count)


async def list_deliveries(
    conn: asyncpg.Connection, webhook_id: int, limit: int, offset: int
) -> list[tuple[Delivery, list[Attempt]]]:
    """Newest first, each with its attempts in order."""
    rows = await conn.fetch(
        f"SELECT {_DELIVERY} FROM webhook_deliveries WHERE webhook_id = $1 "
        "ORDER BY id DESC LIMIT $2 OFFSET $3",
        webhook_id,
        sql_limit(limit),
        offset,
    )
    attempts = await conn.fetch(
        "SELECT delivery_id, attempted_at, node, status_code, error, duration_ms, "
        "response_excerpt FROM webhook_attempts WHERE delivery_id = ANY($1::bigint[]) "
        "ORDER BY id",
        [r["id"] for r in rows],
    )
    by_delivery: dict[int, list[Attempt]] = {r["id"]: [] for r in rows}
    for a in attempts:
        fields = dict(a)
        by_delivery[fields.pop("delivery_id")].append(Attempt(**fields))
    return [(Delivery(**dict(r)), by_delivery[r["id"]]) for r in rows]


async def claim_due(
    conn: asyncpg.Connection, batch: int, per_account: int, lease_seconds: float
) -> list[DueDelivery]:
    """Up to ``batch`` due deliveries of enabled webhooks, at most ``per_account`` of one
    account, each account's oldest first and the accounts taken in turn (so one account's
    backlog never holds up another's), leased to the caller: none is due again before the
    lease is over (so another node leaves it alone), and one claimed by a node that died is
    due again after it. Rows another node is claiming are skipped."""
    rows = await conn.fetch(
        # (Ranked first: a window function and FOR UPDATE do not go in one SELECT.)
        "WITH ranked AS (SELECT d.id, d.next_attempt_at, row_number() OVER "
        "(PARTITION BY w.account_id ORDER BY d.next_attempt_at, d.id) AS turn "
        "FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id AND w.enabled "
        "WHERE d.state = 'pending' AND d.next_attempt_at <= now()), "
        "due AS (SELECT d.id FROM webhook_deliveries d JOIN ranked r ON r.id = d.id "
        "WHERE r.turn <= $2 AND d.state = 'pending' AND d.next_attempt_at <= now() "
        "ORDER BY r.turn, r.next_attempt_at, r.id LIMIT $1 FOR UPDATE OF d SKIP LOCKED) "
        "UPDATE webhook_deliveries d SET attempts = d.attempts + 1, "
        "next_attempt_at = now() + make_interval(secs => $3) "
        "FROM due, webhooks w WHERE d.id = due.id AND w.id = d.webhook_id "
        "RETURNING d.id, d.webhook_id, w.public_id AS webhook, w.account_id, w.url, w.secret, "
        "d.event, d.payload, d.created_at, d.attempts",
        batch,
        per_account,
        lease_seconds,
    )
    return sorted((DueDelivery(**dict(r)) for r in rows), key=lambda d: d.id)


async def drop_over_cap(
    conn: asyncpg.Connection, most: int, node: str, note: str
) -> list[tuple[uuid.UUID, int]]:
    """Cancel the oldest of each webhook's waiting deliveries beyond its newest ``most``, each
    with ``note`` as its attempt log's last word; per webhook that had any, its public id and
    how many. Rows another transaction holds are left for the next call (no waiting, so no
    deadlock between two nodes doing this at once)."""
    rows = await conn.fetch(
        "WITH ranked AS (SELECT id, row_number() OVER "
        "(PARTITION BY webhook_id ORDER BY id DESC) AS newest "
        "FROM webhook_deliveries WHERE state = 'pending'), "
        "doomed AS (SELECT d.id FROM webhook_deliveries d JOIN ranked r ON r.id = d.id "
        "WHERE r.newest > $1 AND d.state = 'pending' FOR UPDATE OF d SKIP LOCKED), "
        "dropped AS (UPDATE webhook_deliveries d SET state = 'cancelled', finished_at = now() "
        "FROM doomed WHERE d.id = doomed.id RETURNING d.id, d.webhook_id), "
        "noted AS (INSERT INTO webhook_attempts (delivery_id, attempted_at, node, error, "
        "duration_ms) SELECT id, now(), $2, $3, 0 FROM dropped) "
        "SELECT w.public_id, count(*) AS dropped FROM dropped "
        "JOIN webhooks w ON w.id = dropped.webhook_id GROUP BY w.public_id",
        most,
        node,
        note,
    )
    return [(r["public_id"], int(r["dropped"])) for r in rows]


async def waiting_delivery(conn: asyncpg.Connection, webhook_id: int, event: str) -> int | None:
    """The id of the webhook's delivery of ``event`` that waits (or is being tried), if any."""
    found: int | None = await conn.fetchval(
        "SELECT id FROM webhook_deliveries WHERE webhook_id = $1 AND event = $2 "
        "AND state = 'pending' ORDER BY id LIMIT 1",
        webhook_id,
        event,
    )
    return found


async def lock_pending(conn: asyncpg.Connection, delivery_id: int) -> bool:
    """Lock the delivery for its outcome; False when it is no longer pending (its webhook
    was deleted, or disabled, while it was being tried)."""
    state: str | None = await conn.fetchval(
        "SELECT state FROM webhook_deliveries WHERE id = $1 FOR UPDATE", delivery_id
    )
    return state == "pending"


async def record_attempt(
    conn: asyncpg.Connection, delivery_id: int, node: str, outcome: Outcome
) -> None:
    await conn.execute(
        "INSERT INTO webhook_attempts (delivery_id, attempted_at, node, status_code, error, "
        "duration_ms, response_excerpt) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        delivery_id,
        outcome.attempted_at,
        node,
        outcome.status_code,
        outcome.error,
        outcome.duration_ms,
        outcome.response_excerpt,
    )


async def finish(conn: asyncpg.Connection, delivery_id: int, state: str) -> None:
    """The delivery delivered or failed for good."""
    await conn.execute(
        "UPDATE webhook_deliveries SET state = $2, finished_at = now() WHERE id = $1",
        delivery_id,
        state,
    )


async def retry_at(conn: asyncpg.Connection, delivery_id: int, at: dt.datetime) -> None:
    await conn.execute(
        "UPDATE webhook_deliveries SET next_attempt_at = $2 WHERE id = $1", delivery_id, at
    )


async def forget_finished(conn: asyncpg.Connection, before: dt.datetime, limit: int) -> int:
    """Forget up to ``limit`` deliveries (and their attempts) finished before ``before``."""
    result = await conn.execute(
        "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries "
        "WHERE state <> 'pending' AND finished_at < $1 ORDER BY finished_at LIMIT $2)",
        before,
        limit,
    )
    return int(result.split()[-1])
