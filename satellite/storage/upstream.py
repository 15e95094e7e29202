"""The upstream's side of sync: satellite tokens, registered satellites, their mirror."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

import asyncpg

from satellite.domain.paging import sql_limit
from satellite.domain.sync import (
    MirroredProduct,
    MirroredUsage,
    RegisteredSatellite,
    SatelliteToken,
)
from satellite.errors import Conflict, InvalidInput
from satellite.storage.db import RowLock, lock_clause

# --- satellite tokens ----------------------------------------------------------------------

_ISSUED_COLUMNS = (
    "id, account_id, description, created_by, created_at, expires_at, used_at, revoked_at"
)


async def insert_token(
    conn: asyncpg.Connection,
    account_id: int,
    digest: bytes,
    description: str,
    created_by: str,
    expires_at: dt.datetime,
) -> SatelliteToken:
    row = await conn.fetchrow(
        "INSERT INTO satellite_tokens (account_id, token_digest, description, created_by, "
        f"expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING {_ISSUED_COLUMNS}",
        account_id,
        digest,
        description,
        created_by,
        expires_at,
    )
    assert row is not None
    return SatelliteToken(**dict(row))


async def tokens_of_account(conn: asyncpg.Connection, account_id: int) -> list[SatelliteToken]:
    rows = await conn.fetch(
        f"SELECT {_ISSUED_COLUMNS} FROM satellite_tokens WHERE account_id = $1 ORDER BY id",
        account_id,
    )
    return [SatelliteToken(**dict(r)) for r in rows]


async def revoke_token(conn: asyncpg.Connection, account_id: int, token_id: int) -> bool:
    result = await conn.execute(
        "UPDATE satellite_tokens SET revoked_at = now() "
        "WHERE account_id = $1 AND id = $2 AND revoked_at IS NULL",
        account_id,
        token_id,
    )
    return result != "UPDATE 0"


async def use_token(
    conn: asyncpg.Connection, digest: bytes, now: dt.datetime
) -> tuple[int, str] | None:
    """Spend an active token once: (its account's id, name), or None."""
    row = await conn.fetchrow(
        "UPDATE satellite_tokens t SET used_at = $2 FROM accounts a "
        "WHERE t.token_digest = $1 AND a.id = t.account_id AND t.used_at IS NULL "
        "AND t.revoked_at IS NULL AND t.expires_at > $2 RETURNING a.id, a.name",
        digest,
        now,
    )
    return (int(row["id"]), row["name"]) if row else None


# --- satellites ----------------------------------------------------------------------------

_SATELLITE_COLUMNS = (
    "s.id::text AS id, s.account_id, (SELECT name FROM accounts WHERE id = s.account_id) "
    "AS account, s.name, s.public_key, s.registered_at, s.last_sequence, s.last_digest, "
    "s.last_answer, s.last_sync_at, s.revoked_at"
)


async def registration_answer(
    conn: asyncpg.Connection, request_digest: bytes
) -> tuple[str, bytes] | None:
    """The satellite registered by this request, and the answer it was given."""
    row = await conn.fetchrow(
        "SELECT id::text AS id, registration_answer FROM satellites WHERE registration_digest = $1",
        request_digest,
    )
    return (row["id"], row["registration_answer"]) if row else None


async def insert_satellite(
    conn: asyncpg.Connection,
    *,
    satellite_id: str,
    account_id: int,
    name: str,
    public_key: str,
    request_digest: bytes,
    answer: bytes,
    now: dt.datetime,
) -> None:
    await conn.execute(
        "INSERT INTO satellites (id, account_id, name, public_key, registration_digest, "
        "registration_answer, registered_at) VALUES ($1::uuid, $2, $3, $4, $5, $6, $7)",
        satellite_id,
        account_id,
        name,
        public_key,
        request_digest,
        answer,
        now,
    )


async def get_satellite(
    conn: asyncpg.Connection, satellite_id: str, *, lock: RowLock
) -> RegisteredSatellite | None:
    try:
        row = await conn.fetchrow(
            f"SELECT {_SATELLITE_COLUMNS} FROM satellites s "
            f"WHERE s.id = $1::uuid{lock_clause(lock)}",
            satellite_id,
        )
    except asyncpg.DataError:  # not a UUID: no such satellite
        return None
    return RegisteredSatellite(**dict(row)) if row else None


async def satellites_of_account(
    conn: asyncpg.Connection, account_id: int
) -> list[RegisteredSatellite]:
    rows = await conn.fetch(
        f"SELECT {_SATELLITE_COLUMNS}, (SELECT count(*) FROM satellite_products p "
        "WHERE p.satellite_id = s.id AND p.status = 'registered') AS products "
        "FROM satellites s WHERE s.account_id = $1 ORDER BY s.registered_at",
        account_id,
    )
    return [RegisteredSatellite(**dict(r)) for r in rows]


async def revoke_satellite(
    conn: asyncpg.Connection, account_id: int, satellite_id: str, now: dt.datetime
) -> bool:
    """The satellite is no longer heard; its products and usage leave the mirror (and the
    totals). False when it is not one of the account's live satellites."""
    revoked = await conn.fetchval(
        "UPDATE satellites SET revoked_at = $3 WHERE id::text = $2 AND account_id = $1 "
        "AND revoked_at IS NULL RETURNING true",
        account_id,
        satellite_id,
        now,
    )
    if not revoked:
        return False
    await conn.execute("DELETE FROM satellite_products WHERE satellite_id = $1::uuid", satellite_id)
    await replace_usage(conn, satellite_id, [])
    return True


async def record_answer(
    conn: asyncpg.Connection,
    satellite_id: str,
    sequence: int,
    digest: bytes,
    answer: bytes,
    now: dt.datetime,
) -> None:
    await conn.execute(
        "UPDATE satellites SET last_sequence = $2, last_digest = $3, last_answer = $4, "
        "last_sync_at = $5 WHERE id = $1::uuid",
        satellite_id,
        sequence,
        digest,
        answer,
        now,
    )


# --- the mirror ----------------------------------------------------------------------------

_PRODUCT_COLUMNS = (
    "product_id",
    "virtual_account_id",
    "udi_pid",
    "udi_serial",
    "udi_uuid",
    "product_type",
    "product_version",
    "hostname",
    "ip_address",
    "export_controlled",
    "status",
    "registered_at",
    "ended_at",
    "export_keys",
    "reservation",  # last: stage_products encodes it
)
ProductRow = tuple[object, ...]  # in the order of _PRODUCT_COLUMNS
UsageRow = tuple[int, str, int, int, int]  # virtual account id, tag, in use, reserved, exported


async def start_product_batch(conn: asyncpg.Connection) -> None:
    """A temporary table for the products of one request (gone at commit)."""
    await conn.execute(
        "CREATE TEMPORARY TABLE incoming_products "
        "(LIKE satellite_products INCLUDING DEFAULTS) ON COMMIT DROP"
    )
    await conn.execute(
        "ALTER TABLE incoming_products DROP COLUMN satellite_id, "
        "ALTER COLUMN reservation TYPE text"  # COPY's binary format has no jsonb encoder here
    )


async def stage_products(conn: asyncpg.Connection, rows: Sequence[ProductRow]) -> None:
    """Stage rows whose last value (the reservation) is a JSON-able value or None."""
    # Most products are not reservations: their row goes as it is (no copy per row).
    records = [row if row[-1] is None else (*row[:-1], json.dumps(row[-1])) for row in rows]
    await conn.copy_records_to_table("incoming_products", records=records, columns=_PRODUCT_COLUMNS)


async def forget_mirrored(conn: asyncpg.Connection, satellite_id: str, ids: list[str]) -> int:
    """Products that left the satellite's account leave its mirror; the number forgotten."""
    if not ids:
        return 0
    result = await conn.execute(
        "DELETE FROM satellite_products WHERE satellite_id = $1::uuid "
        "AND product_id = ANY($2::uuid[])",
        satellite_id,
        ids,
    )
    return int(result.rsplit(" ", 1)[1])


async def merge_products(conn: asyncpg.Connection, satellite_id: str) -> int:
    """Upsert the staged products into the satellite's mirror; the number merged.

    The caller holds the satellite's row locked (FOR UPDATE), so no other transaction
    writes this satellite's mirror meanwhile: the products it has are updated (only those
    that changed are written) and dropped from the staging table, and what is left is new
    and inserted with a plain INSERT. For a first sync of a million products that is
    markedly cheaper than INSERT ... ON CONFLICT DO UPDATE, which makes a speculative
    insertion of every row (bench/sync). (No INSERT ... WHERE NOT EXISTS on the mirror
    itself: planned on an empty mirror, it rescans the rows it has just inserted.)
    """
    await conn.execute("ANALYZE incoming_products")  # a temporary table has no statistics
    twice = await conn.fetchval(
        "SELECT product_id::text FROM incoming_products GROUP BY product_id "
        "HAVING count(*) > 1 LIMIT 1"
    )
    if twice is not None:
        raise InvalidInput(f"the request names product instance {twice} twice")
    # What the mirror's foreign keys would do, once per request (sql/008_sync.sql): the
    # caller holds the satellite locked; the virtual accounts named are locked and exist.
    row = await conn.fetchrow(
        "WITH named AS (SELECT DISTINCT virtual_account_id AS id FROM incoming_products), "
        "locked AS (SELECT va.id FROM virtual_accounts va JOIN named USING (id) "
        "FOR KEY SHARE OF va) "
        "SELECT (SELECT count(*) FROM named) AS named, (SELECT count(*) FROM locked) AS locked"
    )
    assert row is not None
    if row["locked"] != row["named"]:  # (the caller creates them first: a deletion raced)
        raise Conflict("a virtual account the request names was deleted meanwhile: send it again")
    staged = {
        c: "i.reservation::jsonb" if c == "reservation" else f"i.{c}" for c in _PRODUCT_COLUMNS
    }
    changing = _PRODUCT_COLUMNS[1:]
    old = ", ".join(f"p.{c}" for c in changing)
    new = ", ".join(staged[c] for c in changing)
    await conn.execute(
        f"UPDATE satellite_products p SET ({', '.join(changing)}) = ({new}) "
        "FROM incoming_products i WHERE p.satellite_id = $1::uuid "
        f"AND p.product_id = i.product_id AND ({old}) IS DISTINCT FROM ({new})",
        satellite_id,
    )
    known = await conn.execute(
        "DELETE FROM incoming_products i USING satellite_products p "
        "WHERE p.satellite_id = $1::uuid AND p.product_id = i.product_id",
        satellite_id,
    )
    inserted = await conn.execute(
        f"INSERT INTO satellite_products (satellite_id, {', '.join(_PRODUCT_COLUMNS)}) "
        f"SELECT $1::uuid, {', '.join(staged.values())} FROM incoming_products i",
        satellite_id,
    )
    return int(known.rsplit(" ", 1)[1]) + int(inserted.rsplit(" ", 1)[1])


async def replace_usage(
    conn: asyncpg.Connection, satellite_id: str, usage: Sequence[UsageRow]
) -> list[int]:
    """The satellite's usage becomes ``usage``; the upstream's totals follow (shard 16: the
    sum over satellites of all they take). Returns the virtual accounts recounted."""
    old = await conn.fetch(
        "DELETE FROM satellite_usage WHERE satellite_id = $1::uuid RETURNING virtual_account_id",
        satellite_id,
    )
    await conn.executemany(
        "INSERT INTO satellite_usage (satellite_id, virtual_account_id, tag, in_use, reserved, "
        "exported) VALUES ($1::uuid, $2, $3, $4, $5, $6)",
        [(satellite_id, *row) for row in usage],
    )
    va_ids = sorted({int(r["virtual_account_id"]) for r in old} | {row[0] for row in usage})
    await conn.execute(
        "DELETE FROM virtual_account_usage WHERE shard = 16 "
        "AND virtual_account_id = ANY($1::bigint[])",
        va_ids,
    )
    await conn.execute(
        "INSERT INTO virtual_account_usage (virtual_account_id, tag, shard, in_use) "
        "SELECT virtual_account_id, tag, 16, sum(in_use + reserved + exported) "
        "FROM satellite_usage WHERE virtual_account_id = ANY($1::bigint[]) GROUP BY 1, 2 "
        "HAVING sum(in_use + reserved + exported) > 0 "
        "ORDER BY 1, 2",
        va_ids,
    )
    return va_ids


async def mirrored_products(
    conn: asyncpg.Connection, satellite_id: str, limit: int, offset: int
) -> list[MirroredProduct]:
    rows = await conn.fetch(
        "SELECT p.product_id::text AS id, va.name AS virtual_account, p.udi_pid, p.udi_serial, "
        "p.udi_uuid, p.product_type, p.product_version, p.hostname, p.ip_address, "
        "p.export_controlled, p.status, p.registered_at, p.ended_at, p.export_keys, "
        "p.reservation FROM satellite_products p "
        "JOIN virtual_accounts va ON va.id = p.virtual_account_id "
        "WHERE p.satellite_id = $1::uuid ORDER BY p.product_id LIMIT $2 OFFSET $3",
        satellite_id,
        sql_limit(limit),
        offset,
    )
    return [MirroredProduct(**dict(r)) for r in rows]


async def mirrored_usage(conn: asyncpg.Connection, satellite_id: str) -> list[MirroredUsage]:
    rows = await conn.fetch(
        "SELECT va.name AS virtual_account, u.tag, u.in_use, u.reserved, u.exported "
        "FROM satellite_usage u "
        "JOIN virtual_accounts va ON va.id = u.virtual_account_id "
        "WHERE u.satellite_id = $1::uuid ORDER BY 1, 2",
        satellite_id,
    )
    return [MirroredUsage(**dict(r)) for r in rows]
