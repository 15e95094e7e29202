"""A usage report costs the same whatever the number of products: the statements of the
report path that read the product table read as many pages at 20,000 products as at 1,000,
in the plan made for the values given (custom) and in the one a statement prepared once
keeps (generic, made without knowing the time)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import asyncpg

from satellite.storage import usage_report, usage_totals

# Products i of one virtual account: registered, authorizations and certificates running out
# over months, one or two tags of usage each, counted in the totals; the first ``lapsed``
# ran out an hour ago and were not recounted yet (as before the hourly job runs).
FILL = (
    "WITH made AS (INSERT INTO product_instances (id, virtual_account_id, udi_pid, udi_serial, "
    "udi_uuid, product_type, product_version, public_jwk, export_controlled, status, "
    "registered_at, last_contact_at, certificate_expires_at, authorization_expires_at, "
    "counted_in) "
    "SELECT gen_random_uuid(), $1, 'UCM', $2 || i, gen_random_uuid()::text, 'UCM', '15.0', "
    "'{}'::jsonb, false, 'registered', now() - interval '30 days', now(), "
    "now() + (i % 365 + 1) * interval '1 day', "
    "CASE WHEN i <= $4 THEN now() - interval '1 hour' "
    "  ELSE now() + (i % 2000 + 1) * interval '1 hour' END, $1 "
    "FROM generate_series(1, $3) AS i RETURNING id), "
    "usage AS (INSERT INTO product_usage (product_id, tag, count) "
    "  SELECT id, 'regid.a', 2 FROM made UNION ALL "
    "  SELECT id, 'regid.b', 1 FROM made WHERE get_byte(uuid_send(id), 0) < 128 "
    "  RETURNING product_id, tag, count) "
    "INSERT INTO virtual_account_usage (virtual_account_id, tag, shard, in_use) "
    "SELECT $1, tag, get_byte(uuid_send(product_id), 15) % 16, sum(count) FROM usage "
    "GROUP BY 2, 3 ON CONFLICT (virtual_account_id, tag, shard) "
    "DO UPDATE SET in_use = virtual_account_usage.in_use + EXCLUDED.in_use"
)


async def fill(conn: asyncpg.Connection, va_id: int, prefix: str, n: int, lapsed: int) -> None:
    await conn.execute(FILL, va_id, prefix, n, lapsed)
    await conn.execute("ANALYZE product_instances")
    await conn.execute("ANALYZE product_usage")


def _pages(plan: dict[str, Any]) -> int:
    """Pages the statement's execution read (hit or from disk), triggers aside."""
    return int(plan["Shared Hit Blocks"]) + int(plan["Shared Read Blocks"])


async def pages_read(
    conn: asyncpg.Connection, name: str, sql: str, types: str, args: str
) -> dict[str, int]:
    """Per plan cache mode: the pages one run of the prepared statement read (rolled back),
    the second of two: a function's statements (sql/023) are planned when it first runs,
    reading the catalog, and as a connection runs it again and again, not again."""
    await conn.execute(f"PREPARE {name} ({types}) AS {sql}")
    pages = {}
    for mode in ("force_custom_plan", "force_custom_plan", "force_generic_plan"):
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
            text = await conn.fetchval(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE {name} ({args})"
            )
        finally:
            await tx.rollback()
        pages[mode] = _pages(json.loads(text)[0]["Plan"])
    await conn.execute(f"DEALLOCATE {name}")
    return pages


async def report_pages(conn: asyncpg.Connection, va_id: int) -> dict[str, int]:
    """What a report of one product of virtual account ``va_id`` reads, and what the pool
    state of that virtual account reads (without a report), per statement and plan."""
    # (One with both tags, whatever the fill drew: what a report reads depends on how many
    # tags it had.)
    product = await conn.fetchval(
        "SELECT id::text FROM product_instances p WHERE virtual_account_id = $1 "
        "AND authorization_expires_at > now() AND EXISTS (SELECT 1 FROM product_usage "
        "  WHERE product_id = p.id AND tag = 'regid.b') ORDER BY udi_serial LIMIT 1",
        va_id,
    )
    now = dt.datetime.now(dt.UTC).isoformat()
    figures = {}
    for name, sql, types, args in (
        (
            "report",
            usage_report.REPORT_USAGE,
            "uuid, jsonb, text, boolean, text[], int[], jsonb, timestamptz, date, bigint",
            f"'{product}', '{{}}', 'a-nonce', false, ARRAY['regid.a'], ARRAY[3], "
            f"'{{\"regid.a\": 3}}', '{now}', '{now[:10]}', 0",
        ),
        ("in_use", usage_totals.IN_USE, "bigint[], timestamptz", f"ARRAY[{va_id}], '{now}'"),
    ):
        for mode, pages in (await pages_read(conn, name, sql, types, args)).items():
            figures[f"{name} {mode}"] = pages
    return figures


async def test_a_report_reads_as_much_at_20000_products_as_at_1000(
    db: asyncpg.Connection,
) -> None:
    account = await db.fetchval("INSERT INTO accounts (name) VALUES ('Acme') RETURNING id")
    va, other = [
        await db.fetchval(
            "INSERT INTO virtual_accounts (account_id, name, is_default) "
            "VALUES ($1, $2, $3) RETURNING id",
            account,
            name,
            name == "DEFAULT",
        )
        for name in ("DEFAULT", "Lab")
    ]
    await fill(db, va, "SN", 500, lapsed=3)
    await fill(db, other, "LB", 500, lapsed=3)
    small = await report_pages(db, va)

    # Twenty times the products, in the report's own virtual account and in another; as
    # many lapsed as before (what lapses within the hour the job takes to recount).
    await fill(db, va, "SN-more-", 9500, lapsed=0)
    await fill(db, other, "LB-more-", 9500, lapsed=0)
    large = await report_pages(db, va)

    # (A few pages more at most: an index one level deeper.)
    grown = {case: large[case] - small[case] for case in small}
    assert all(pages <= 6 for pages in grown.values()), (small, large)
