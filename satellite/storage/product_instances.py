"""Product instances, their usage and its history, and used device nonces (the usage
totals they count in: usage_totals.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg

from satellite.domain.models import ProductInstance, ProductInstanceStatus, UsageRecord
from satellite.domain.paging import sql_limit
from satellite.storage.errors import unique_as_conflict
from satellite.storage.ids import uuids
from satellite.storage.usage_totals import recount

# The virtual account's name and account come from scalar subqueries, not a join: when a
# row locked FOR UPDATE was changed meanwhile (moved to another virtual account, say),
# PostgreSQL re-evaluates the projection on the new row version, whereas a joined row
# would stay the old one and the join would drop the product.
_COLUMNS = (
    "p.id::text AS id, p.virtual_account_id, "
    "(SELECT name FROM virtual_accounts WHERE id = p.virtual_account_id) AS virtual_account, "
    "(SELECT account_id FROM virtual_accounts WHERE id = p.virtual_account_id) AS account_id, "
    "p.udi_pid, p.udi_serial, p.udi_uuid, p.product_type, p.product_version, p.hostname, "
    "p.ip_address, p.public_jwk, p.export_controlled, p.status, p.registered_at, "
    "p.last_contact_at, p.certificate_expires_at, p.authorization_expires_at, p.ended_at"
)
_FROM = "FROM product_instances p"


def _instance(row: asyncpg.Record) -> ProductInstance:
    return ProductInstance(**dict(row))


async def lock_instance_using_nonce(
    conn: asyncpg.Connection, product_instance_id: str, nonce: str
) -> tuple[ProductInstance | None, bool]:
    """The product, locked for update, and whether ``nonce`` was still unused; it is used
    now (the caller's transaction undoes that if the request is refused). One round trip:
    every signed device request starts here."""
    try:
        key = uuid.UUID(product_instance_id)
    except ValueError:
        return None, False
    row = await conn.fetchrow(
        f"WITH used AS (INSERT INTO used_nonces (nonce) VALUES ($2) ON CONFLICT DO NOTHING "
        f"RETURNING 1) SELECT {_COLUMNS}, EXISTS (SELECT 1 FROM used) AS nonce_was_unused "
        f"{_FROM} WHERE p.id = $1 FOR UPDATE",
        key,
        nonce,
    )
    if row is None:
        return None, False
    fields = dict(row)
    unused = bool(fields.pop("nonce_was_unused"))
    return ProductInstance(**fields), unused


async def forget_usage_reports(conn: asyncpg.Connection, before: dt.datetime, limit: int) -> int:
    """Delete up to ``limit`` usage reports made before ``before``, oldest first; the number
    deleted."""
    result = await conn.execute(
        "DELETE FROM usage_reports WHERE id IN (SELECT id FROM usage_reports "
        "WHERE reported_at < $1 ORDER BY reported_at LIMIT $2)",
        before,
        limit,
    )
    return int(result.rsplit(" ", 1)[1])


async def get_instance(
    conn: asyncpg.Connection, product_instance_id: str, *, for_update: bool = False
) -> ProductInstance | None:
    try:
        key = uuid.UUID(product_instance_id)
    except ValueError:
        return None
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} {_FROM} WHERE p.id = $1{lock}", key)
    return _instance(row) if row else None


async def get_instances(
    conn: asyncpg.Connection, product_instance_ids: list[str]
) -> dict[str, ProductInstance]:
    """The ones of ``product_instance_ids`` that exist, by id: one query for a page."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} {_FROM} WHERE p.id = ANY($1::uuid[])", uuids(product_instance_ids)
    )
    return {row["id"]: _instance(row) for row in rows}


async def live_instance_by_udi(
    conn: asyncpg.Connection, udi_pid: str, udi_serial: str
) -> ProductInstance | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} {_FROM} WHERE p.udi_pid = $1 AND p.udi_serial = $2 "
        f"AND p.status = 'registered' FOR UPDATE",
        udi_pid,
        udi_serial,
    )
    return _instance(row) if row else None


async def insert_instance(
    conn: asyncpg.Connection,
    product_instance_id: str,
    *,
    va_id: int,
    udi: tuple[str, str, str],
    product_type: str,
    product_version: str,
    hostname: str | None,
    ip_address: str | None,
    public_jwk: dict[str, Any],
    export_controlled: bool,
    now: dt.datetime,
    certificate_expires_at: dt.datetime,
    authorization_expires_at: dt.datetime,
) -> ProductInstance:
    """A newly registered product. Its usage counts in its virtual account from now on
    (it has none yet, so the totals do not change: counted_in is set right away)."""
    # A concurrent registration or reservation of the same UDI committed first.
    with unique_as_conflict(
        f"PID:{udi[0]} SN:{udi[1]} was registered or reserved at the same time: try again"
    ):
        row = await conn.fetchrow(
            "INSERT INTO product_instances AS p (id, virtual_account_id, udi_pid, udi_serial, "
            "udi_uuid, product_type, product_version, hostname, ip_address, public_jwk, "
            "export_controlled, status, registered_at, last_contact_at, certificate_expires_at, "
            "authorization_expires_at, counted_in) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
            f"$10, $11, 'registered', $12, $12, $13, $14, $2) RETURNING {_COLUMNS}",
            uuid.UUID(product_instance_id),
            va_id,
            *udi,
            product_type,
            product_version,
            hostname,
            ip_address,
            public_jwk,
            export_controlled,
            now,
            certificate_expires_at,
            authorization_expires_at,
        )
    assert row is not None
    return _instance(row)


async def reregister_instance(
    conn: asyncpg.Connection,
    product_instance_id: str,
    *,
    va_id: int,
    udi_uuid: str,
    product_type: str,
    product_version: str,
    hostname: str | None,
    ip_address: str | None,
    public_jwk: dict[str, Any],
    export_controlled: bool,
    now: dt.datetime,
    certificate_expires_at: dt.datetime,
    authorization_expires_at: dt.datetime,
) -> ProductInstance:
    """The live product registered anew (the caller holds its row locked), maybe into
    another virtual account, where its usage then counts."""
    await conn.execute(
        "UPDATE product_instances SET virtual_account_id = $2, udi_uuid = $3, product_type = $4, "
        "product_version = $5, hostname = $6, ip_address = $7, public_jwk = $8, "
        "export_controlled = $9, registered_at = $10, last_contact_at = $10, "
        "certificate_expires_at = $11, authorization_expires_at = $12 WHERE id = $1",
        uuid.UUID(product_instance_id),
        va_id,
        udi_uuid,
        product_type,
        product_version,
        hostname,
        ip_address,
        public_jwk,
        export_controlled,
        now,
        certificate_expires_at,
        authorization_expires_at,
    )
    await recount(conn, [product_instance_id], now)
    instance = await get_instance(conn, product_instance_id)
    assert instance is not None
    return instance


async def touch(
    conn: asyncpg.Connection,
    product_instance_id: str,
    now: dt.datetime,
    *,
    authorization_expires_at: dt.datetime | None = None,
    certificate_expires_at: dt.datetime | None = None,
    public_jwk: dict[str, Any] | None = None,
) -> None:
    """Record contact, and whatever the request renewed (a renewed authorization counts
    the product's usage again)."""
    await conn.execute(
        "UPDATE product_instances SET last_contact_at = $2, "
        "authorization_expires_at = coalesce($3, authorization_expires_at), "
        "certificate_expires_at = coalesce($4, certificate_expires_at), "
        "public_jwk = coalesce($5, public_jwk) WHERE id = $1",
        uuid.UUID(product_instance_id),
        now,
        authorization_expires_at,
        certificate_expires_at,
        public_jwk,
    )
    if authorization_expires_at is not None or certificate_expires_at is not None:
        await recount(conn, [product_instance_id], now)


async def forget_host_identity(conn: asyncpg.Connection, product_instance_id: str) -> None:
    """The product's host name and IP address are no longer shared (the change stamps the
    row for the next sync request, sql/008_sync.sql)."""
    await conn.execute(
        "UPDATE product_instances SET hostname = NULL, ip_address = NULL WHERE id = $1",
        uuid.UUID(product_instance_id),
    )


async def usage_of(conn: asyncpg.Connection, product_instance_id: str) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT tag, count FROM product_usage WHERE product_id = $1 ORDER BY tag",
        uuid.UUID(product_instance_id),
    )
    return {row["tag"]: row["count"] for row in rows}


async def end_instance(
    conn: asyncpg.Connection, product_instance_id: str, status: str, now: dt.datetime
) -> None:
    """Deregistered or removed: its usage is released at once."""
    key = uuid.UUID(product_instance_id)
    await conn.execute(
        "UPDATE product_instances SET status = $2, ended_at = $3 WHERE id = $1",
        key,
        status,
        now,
    )
    await recount(conn, [product_instance_id], now)
    await conn.execute("DELETE FROM product_usage WHERE product_id = $1", key)


# --- administration ------------------------------------------------------------------------


async def list_instances(
    conn: asyncpg.Connection,
    va_id: int,
    *,
    status: ProductInstanceStatus | None,
    udi_pid: str | None,
    udi_serial: str | None,
    hostname: str | None,
    product_type: str | None,
    limit: int,
    offset: int,
) -> tuple[int, list[ProductInstance]]:
    """Products of a virtual account in order of registration: the total and one page.

    ``status`` None means every status; ``hostname`` matches a part, ignoring case. Only
    the filters given are in the text: each combination is a statement planned for it
    (with ``$n IS NULL OR ...`` a generic plan could not use the indexes of sql/014).
    """
    conditions, args = ["p.virtual_account_id = $1"], list[object]([va_id])
    for condition, value in (
        ("p.status = ${}", status),
        ("p.udi_pid = ${}", udi_pid),
        ("p.udi_serial = ${}", udi_serial),
        ("strpos(lower(p.hostname), lower(${})) > 0", hostname),
        ("p.product_type = ${}", product_type),
    ):
        if value is not None:
            args.append(value)
            conditions.append(condition.format(len(args)))
    where = " AND ".join(conditions)
    total = await conn.fetchval(f"SELECT count(*) FROM product_instances p WHERE {where}", *args)
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} {_FROM} WHERE {where} ORDER BY p.registered_at, p.id "
        f"LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}",
        *args,
        sql_limit(limit),
        offset,
    )
    return int(total), [_instance(r) for r in rows]


async def usage_of_instances(
    conn: asyncpg.Connection, product_instance_ids: list[str]
) -> dict[str, dict[str, int]]:
    """Current usage per product (products without usage are absent)."""
    rows = await conn.fetch(
        "SELECT product_id::text AS product, tag, count FROM product_usage "
        "WHERE product_id = ANY($1::uuid[]) ORDER BY product_id, tag",
        uuids(product_instance_ids),
    )
    result: dict[str, dict[str, int]] = {}
    for row in rows:
        result.setdefault(row["product"], {})[row["tag"]] = row["count"]
    return result


async def usage_history(
    conn: asyncpg.Connection, product_instance_id: str, limit: int
) -> list[UsageRecord]:
    """The product's last ``limit`` usage reports, newest first."""
    rows = await conn.fetch(
        "SELECT id, reported_at, usage FROM usage_reports WHERE product_id = $1 "
        "ORDER BY id DESC LIMIT $2",
        uuid.UUID(product_instance_id),
        limit,
    )
    return [UsageRecord(**dict(r)) for r in rows]


async def registered_instances_of_virtual_account(
    conn: asyncpg.Connection,
    va_id: int,
    *,
    ids: list[str],
    udis: list[tuple[str, str]],
) -> list[ProductInstance]:
    """Registered products of the virtual account named by id or by (PID, serial number),
    locked for update in one order (so that two such requests cannot deadlock)."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} {_FROM} WHERE p.virtual_account_id = $1 "
        f"AND p.status = 'registered' AND (p.id = ANY($2::uuid[]) "
        f"OR (p.udi_pid, p.udi_serial) IN (SELECT * FROM unnest($3::text[], $4::text[]))) "
        f"ORDER BY p.id FOR UPDATE",
        va_id,
        uuids(ids),
        [udi_pid for udi_pid, _ in udis],
        [udi_serial for _, udi_serial in udis],
    )
    return [_instance(r) for r in rows]


async def move_instances(
    conn: asyncpg.Connection, product_instance_ids: list[str], va_id: int, now: dt.datetime
) -> None:
    """The products (and so their usage) now belong to virtual account ``va_id``."""
    await conn.execute(
        "UPDATE product_instances SET virtual_account_id = $2 WHERE id = ANY($1::uuid[])",
        uuids(product_instance_ids),
        va_id,
    )
    await recount(conn, product_instance_ids, now)


async def forget_ended_instances(conn: asyncpg.Connection, va_id: int) -> int:
    """Delete the deregistered and removed products of a virtual account, with their usage
    history; the number deleted. (Registered products are never forgotten.)"""
    result = await conn.execute(
        "DELETE FROM product_instances WHERE virtual_account_id = $1 AND status <> 'registered'",
        va_id,
    )
    mirrored = await conn.execute(  # (at an upstream: its satellites' ended products)
        "DELETE FROM satellite_products WHERE virtual_account_id = $1 AND status <> 'registered'",
        va_id,
    )
    return int(result.rsplit(" ", 1)[1]) + int(mirrored.rsplit(" ", 1)[1])


async def public_jwk_of(
    conn: asyncpg.Connection, product_instance_id: str
) -> dict[str, Any] | None:
    """The product's key (a JWK), that its requests are verified with; None: no such
    product instance."""
    try:
        key = uuid.UUID(product_instance_id)
    except ValueError:
        return None
    jwk: dict[str, Any] | None = await conn.fetchval(
        "SELECT public_jwk FROM product_instances WHERE id = $1", key
    )
    return jwk
