"""Export authorization keys granted to products (sql/007_export_keys.sql)."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from satellite.domain.models import ExportKey, ExportKeyEndReason, ExportKeyStatus
from satellite.domain.paging import sql_limit
from satellite.storage.ids import uuids

_COLUMNS = (
    "k.id::text AS id, k.product_id::text AS product_id, k.virtual_account_id, "
    "va.name AS virtual_account, p.udi_pid, p.udi_serial, p.udi_uuid, k.feature, k.tag, "
    "k.status, k.granted_at, k.ended_at, k.end_reason"
)
_FROM = (
    "FROM export_keys k JOIN product_instances p ON p.id = k.product_id "
    "JOIN virtual_accounts va ON va.id = k.virtual_account_id"
)


def _key(row: asyncpg.Record) -> ExportKey:
    return ExportKey(**dict(row))


async def insert_key(
    conn: asyncpg.Connection,
    *,
    product_instance_id: str,
    va_id: int,
    feature: str,
    tag: str,
    now: dt.datetime,
) -> ExportKey:
    """A new granted key (the caller holds the product and its virtual account locked, so
    that no other grant of the product's feature can commit meanwhile)."""
    key_id = await conn.fetchval(
        "INSERT INTO export_keys (id, product_id, virtual_account_id, feature, tag, status, "
        "granted_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'granted', $6, $6) RETURNING id",
        uuid.uuid4(),
        uuid.UUID(product_instance_id),
        va_id,
        feature,
        tag,
        now,
    )
    row = await conn.fetchrow(f"SELECT {_COLUMNS} {_FROM} WHERE k.id = $1", key_id)
    assert row is not None
    return _key(row)


async def live_keys_of_instances(
    conn: asyncpg.Connection, product_instance_ids: list[str]
) -> dict[str, list[ExportKey]]:
    """The granted keys of the products, by product (products without any are absent)."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} {_FROM} WHERE k.product_id = ANY($1::uuid[]) "
        f"AND k.status = 'granted' ORDER BY k.product_id, k.feature",
        uuids(product_instance_ids),
    )
    result: dict[str, list[ExportKey]] = {}
    for row in rows:
        key = _key(row)
        result.setdefault(key.product_id, []).append(key)
    return result


async def end_keys(
    conn: asyncpg.Connection,
    product_instance_id: str,
    status: ExportKeyStatus,
    reason: ExportKeyEndReason,
    now: dt.datetime,
    *,
    feature: str | None = None,
) -> list[ExportKey]:
    """End the product's granted keys (only the one of ``feature`` if given): their
    licenses go back to the pool. The keys as they were ended."""
    rows = await conn.fetch(
        "UPDATE export_keys SET status = $2, end_reason = $3, ended_at = $4, updated_at = $4 "
        "WHERE product_id = $1 AND status = 'granted' AND ($5::text IS NULL OR feature = $5) "
        "RETURNING id",
        uuid.UUID(product_instance_id),
        status,
        reason,
        now,
        feature,
    )
    if not rows:
        return []
    ended = await conn.fetch(
        f"SELECT {_COLUMNS} {_FROM} WHERE k.id = ANY($1::uuid[]) ORDER BY k.feature",
        [row["id"] for row in rows],
    )
    return [_key(row) for row in ended]


async def granted_by_virtual_account(
    conn: asyncpg.Connection, va_ids: list[int]
) -> dict[int, dict[str, int]]:
    """Per virtual account and tag: the licenses granted as export keys."""
    rows = await conn.fetch(
        "SELECT va, tag, total FROM exported_of($1::bigint[])",  # (sql/023)
        va_ids,
    )
    result: dict[int, dict[str, int]] = {}
    for row in rows:
        result.setdefault(row["va"], {})[row["tag"]] = int(row["total"])
    return result


async def keys_of_virtual_account(
    conn: asyncpg.Connection, va_id: int, *, granted_only: bool, limit: int, offset: int
) -> tuple[int, list[ExportKey]]:
    """The keys taken from the virtual account's pool, in order of grant: the total and
    one page."""
    where = "k.virtual_account_id = $1 AND (NOT $2 OR k.status = 'granted')"
    total = await conn.fetchval(
        f"SELECT count(*) FROM export_keys k WHERE {where}", va_id, granted_only
    )
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} {_FROM} WHERE {where} ORDER BY k.granted_at, k.id LIMIT $3 OFFSET $4",
        va_id,
        granted_only,
        sql_limit(limit),
        offset,
    )
    return int(total), [_key(row) for row in rows]


async def keys_of_instance(
    conn: asyncpg.Connection, product_instance_id: str, va_id: int
) -> list[ExportKey]:
    """Every key the product was granted out of virtual account ``va_id``'s pool, granted
    ones and ended ones, in order of grant. (A product that registered again elsewhere
    keeps its id: the keys of its time in another virtual account, or account, are not
    this one's to show.)"""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} {_FROM} WHERE k.product_id = ANY($1::uuid[]) "
        f"AND k.virtual_account_id = $2 ORDER BY k.granted_at, k.id",
        uuids([product_instance_id]),
        va_id,
    )
    return [_key(row) for row in rows]
