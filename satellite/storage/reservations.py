"""Specific license reservations and the pool lines their licenses come from."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from satellite.domain.reservation import FAR_FUTURE, Reservation, ReservedLine
from satellite.storage.errors import unique_as_conflict
from satellite.storage.usage_totals import recount

_COLUMNS = (
    "r.product_id::text AS product_id, r.public_key, r.request_code, r.status, "
    "r.current_timestamp_ms, r.current_code, r.pending_timestamp_ms, r.pending_code, "
    "r.created_at"
)
_LINE_COLUMNS = (
    "product_id::text AS product_id, stage, line_id, tag, quantity, license_type, start_date, "
    "end_date, subscription_id"
)


def _key(product_instance_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(product_instance_id)
    except ValueError:
        return None


async def lock_virtual_account(conn: asyncpg.Connection, va_id: int) -> bool:
    """Serialize changes to the virtual account's reservations (and its pool: pool changes
    take a share lock on the same row). Inserting its products is not blocked. False when
    the virtual account is gone."""
    found = await conn.fetchval(
        "SELECT id FROM virtual_accounts WHERE id = $1 FOR NO KEY UPDATE", va_id
    )
    return found is not None


async def insert_reserved_instance(
    conn: asyncpg.Connection,
    *,
    product_instance_id: str,
    va_id: int,
    udi: tuple[str, str, str],
    product_type: str,
    public_key: str,
    request_code: str,
    now: dt.datetime,
    conflict: tuple[str, str],
) -> None:
    """The product instance of a reservation (it never talks to the server: no key for the
    device API, and timers that do not run out) and its reservation row. ``conflict``:
    the detail and field of the Conflict raised when the product id or its UDI was taken
    by a concurrent transaction (a reservation elsewhere, a token registration)."""
    key = uuid.UUID(product_instance_id)
    with unique_as_conflict(*conflict):
        await conn.execute(
            "INSERT INTO product_instances (id, virtual_account_id, udi_pid, udi_serial, "
            "udi_uuid, product_type, product_version, public_jwk, export_controlled, status, "
            "registered_at, last_contact_at, certificate_expires_at, authorization_expires_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, '', '{}'::jsonb, false, 'registered', $7, $7, "
            "$8, $8)",
            key,
            va_id,
            *udi,
            product_type,
            now,
            FAR_FUTURE,
        )
    await recount(conn, [product_instance_id], now)  # (no usage: keeps counted_in in step)
    await conn.execute(
        "INSERT INTO reservations (product_id, public_key, request_code, status, created_at, "
        "updated_at) VALUES ($1, $2, $3, 'active', $4, $4)",
        key,
        public_key,
        request_code,
        now,
    )


async def set_pending(
    conn: asyncpg.Connection,
    product_instance_id: str,
    timestamp: int,
    code: str,
    lines: list[ReservedLine],
    now: dt.datetime,
) -> None:
    key = uuid.UUID(product_instance_id)
    await conn.execute(
        "DELETE FROM reservation_licenses WHERE product_id = $1 AND stage = 'pending'", key
    )
    await conn.executemany(
        "INSERT INTO reservation_licenses (product_id, stage, line_id, tag, quantity, "
        "license_type, start_date, end_date, subscription_id) "
        "VALUES ($1, 'pending', $2, $3, $4, $5, $6, $7, $8)",
        [
            (
                key,
                line.line_id,
                line.tag,
                line.quantity,
                line.license_type,
                line.start_date,
                line.end_date,
                line.subscription_id,
            )
            for line in lines
        ],
    )
    await conn.execute(
        "UPDATE reservations SET pending_timestamp_ms = $2, pending_code = $3, updated_at = $4 "
        "WHERE product_id = $1",
        key,
        timestamp,
        code,
        now,
    )


async def settle(conn: asyncpg.Connection, product_instance_id: str, now: dt.datetime) -> None:
    """The pending code becomes the current one: what it does not name goes back."""
    key = uuid.UUID(product_instance_id)
    await conn.execute(
        "DELETE FROM reservation_licenses WHERE product_id = $1 AND stage = 'current'", key
    )
    await conn.execute(
        "UPDATE reservation_licenses SET stage = 'current' WHERE product_id = $1", key
    )
    await conn.execute(
        "UPDATE reservations SET current_timestamp_ms = pending_timestamp_ms, "
        "current_code = pending_code, pending_timestamp_ms = NULL, pending_code = NULL, "
        "updated_at = $2 WHERE product_id = $1",
        key,
        now,
    )


async def end_reservation(
    conn: asyncpg.Connection, product_instance_id: str, status: str, now: dt.datetime
) -> None:
    """Every license it held goes back to the pool."""
    key = uuid.UUID(product_instance_id)
    await conn.execute("DELETE FROM reservation_licenses WHERE product_id = $1", key)
    await conn.execute(
        "UPDATE reservations SET status = $2, ended_at = $3, updated_at = $3 WHERE product_id = $1",
        key,
        status,
        now,
    )


def _line(row: asyncpg.Record) -> ReservedLine:
    return ReservedLine(
        line_id=row["line_id"],
        tag=row["tag"],
        quantity=row["quantity"],
        license_type=row["license_type"],
        start_date=row["start_date"],
        end_date=row["end_date"],
        subscription_id=row["subscription_id"],
    )


async def _with_lines(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> list[Reservation]:
    keys = [uuid.UUID(r["product_id"]) for r in rows]
    line_rows = await conn.fetch(
        f"SELECT {_LINE_COLUMNS} FROM reservation_licenses WHERE product_id = ANY($1::uuid[]) "
        f"ORDER BY tag, line_id",
        keys,
    )
    lines: dict[tuple[str, str], list[ReservedLine]] = {}
    for row in line_rows:
        lines.setdefault((row["product_id"], row["stage"]), []).append(_line(row))
    return [
        Reservation(
            product_id=r["product_id"],
            public_key=r["public_key"],
            request_code=r["request_code"],
            status=r["status"],
            current_timestamp=r["current_timestamp_ms"],
            current_code=r["current_code"],
            pending_timestamp=r["pending_timestamp_ms"],
            pending_code=r["pending_code"],
            current=tuple(lines.get((r["product_id"], "current"), [])),
            pending=tuple(lines.get((r["product_id"], "pending"), [])),
            created_at=r["created_at"],
        )
        for r in rows
    ]


async def get_reservation(
    conn: asyncpg.Connection, product_instance_id: str, *, for_update: bool = False
) -> Reservation | None:
    key = _key(product_instance_id)
    if key is None:
        return None
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM reservations r WHERE r.product_id = $1{lock}", key
    )
    if row is None:
        return None
    [reservation] = await _with_lines(conn, [row])
    return reservation


async def reservations_of_instances(
    conn: asyncpg.Connection, product_instance_ids: list[str]
) -> dict[str, Reservation]:
    keys = [k for k in (_key(p) for p in product_instance_ids) if k is not None]
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM reservations r WHERE r.product_id = ANY($1::uuid[])", keys
    )
    return {r.product_id: r for r in await _with_lines(conn, list(rows))}


async def active_reservations_of_virtual_account(
    conn: asyncpg.Connection, va_id: int
) -> list[Reservation]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM reservations r JOIN product_instances p ON p.id = r.product_id "
        f"WHERE p.virtual_account_id = $1 AND r.status = 'active' ORDER BY r.product_id",
        va_id,
    )
    return await _with_lines(conn, list(rows))


async def reserved_by_virtual_account(
    conn: asyncpg.Connection, va_ids: list[int], day: dt.date
) -> dict[int, dict[str, int]]:
    """Per virtual account and tag: what active reservations hold on ``day`` (per product
    and tag the larger of the confirmed and the pending code; TERM lines count to their
    end date)."""
    rows = await conn.fetch(
        "SELECT va, tag, total FROM reserved_of($1::bigint[], $2)",  # (sql/023)
        va_ids,
        day,
    )
    result: dict[int, dict[str, int]] = {}
    for row in rows:
        result.setdefault(row["va"], {})[row["tag"]] = int(row["total"])
    return result


async def reservations_of_virtual_account(
    conn: asyncpg.Connection, va_id: int, *, active_only: bool, limit: int | None, offset: int
) -> tuple[int, list[Reservation]]:
    """The virtual account's reservations, newest first (``active_only``: not the returned
    or removed ones): the total and one page."""
    where = "p.virtual_account_id = $1 AND (NOT $2::boolean OR r.status = 'active')"
    joined = "FROM reservations r JOIN product_instances p ON p.id = r.product_id"
    total = await conn.fetchval(f"SELECT count(*) {joined} WHERE {where}", va_id, active_only)
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} {joined} WHERE {where} "
        f"ORDER BY r.created_at DESC, r.product_id LIMIT $3 OFFSET $4",
        va_id,
        active_only,
        limit,
        offset,
    )
    return int(total), await _with_lines(conn, list(rows))
