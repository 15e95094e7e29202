"""The satellite's side of sync: its links to upstreams, what it exports, what it applies."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from satellite.domain.compliance import LineValues
from satellite.domain.sync import (
    ChangedProductInstance,
    DepartureKind,
    HistoryEntry,
    ReservationLine,
    SyncLink,
    SyncOperation,
    WrittenSyncRequest,
)
from satellite.storage.db import RowLock, lock_clause

_LINK_COLUMNS = (
    "l.account_id, (SELECT name FROM accounts WHERE id = l.account_id) AS account, "
    "l.satellite_id::text AS satellite_id, l.upstream_url, l.upstream_account, l.upstream_key, "
    "l.private_key, l.certificate, l.registered_at, l.request_sequence, l.applied_sequence, "
    "l.applied_digest, l.acknowledged_xid::text::bigint AS acknowledged_xid, "
    "l.last_success_at, l.last_attempt_at, l.last_error, l.last_error_at, l.next_run_at"
)


def _link(row: asyncpg.Record) -> SyncLink:
    return SyncLink(**dict(row))


async def get_link(conn: asyncpg.Connection, account_id: int, *, lock: RowLock) -> SyncLink | None:
    row = await conn.fetchrow(
        f"SELECT {_LINK_COLUMNS} FROM sync_links l WHERE l.account_id = $1{lock_clause(lock)}",
        account_id,
    )
    return _link(row) if row else None


async def link_of_satellite(
    conn: asyncpg.Connection, satellite_id: str, *, lock: RowLock
) -> SyncLink | None:
    row = await conn.fetchrow(
        f"SELECT {_LINK_COLUMNS} FROM sync_links l "
        f"WHERE l.satellite_id::text = $1{lock_clause(lock)}",
        satellite_id,
    )
    return _link(row) if row else None


async def links(conn: asyncpg.Connection) -> list[SyncLink]:
    rows = await conn.fetch(f"SELECT {_LINK_COLUMNS} FROM sync_links l ORDER BY l.account_id")
    return [_link(r) for r in rows]


async def in_step_since(conn: asyncpg.Connection, account_id: int) -> dt.datetime | None:
    """When the account's satellite was last in step with its upstream (None: not linked)."""
    value: dt.datetime | None = await conn.fetchval(
        "SELECT coalesce(last_success_at, registered_at) FROM sync_links WHERE account_id = $1",
        account_id,
    )
    return value


# --- registration --------------------------------------------------------------------------


async def put_pending_registration(
    conn: asyncpg.Connection,
    account_id: int,
    *,
    private_key: bytes,
    request: bytes,
    token_digest: bytes,
    request_digest: bytes,
    upstream_url: str | None,
    now: dt.datetime,
) -> None:
    await conn.execute(
        "INSERT INTO sync_pending_registrations (account_id, private_key, request, token_digest, "
        "request_digest, upstream_url, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
        "ON CONFLICT (account_id) DO UPDATE SET private_key = EXCLUDED.private_key, "
        "request = EXCLUDED.request, token_digest = EXCLUDED.token_digest, "
        "request_digest = EXCLUDED.request_digest, upstream_url = EXCLUDED.upstream_url, "
        "created_at = EXCLUDED.created_at",
        account_id,
        private_key,
        request,
        token_digest,
        request_digest,
        upstream_url,
        now,
    )


async def pending_request(
    conn: asyncpg.Connection, account_id: int, token_digest: bytes, upstream_url: str | None
) -> bytes | None:
    """The pending registration's request (encrypted), if it was made with this token for
    this upstream: sending it again is how a lost answer is fetched."""
    value: bytes | None = await conn.fetchval(
        "SELECT request FROM sync_pending_registrations WHERE account_id = $1 "
        "AND token_digest = $2 AND upstream_url IS NOT DISTINCT FROM $3",
        account_id,
        token_digest,
        upstream_url,
    )
    return value


async def take_pending_registration(
    conn: asyncpg.Connection, account_id: int
) -> tuple[bytes, bytes, str | None] | None:
    """The pending registration's (encrypted key, request digest, upstream URL), removed."""
    row = await conn.fetchrow(
        "DELETE FROM sync_pending_registrations WHERE account_id = $1 "
        "RETURNING private_key, request_digest, upstream_url",
        account_id,
    )
    return (row["private_key"], row["request_digest"], row["upstream_url"]) if row else None


async def has_pending_registration(conn: asyncpg.Connection, account_id: int) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM sync_pending_registrations WHERE account_id = $1)",
        account_id,
    )
    return found


async def insert_link(
    conn: asyncpg.Connection,
    *,
    account_id: int,
    satellite_id: str,
    upstream_url: str | None,
    upstream_account: str,
    upstream_key: str,
    private_key: bytes,
    certificate: str,
    now: dt.datetime,
) -> None:
    await conn.execute(
        "INSERT INTO sync_links (account_id, satellite_id, upstream_url, upstream_account, "
        "upstream_key, private_key, certificate, registered_at) "
        "VALUES ($1, $2::uuid, $3, $4, $5, $6, $7, $8)",
        account_id,
        satellite_id,
        upstream_url,
        upstream_account,
        upstream_key,
        private_key,
        certificate,
        now,
    )


async def delete_link(conn: asyncpg.Connection, account_id: int) -> None:
    """The account is no longer linked: its link, requests and departures go (its lines
    from the upstream stay until a link's next answer replaces them)."""
    await conn.execute("DELETE FROM sync_departures WHERE account_id = $1", account_id)
    await conn.execute("DELETE FROM sync_pending_registrations WHERE account_id = $1", account_id)
    await conn.execute("DELETE FROM sync_links WHERE account_id = $1", account_id)


async def set_upstream_url(conn: asyncpg.Connection, account_id: int, url: str | None) -> None:
    await conn.execute(
        "UPDATE sync_links SET upstream_url = $2 WHERE account_id = $1", account_id, url
    )


# --- export --------------------------------------------------------------------------------


async def next_request_sequence(conn: asyncpg.Connection, account_id: int) -> tuple[int, int]:
    """Take the next request sequence number; with the acknowledged watermark."""
    row = await conn.fetchrow(
        "UPDATE sync_links SET request_sequence = request_sequence + 1 WHERE account_id = $1 "
        "RETURNING request_sequence, acknowledged_xid::text::bigint AS acknowledged_xid",
        account_id,
    )
    assert row is not None
    return int(row["request_sequence"]), int(row["acknowledged_xid"])


async def snapshot_watermark(conn: asyncpg.Connection) -> int:
    """The xmin of the transaction's snapshot: every transaction not visible in it has an id
    at or above it (sql/008_sync.sql)."""
    value = await conn.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
    return int(value)


async def changed_products(
    conn: asyncpg.Connection, account_id: int, since: int, prefetch: int = 10_000
) -> AsyncIterator[ChangedProductInstance]:
    """Every product of the account stamped at or after ``since``, with its reservation
    (its status and the licenses it holds: 'current' confirmed, 'pending' awaiting the
    product's confirmation) and the features of the export keys it holds.
    Streams: call inside a transaction."""
    query = (
        "SELECT p.id::text AS id, va.name AS virtual_account, p.udi_pid, p.udi_serial, "
        "p.udi_uuid, p.product_type, p.product_version, p.hostname, p.ip_address, "
        "p.export_controlled, p.status, p.registered_at, p.ended_at, r.status AS reservation, "
        # Records, not jsonb: a million rows decoded by json.loads were a fifth of an export;
        # and only a reservation has reserved licenses to look for.
        "CASE WHEN r.product_id IS NULL THEN '{}'::sync_reserved_license[] ELSE ARRAY("
        "   SELECT ROW(rl.tag, rl.quantity, rl.license_type, "
        "   to_char(rl.end_date, 'YYYY-MM-DD'), rl.stage)::sync_reserved_license "
        "   FROM reservation_licenses rl WHERE rl.product_id = p.id "
        "   ORDER BY rl.stage, rl.tag, rl.line_id) END AS reserved, "
        # Only a product registered for export-controlled features can hold export keys.
        "CASE WHEN p.export_controlled THEN ARRAY(SELECT k.feature FROM export_keys k "
        "   WHERE k.product_id = p.id AND k.status = 'granted' ORDER BY k.feature) "
        "   ELSE '{}'::text[] END AS export_keys "
        "FROM product_instances p JOIN virtual_accounts va ON va.id = p.virtual_account_id "
        "LEFT JOIN reservations r ON r.product_id = p.id "
        "WHERE va.account_id = $1 AND p.sync_xid >= $2::text::xid8"
    )
    async for row in conn.cursor(query, account_id, str(since), prefetch=prefetch):
        # From the columns in their order (a million make one request, and by name each
        # cost a microsecond more); only a reservation has reserved licenses to turn into
        # lines.
        if not row["reserved"]:
            yield ChangedProductInstance(*row)
            continue
        yield ChangedProductInstance(
            id=row["id"],
            virtual_account=row["virtual_account"],
            udi_pid=row["udi_pid"],
            udi_serial=row["udi_serial"],
            udi_uuid=row["udi_uuid"],
            product_type=row["product_type"],
            product_version=row["product_version"],
            hostname=row["hostname"],
            ip_address=row["ip_address"],
            export_controlled=row["export_controlled"],
            status=row["status"],
            registered_at=row["registered_at"],
            ended_at=row["ended_at"],
            reservation=row["reservation"],
            reserved=[
                ReservationLine(
                    tag=r["tag"],
                    quantity=r["quantity"],
                    license_type=r["licenseType"],
                    end_date=dt.date.fromisoformat(r["endDate"]) if r["endDate"] else None,
                    stage=r["stage"],
                )
                for r in row["reserved"]
            ],
            export_keys=row["export_keys"],
        )


async def departures(
    conn: asyncpg.Connection, account_id: int, since: int
) -> list[tuple[DepartureKind, str]]:
    """What left the account at or after ``since`` (kind, key), oldest first
    (sql/009_sync_departures.sql)."""
    rows = await conn.fetch(
        "SELECT kind, key FROM sync_departures WHERE account_id = $1 "
        "AND sync_xid >= $2::text::xid8 ORDER BY sync_xid, departed_at",
        account_id,
        str(since),
    )
    return [(r["kind"], r["key"]) for r in rows]


async def record_request(
    conn: asyncpg.Connection,
    account_id: int,
    request: WrittenSyncRequest,
    now: dt.datetime,
) -> None:
    await conn.execute(
        "INSERT INTO sync_requests (account_id, sequence, digest, through_xid, created_at) "
        "VALUES ($1, $2, $3, $4::text::xid8, $5)",
        account_id,
        request.sequence,
        request.digest,
        str(request.through_xid),
        now,
    )


async def written_sync_request(
    conn: asyncpg.Connection, account_id: int, sequence: int
) -> WrittenSyncRequest | None:
    row = await conn.fetchrow(
        "SELECT sequence, digest, through_xid::text::bigint AS through_xid FROM sync_requests "
        "WHERE account_id = $1 AND sequence = $2",
        account_id,
        sequence,
    )
    return WrittenSyncRequest(**dict(row)) if row else None


# --- applying an answer --------------------------------------------------------------------


async def upstream_lines(conn: asyncpg.Connection, va_id: int) -> dict[int, LineValues]:
    """The virtual account's lines from the upstream, by the upstream's line id."""
    rows = await conn.fetch(
        "SELECT upstream_line_id, tag, quantity, license_type, start_date, end_date, "
        "subscription_id, export_restricted FROM license_lines "
        "WHERE virtual_account_id = $1 AND source = 'upstream'",
        va_id,
    )
    lines: dict[int, LineValues] = {}
    for row in rows:
        values = dict(row)
        upstream_id = int(values.pop("upstream_line_id"))
        lines[upstream_id] = LineValues(**values)
    return lines


async def put_upstream_lines(
    conn: asyncpg.Connection, va_id: int, lines: list[tuple[int, LineValues]]
) -> None:
    """Add or change lines from the upstream (by the upstream's line id), in one pipeline."""
    await conn.executemany(
        "INSERT INTO license_lines (virtual_account_id, tag, quantity, license_type, start_date, "
        "end_date, subscription_id, export_restricted, source, upstream_line_id) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'upstream', $9) "
        "ON CONFLICT (virtual_account_id, upstream_line_id) WHERE upstream_line_id IS NOT NULL "
        "DO UPDATE SET tag = EXCLUDED.tag, quantity = EXCLUDED.quantity, "
        "license_type = EXCLUDED.license_type, start_date = EXCLUDED.start_date, "
        "end_date = EXCLUDED.end_date, subscription_id = EXCLUDED.subscription_id, "
        "export_restricted = EXCLUDED.export_restricted, updated_at = now()",
        [
            (
                va_id,
                values.tag,
                values.quantity,
                values.license_type,
                values.start_date,
                values.end_date,
                values.subscription_id,
                values.export_restricted,
                upstream_id,
            )
            for upstream_id, values in lines
        ],
    )


async def delete_upstream_lines(
    conn: asyncpg.Connection, va_id: int, upstream_ids: list[int]
) -> None:
    await conn.execute(
        "DELETE FROM license_lines WHERE virtual_account_id = $1 AND source = 'upstream' "
        "AND upstream_line_id = ANY($2::bigint[])",
        va_id,
        upstream_ids,
    )


async def set_export_controlled_allowed(
    conn: asyncpg.Connection, account_id: int, allowed: bool
) -> bool:
    """Set the account's flag; True when it changed."""
    result = await conn.execute(
        "UPDATE accounts SET export_controlled_allowed = $2 "
        "WHERE id = $1 AND export_controlled_allowed <> $2",
        account_id,
        allowed,
    )
    return result != "UPDATE 0"


async def record_applied(
    conn: asyncpg.Connection,
    account_id: int,
    sequence: int,
    digest: bytes,
    through_xid: int,
    now: dt.datetime,
) -> None:
    await conn.execute(
        "UPDATE sync_links SET applied_sequence = $2, applied_digest = $3, "
        "acknowledged_xid = greatest(acknowledged_xid, $4::text::xid8), last_success_at = $5, "
        "last_error = NULL, last_error_at = NULL WHERE account_id = $1",
        account_id,
        sequence,
        digest,
        str(through_xid),
        now,
    )
    # What left the account before the watermark reached the upstream.
    await conn.execute(
        "DELETE FROM sync_departures WHERE account_id = $1 AND sync_xid < "
        "(SELECT acknowledged_xid FROM sync_links WHERE account_id = $1)",
        account_id,
    )
    # Requests up to the applied one are answered: no answer to them can be applied now.
    await conn.execute(
        "DELETE FROM sync_requests WHERE account_id = $1 AND sequence <= $2", account_id, sequence
    )


# --- status --------------------------------------------------------------------------------


async def record_attempt(
    conn: asyncpg.Connection,
    account_id: int,
    now: dt.datetime,
    error: str | None,
    next_run_at: dt.datetime | None,
) -> None:
    await conn.execute(
        "UPDATE sync_links SET last_attempt_at = $2, "
        "last_error = coalesce($3, last_error), "
        "last_error_at = CASE WHEN $3::text IS NULL THEN last_error_at ELSE $2 END, "
        "next_run_at = coalesce($4, next_run_at) WHERE account_id = $1",
        account_id,
        now,
        error,
        next_run_at,
    )


async def claim_run(
    conn: asyncpg.Connection, account_id: int, now: dt.datetime, next_run: dt.datetime
) -> bool:
    """Claim the scheduled sync that is due, and set the next one at ``next_run``; False
    when another node ran it already. A run is due from half an interval before the next
    run set: each node's schedule fires once an interval, with jitter, and the first of
    them in each interval claims it."""
    claimed = await conn.fetchval(
        "UPDATE sync_links SET next_run_at = $3 WHERE account_id = $1 "
        "AND (next_run_at IS NULL "
        "     OR next_run_at - ($3::timestamptz - $2::timestamptz) / 2 <= $2) RETURNING true",
        account_id,
        now,
        next_run,
    )
    return bool(claimed)


async def insert_history(
    conn: asyncpg.Connection,
    account_id: int,
    *,
    mode: str,
    operation: SyncOperation,
    started_at: dt.datetime,
    finished_at: dt.datetime,
    outcome: str,
    sequence: int | None,
    counts: dict[str, Any],
    error: str | None,
) -> None:
    await conn.execute(
        "INSERT INTO sync_history (account_id, mode, operation, started_at, finished_at, "
        "outcome, sequence, counts, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        account_id,
        mode,
        operation,
        started_at,
        finished_at,
        outcome,
        sequence,
        counts,
        error,
    )


async def history(
    conn: asyncpg.Connection, account_id: int, limit: int, offset: int = 0
) -> list[HistoryEntry]:
    """A page of the account's sync history, the latest first."""
    rows = await conn.fetch(
        "SELECT id, mode, operation, started_at, finished_at, outcome, sequence, counts, error "
        "FROM sync_history WHERE account_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
        account_id,
        limit,
        offset,
    )
    return [HistoryEntry(**dict(r)) for r in rows]


async def history_count(conn: asyncpg.Connection, account_id: int) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM sync_history WHERE account_id = $1", account_id
    )
    return count
