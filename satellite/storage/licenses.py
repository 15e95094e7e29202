"""License pool lines."""

from __future__ import annotations

import asyncpg

from satellite.domain.compliance import LineValues, PoolLine

_COLUMNS = (
    "l.id, va.name AS virtual_account, l.tag, l.quantity, l.license_type, l.start_date, "
    "l.end_date, l.subscription_id, l.export_restricted, l.source"
)


def _line(row: asyncpg.Record) -> PoolLine:
    return PoolLine(**dict(row))


async def insert_line(
    conn: asyncpg.Connection, va_id: int, values: LineValues, source: str = "local"
) -> PoolLine:
    line_id = await conn.fetchval(
        "INSERT INTO license_lines (virtual_account_id, tag, quantity, license_type, start_date, "
        "end_date, subscription_id, export_restricted, source) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        va_id,
        values.tag,
        values.quantity,
        values.license_type,
        values.start_date,
        values.end_date,
        values.subscription_id,
        values.export_restricted,
        source,
    )
    line = await get_line(conn, va_id, line_id)
    assert line is not None
    return line


async def get_line(
    conn: asyncpg.Connection, va_id: int, line_id: int, *, for_update: bool = False
) -> PoolLine | None:
    lock = " FOR UPDATE OF l" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM license_lines l "
        f"JOIN virtual_accounts va ON va.id = l.virtual_account_id "
        f"WHERE l.virtual_account_id = $1 AND l.id = $2{lock}",
        va_id,
        line_id,
    )
    return _line(row) if row else None


async def update_line(
    conn: asyncpg.Connection, va_id: int, line_id: int, values: LineValues
) -> PoolLine:
    await conn.execute(
        "UPDATE license_lines SET tag = $3, quantity = $4, license_type = $5, start_date = $6, "
        "end_date = $7, subscription_id = $8, export_restricted = $9, updated_at = now() "
        "WHERE virtual_account_id = $1 AND id = $2",
        va_id,
        line_id,
        values.tag,
        values.quantity,
        values.license_type,
        values.start_date,
        values.end_date,
        values.subscription_id,
        values.export_restricted,
    )
    line = await get_line(conn, va_id, line_id)
    assert line is not None
    return line


async def delete_line(conn: asyncpg.Connection, va_id: int, line_id: int) -> None:
    await conn.execute(
        "DELETE FROM license_lines WHERE virtual_account_id = $1 AND id = $2", va_id, line_id
    )


async def lines_of_virtual_account(conn: asyncpg.Connection, va_id: int) -> list[PoolLine]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM license_lines l "
        f"JOIN virtual_accounts va ON va.id = l.virtual_account_id "
        f"WHERE l.virtual_account_id = $1 ORDER BY l.tag, l.id",
        va_id,
    )
    return [_line(r) for r in rows]


async def lines_by_virtual_account(
    conn: asyncpg.Connection, va_ids: list[int]
) -> dict[int, list[PoolLine]]:
    """The lines of these virtual accounts (of any accounts), by virtual account id."""
    rows = await conn.fetch(
        f"SELECT l.virtual_account_id AS va_id, {_COLUMNS} FROM license_lines l "
        f"JOIN virtual_accounts va ON va.id = l.virtual_account_id "
        f"WHERE l.virtual_account_id = ANY($1::bigint[]) "
        f"ORDER BY l.virtual_account_id, l.tag, l.id",
        va_ids,
    )
    result: dict[int, list[PoolLine]] = {}
    for row in rows:
        values = dict(row)
        result.setdefault(values.pop("va_id"), []).append(PoolLine(**values))
    return result


async def lines_of_account(
    conn: asyncpg.Connection, account_id: int, va_names: list[str] | None
) -> list[PoolLine]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM license_lines l "
        f"JOIN virtual_accounts va ON va.id = l.virtual_account_id "
        f"WHERE va.account_id = $1 AND ($2::text[] IS NULL OR va.name = ANY($2::text[])) "
        f"ORDER BY va.name, l.tag, l.id",
        account_id,
        va_names,
    )
    return [_line(r) for r in rows]


async def set_quantity(conn: asyncpg.Connection, va_id: int, line_id: int, quantity: int) -> None:
    await conn.execute(
        "UPDATE license_lines SET quantity = $3, updated_at = now() "
        "WHERE virtual_account_id = $1 AND id = $2",
        va_id,
        line_id,
        quantity,
    )


async def local_line_like(
    conn: asyncpg.Connection, va_id: int, values: LineValues
) -> PoolLine | None:
    """The virtual account's local line with exactly these values but the quantity (the
    oldest, if there are several): licenses that come back join the line they left instead
    of splitting the pool a little more on every transfer."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM license_lines l "
        f"JOIN virtual_accounts va ON va.id = l.virtual_account_id "
        f"WHERE l.virtual_account_id = $1 AND l.source = 'local' AND l.tag = $2 "
        f"AND l.license_type = $3 AND l.start_date IS NOT DISTINCT FROM $4 "
        f"AND l.end_date IS NOT DISTINCT FROM $5 AND l.subscription_id IS NOT DISTINCT FROM $6 "
        f"AND l.export_restricted = $7 ORDER BY l.id LIMIT 1",
        va_id,
        values.tag,
        values.license_type,
        values.start_date,
        values.end_date,
        values.subscription_id,
        values.export_restricted,
    )
    return _line(row) if row else None
