"""Product instances, their usage and its history, and used device nonces."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg

from satellite.domain.models import ProductInstance, ProductStatus, UsageRecord

_COLUMNS = (
    "p.id::text AS id, p.virtual_account_id, va.name AS virtual_account, va.account_id, "
    "p.udi_pid, p.udi_serial, p.udi_uuid, p.product_type, p.product_version, p.hostname, "
    "p.ip_address, p.public_jwk, p.export_controlled, p.status, p.registered_at, "
    "p.last_contact_at, p.certificate_expires_at, p.authorization_expires_at, p.ended_at"
)
_FROM = "FROM product_instances p JOIN virtual_accounts va ON va.id = p.virtual_account_id"


def _product(row: asyncpg.Record) -> ProductInstance:
    return ProductInstance(**dict(row))


async def use_nonce(conn: asyncpg.Connection, nonce: str) -> bool:
    """Record ``nonce`` as used; False when it was used before (a replay)."""
    result = await conn.execute(
        "INSERT INTO used_nonces (nonce) VALUES ($1) ON CONFLICT DO NOTHING", nonce
    )
    return result.endswith(" 1")


async def forget_used_nonces(conn: asyncpg.Connection, before: dt.datetime) -> int:
    """Nonces issued before ``before`` are refused as stale anyway: no need to keep them.

    Return how many were forgotten.
    """
    result = await conn.execute("DELETE FROM used_nonces WHERE used_at < $1", before)
    return int(result.rsplit(" ", 1)[1])


async def get_product(
    conn: asyncpg.Connection, product_id: str, *, for_update: bool = False
) -> ProductInstance | None:
    try:
        key = uuid.UUID(product_id)
    except ValueError:
        return None
    lock = " FOR UPDATE OF p" if for_update else ""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} {_FROM} WHERE p.id = $1{lock}", key)
    return _product(row) if row else None


async def live_product_by_udi(
    conn: asyncpg.Connection, pid: str, serial: str
) -> ProductInstance | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} {_FROM} WHERE p.udi_pid = $1 AND p.udi_serial = $2 "
        f"AND p.status = 'registered' FOR UPDATE OF p",
        pid,
        serial,
    )
    return _product(row) if row else None


async def insert_product(
    conn: asyncpg.Connection,
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
) -> str:
    product_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO product_instances (id, virtual_account_id, udi_pid, udi_serial, udi_uuid, "
        "product_type, product_version, hostname, ip_address, public_jwk, export_controlled, "
        "status, registered_at, last_contact_at, certificate_expires_at, "
        "authorization_expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
        "'registered', $12, $12, $13, $14)",
        product_id,
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
    return str(product_id)


async def reregister_product(
    conn: asyncpg.Connection,
    product_id: str,
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
) -> None:
    await conn.execute(
        "UPDATE product_instances SET virtual_account_id = $2, udi_uuid = $3, product_type = $4, "
        "product_version = $5, hostname = $6, ip_address = $7, public_jwk = $8, "
        "export_controlled = $9, registered_at = $10, last_contact_at = $10, "
        "certificate_expires_at = $11, authorization_expires_at = $12 WHERE id = $1",
        uuid.UUID(product_id),
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


async def touch(
    conn: asyncpg.Connection,
    product_id: str,
    now: dt.datetime,
    *,
    authorization_expires_at: dt.datetime | None = None,
    certificate_expires_at: dt.datetime | None = None,
    public_jwk: dict[str, Any] | None = None,
) -> None:
    """Record contact, and whatever the request renewed."""
    await conn.execute(
        "UPDATE product_instances SET last_contact_at = $2, "
        "authorization_expires_at = coalesce($3, authorization_expires_at), "
        "certificate_expires_at = coalesce($4, certificate_expires_at), "
        "public_jwk = coalesce($5, public_jwk) WHERE id = $1",
        uuid.UUID(product_id),
        now,
        authorization_expires_at,
        certificate_expires_at,
        public_jwk,
    )


async def replace_usage(
    conn: asyncpg.Connection, product_id: str, usage: dict[str, int], now: dt.datetime
) -> None:
    """The product's usage becomes ``usage``, the report joins the history, and the
    contact is recorded: one statement, one round trip (this is the busiest request)."""
    await conn.execute(
        "WITH gone AS (DELETE FROM product_usage WHERE product_id = $1 "
        "  AND NOT (tag = ANY($2::text[]))), "
        "set AS (INSERT INTO product_usage (product_id, tag, count) "
        "  SELECT $1, u.tag, u.count FROM unnest($2::text[], $3::int[]) AS u(tag, count) "
        "  ON CONFLICT (product_id, tag) DO UPDATE SET count = EXCLUDED.count), "
        "history AS (INSERT INTO usage_reports (product_id, reported_at, usage) "
        "  VALUES ($1, $4, $5)) "
        "UPDATE product_instances SET last_contact_at = $4 WHERE id = $1",
        uuid.UUID(product_id),
        list(usage),
        list(usage.values()),
        now,
        usage,
    )


async def usage_of(conn: asyncpg.Connection, product_id: str) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT tag, count FROM product_usage WHERE product_id = $1 ORDER BY tag",
        uuid.UUID(product_id),
    )
    return {row["tag"]: row["count"] for row in rows}


async def end_product(
    conn: asyncpg.Connection, product_id: str, status: str, now: dt.datetime
) -> None:
    """Deregistered or removed: its usage is released at once."""
    key = uuid.UUID(product_id)
    await conn.execute("DELETE FROM product_usage WHERE product_id = $1", key)
    await conn.execute(
        "UPDATE product_instances SET status = $2, ended_at = $3 WHERE id = $1",
        key,
        status,
        now,
    )


async def in_use_by_virtual_account(
    conn: asyncpg.Connection, va_ids: list[int], now: dt.datetime
) -> dict[int, dict[str, int]]:
    """Per virtual account and tag: usage of registered products whose authorization and
    ID certificate hold (an expired one stops counting before the job ends it)."""
    rows = await conn.fetch(
        "SELECT p.virtual_account_id AS va, u.tag, sum(u.count)::bigint AS total "
        "FROM product_usage u JOIN product_instances p ON p.id = u.product_id "
        "WHERE p.virtual_account_id = ANY($1::bigint[]) AND p.status = 'registered' "
        "AND p.authorization_expires_at > $2 AND p.certificate_expires_at > $2 "
        "GROUP BY p.virtual_account_id, u.tag",
        va_ids,
        now,
    )
    result: dict[int, dict[str, int]] = {}
    for row in rows:
        result.setdefault(row["va"], {})[row["tag"]] = int(row["total"])
    return result


# --- administration ------------------------------------------------------------------------


def _uuids(product_ids: list[str]) -> list[uuid.UUID]:
    """The ids that are UUIDs at all (no other can name a product)."""
    keys = []
    for product_id in product_ids:
        try:
            keys.append(uuid.UUID(product_id))
        except ValueError:
            continue
    return keys


async def list_products(
    conn: asyncpg.Connection,
    va_id: int,
    *,
    status: ProductStatus | None,
    udi_pid: str | None,
    udi_serial: str | None,
    hostname: str | None,
    product_type: str | None,
    limit: int,
    offset: int,
) -> tuple[int, list[ProductInstance]]:
    """Products of a virtual account in order of registration: the total and one page.

    ``status`` None means every status; ``hostname`` matches a part, ignoring case.
    """
    where = (
        "p.virtual_account_id = $1 AND ($2::text IS NULL OR p.status = $2) "
        "AND ($3::text IS NULL OR p.udi_pid = $3) AND ($4::text IS NULL OR p.udi_serial = $4) "
        "AND ($5::text IS NULL OR strpos(lower(p.hostname), lower($5)) > 0) "
        "AND ($6::text IS NULL OR p.product_type = $6)"
    )
    args = (va_id, status, udi_pid, udi_serial, hostname, product_type)
    total = await conn.fetchval(f"SELECT count(*) FROM product_instances p WHERE {where}", *args)
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} {_FROM} WHERE {where} ORDER BY p.registered_at, p.id "
        f"LIMIT $7 OFFSET $8",
        *args,
        limit,
        offset,
    )
    return int(total), [_product(r) for r in rows]


async def usage_of_products(
    conn: asyncpg.Connection, product_ids: list[str]
) -> dict[str, dict[str, int]]:
    """Current usage per product (products without usage are absent)."""
    rows = await conn.fetch(
        "SELECT product_id::text AS product, tag, count FROM product_usage "
        "WHERE product_id = ANY($1::uuid[]) ORDER BY product_id, tag",
        _uuids(product_ids),
    )
    result: dict[str, dict[str, int]] = {}
    for row in rows:
        result.setdefault(row["product"], {})[row["tag"]] = row["count"]
    return result


async def usage_history(conn: asyncpg.Connection, product_id: str, limit: int) -> list[UsageRecord]:
    """The product's last ``limit`` usage reports, newest first."""
    rows = await conn.fetch(
        "SELECT id, reported_at, usage FROM usage_reports WHERE product_id = $1 "
        "ORDER BY id DESC LIMIT $2",
        uuid.UUID(product_id),
        limit,
    )
    return [UsageRecord(**dict(r)) for r in rows]


async def registered_products_of_virtual_account(
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
        f"ORDER BY p.id FOR UPDATE OF p",
        va_id,
        _uuids(ids),
        [pid for pid, _ in udis],
        [serial for _, serial in udis],
    )
    return [_product(r) for r in rows]


async def move_products(conn: asyncpg.Connection, product_ids: list[str], va_id: int) -> None:
    """The products (and so their usage) now belong to virtual account ``va_id``."""
    await conn.execute(
        "UPDATE product_instances SET virtual_account_id = $2 WHERE id = ANY($1::uuid[])",
        _uuids(product_ids),
        va_id,
    )


async def forget_ended_products(conn: asyncpg.Connection, va_id: int) -> int:
    """Delete the deregistered and removed products of a virtual account, with their usage
    history; the number deleted. (Registered products are never forgotten.)"""
    result = await conn.execute(
        "DELETE FROM product_instances WHERE virtual_account_id = $1 AND status <> 'registered'",
        va_id,
    )
    return int(result.rsplit(" ", 1)[1])
