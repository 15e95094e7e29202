"""Registered products whose authorization or ID certificate runs out: the jobs' queries.

Rows are locked in id order, so two jobs that lock overlapping products cannot deadlock.
"""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from satellite.domain.expiry import ProductInstanceTimers
from satellite.storage.usage_totals import recount

# Scalar subqueries rather than a join, for rows locked FOR UPDATE: see storage.product_instances.
_COLUMNS = (
    "p.id::text AS id, "
    "(SELECT account_id FROM virtual_accounts WHERE id = p.virtual_account_id) AS account_id, "
    "p.virtual_account_id, "
    "(SELECT name FROM virtual_accounts WHERE id = p.virtual_account_id) AS virtual_account, "
    "p.udi_pid, p.udi_serial, p.hostname, p.certificate_expires_at, "
    "p.authorization_expires_at, p.authorization_lapse_recorded"
)
_FROM = "FROM product_instances p"


def _timers(row: asyncpg.Record) -> ProductInstanceTimers:
    return ProductInstanceTimers(**dict(row))


async def lapsed_authorizations(
    conn: asyncpg.Connection, now: dt.datetime
) -> list[ProductInstanceTimers]:
    """Registered products whose authorization expired at or before ``now``; locked.

    A product whose certificate expired too is left to the registration's expiry.
    """
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} {_FROM} WHERE p.status = 'registered' "
        f"AND p.authorization_expires_at <= $1 AND p.certificate_expires_at > $1 "
        f"ORDER BY p.id FOR UPDATE",
        now,
    )
    return [_timers(r) for r in rows]


async def record_authorization_lapses(
    conn: asyncpg.Connection, product_instance_ids: list[str], now: dt.datetime
) -> None:
    """Remember that the current authorization of these products lapsed (and was recorded);
    their usage stops counting."""
    await recount(conn, product_instance_ids, now)
    await conn.execute(
        "UPDATE product_instances SET authorization_lapse_recorded = authorization_expires_at "
        "WHERE id = ANY($1::uuid[])",
        [uuid.UUID(product_instance_id) for product_instance_id in product_instance_ids],
    )


async def end_expired_registrations(
    conn: asyncpg.Connection, now: dt.datetime
) -> list[ProductInstanceTimers]:
    """Registered products whose certificate expired at or before ``now`` become
    'registration_expired', ended when their certificate expired, and their usage stops
    counting; the products ended."""
    rows = await conn.fetch(
        f"WITH ended AS (UPDATE product_instances SET status = 'registration_expired', "
        f"ended_at = certificate_expires_at WHERE id IN (SELECT id FROM product_instances "
        f"WHERE status = 'registered' AND certificate_expires_at <= $1 ORDER BY id FOR UPDATE) "
        f"RETURNING *) "
        f"SELECT {_COLUMNS} FROM ended p "
        f"ORDER BY p.id",
        now,
    )
    ended = [_timers(r) for r in rows]
    await recount(conn, [instance.id for instance in ended], now)
    return ended


async def certificates_expiring(
    conn: asyncpg.Connection, now: dt.datetime, until: dt.datetime
) -> list[ProductInstanceTimers]:
    """Registered products whose certificate is valid at ``now`` but not after ``until``."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} {_FROM} WHERE p.status = 'registered' "
        f"AND p.certificate_expires_at > $1 AND p.certificate_expires_at <= $2 ORDER BY p.id",
        now,
        until,
    )
    return [_timers(r) for r in rows]
