"""Product instances, their usage and its history, and used device nonces."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg

from satellite.domain.models import ProductInstance, ProductInstanceStatus, UsageRecord
from satellite.domain.paging import sql_limit
from satellite.storage.errors import unique_as_conflict

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
# The shard of the usage totals a product's usage is added to (sql/004_usage_totals.sql).
_SHARD = "get_byte(uuid_send({id}), 15) % 16"
# Adds the rows (virtual_account_id, tag, shard, d) of the query before it to the totals,
# in key order, so that two transactions adding to the same rows cannot deadlock.
_ADD_TO_TOTALS = (
    "INSERT INTO virtual_account_usage (virtual_account_id, tag, shard, in_use) "
    "SELECT va, tag, shard, sum(d) FROM deltas GROUP BY va, tag, shard HAVING sum(d) <> 0 "
    "ORDER BY va, tag, shard "
    "ON CONFLICT (virtual_account_id, tag, shard) "
    "DO UPDATE SET in_use = virtual_account_usage.in_use + EXCLUDED.in_use"
)

# Usage still in the totals although it stopped counting: products whose authorization or
# certificate ran out since they were last recounted (the job recounts them within the
# hour). Read through the expiry indexes, this is usually nothing; subtracting it keeps
# what is in use exact at every moment. Parameters: {vas} (bigint[]), {now}.
_LAPSED_USAGE = (
    "SELECT p.counted_in AS va, u.tag, -u.count AS n "
    "FROM product_instances p JOIN product_usage u ON u.product_id = p.id "
    "WHERE p.status = 'registered' AND p.counted_in = ANY({vas}) "
    "AND (p.authorization_expires_at <= {now} OR p.certificate_expires_at <= {now})"
)


async def recount(
    conn: asyncpg.Connection, product_instance_ids: list[str], now: dt.datetime
) -> None:
    """Bring the usage totals in line with these products as they are now (the caller
    holds their rows locked): a product's usage counts in its virtual account while it is
    registered and its authorization and ID certificate hold, and in no other.

    Every change that can start or stop a product counting, or move it, ends with this."""
    await conn.execute(
        "WITH target AS (SELECT id, counted_in AS was, CASE WHEN status = 'registered' "
        "  AND authorization_expires_at > $2 AND certificate_expires_at > $2 "
        "  THEN virtual_account_id END AS now_in "
        "  FROM product_instances WHERE id = ANY($1::uuid[])), "
        "changed AS (UPDATE product_instances p SET counted_in = t.now_in FROM target t "
        "  WHERE p.id = t.id AND t.was IS DISTINCT FROM t.now_in "
        "  RETURNING p.id, t.was, t.now_in), "
        "deltas AS ("
        f"  SELECT c.was AS va, u.tag, {_SHARD.format(id='c.id')} AS shard, -u.count AS d "
        "  FROM changed c JOIN product_usage u ON u.product_id = c.id WHERE c.was IS NOT NULL "
        f"  UNION ALL SELECT c.now_in, u.tag, {_SHARD.format(id='c.id')}, u.count "
        "  FROM changed c JOIN product_usage u ON u.product_id = c.id "
        "  WHERE c.now_in IS NOT NULL) " + _ADD_TO_TOTALS,
        uuids(product_instance_ids),
        now,
    )


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


async def replace_usage(
    conn: asyncpg.Connection,
    product_instance_id: str,
    va_id: int,
    usage: dict[str, int],
    now: dt.datetime,
) -> tuple[dict[str, int], dict[str, int]]:
    """The product's usage becomes ``usage`` (its row locked by the caller), the report joins
    the history, the contact is recorded, the difference goes to the totals if its usage is
    in them; return what is in use per tag in virtual account ``va_id`` after, and what the
    report changed of that (change c: none where the product's usage had lapsed).

    One statement, one round trip: this is the busiest request. The statement cannot see
    its own changes, so the answer is computed from the totals it started from, the
    difference it adds, and the usage that stopped counting (maybe the product's own)."""
    rows = await conn.fetch(
        "WITH new AS (SELECT tag, count FROM unnest($2::text[], $3::int[]) AS n(tag, count)), "
        "old AS (SELECT tag, count FROM product_usage WHERE product_id = $1), "
        "counted AS (SELECT counted_in AS va, (authorization_expires_at <= $4 "
        "  OR certificate_expires_at <= $4) AS lapsed FROM product_instances "
        "  WHERE id = $1 AND counted_in IS NOT NULL), "
        "deltas AS (SELECT counted.va, counted.lapsed, coalesce(new.tag, old.tag) AS tag, "
        f"  {_SHARD.format(id='$1::uuid')} AS shard, "
        "  coalesce(new.count, 0) - coalesce(old.count, 0) AS d "
        "  FROM new FULL JOIN old ON old.tag = new.tag CROSS JOIN counted), "
        "gone AS (DELETE FROM product_usage WHERE product_id = $1 "
        "  AND NOT (tag = ANY($2::text[]))), "
        "set AS (INSERT INTO product_usage (product_id, tag, count) "
        "  SELECT $1, tag, count FROM new "
        "  ON CONFLICT (product_id, tag) DO UPDATE SET count = EXCLUDED.count), "
        "history AS (INSERT INTO usage_reports (product_id, reported_at, usage) "
        "  VALUES ($1, $4, $5)), "
        "contact AS (UPDATE product_instances SET last_contact_at = $4 WHERE id = $1), "
        f"totals AS ({_ADD_TO_TOTALS}) "
        "SELECT tag, sum(n)::bigint AS total, sum(c)::bigint AS change FROM ("
        "  SELECT tag, in_use n, 0 c FROM virtual_account_usage WHERE virtual_account_id = $6 "
        "  UNION ALL SELECT tag, d, CASE WHEN lapsed THEN 0 ELSE d END FROM deltas WHERE va = $6"
        "  UNION ALL SELECT tag, n, 0 FROM ("
        + _LAPSED_USAGE.format(vas="ARRAY[$6::bigint]", now="$4")
        + " AND p.id <> $1) AS others "
        "  UNION ALL SELECT new.tag, -new.count, 0 FROM new CROSS JOIN counted "
        "    WHERE counted.lapsed AND counted.va = $6"
        ") AS after GROUP BY tag",
        uuid.UUID(product_instance_id),
        list(usage),
        list(usage.values()),
        now,
        usage,
        va_id,
    )
    in_use = {row["tag"]: int(row["total"]) for row in rows if row["total"]}
    return in_use, {row["tag"]: int(row["change"]) for row in rows if row["change"]}


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


async def in_use_by_virtual_account(
    conn: asyncpg.Connection, va_ids: list[int], now: dt.datetime
) -> dict[int, dict[str, int]]:
    """Per virtual account and tag: the usage that counts at ``now`` (tags with none are
    absent)."""
    rows = await conn.fetch(
        "SELECT va, tag, sum(n)::bigint AS total FROM ("
        "  SELECT virtual_account_id AS va, tag, in_use AS n FROM virtual_account_usage "
        "  WHERE virtual_account_id = ANY($1::bigint[]) "
        f"  UNION ALL {_LAPSED_USAGE.format(vas='$1::bigint[]', now='$2')}"
        ") AS counted GROUP BY va, tag HAVING sum(n) <> 0",
        va_ids,
        now,
    )
    result: dict[int, dict[str, int]] = {}
    for row in rows:
        result.setdefault(row["va"], {})[row["tag"]] = int(row["total"])
    return result


# --- administration ------------------------------------------------------------------------


def uuids(product_instance_ids: list[str]) -> list[uuid.UUID]:
    """The ids that are UUIDs at all (no other can name a product)."""
    keys = []
    for product_instance_id in product_instance_ids:
        try:
            keys.append(uuid.UUID(product_instance_id))
        except ValueError:
            continue
    return keys


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
