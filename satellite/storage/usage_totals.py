"""The usage totals (sql/004_usage_totals.sql): what is in use per virtual account and tag,
kept exact at every moment; the statement that changes a product's place in them, and the
one that reads them. (A usage report changes a product's usage in them: the function of
sql/023_usage_report.sql, which adds to them as _ADD_TO_TOTALS does.)"""

from __future__ import annotations

import datetime as dt

import asyncpg

from satellite.storage.ids import uuids

# Adds the rows (virtual_account_id, tag, shard, d) of the query before it to the totals,
# in key order, so that two transactions adding to the same rows cannot deadlock.
_ADD_TO_TOTALS = (
    "INSERT INTO virtual_account_usage (virtual_account_id, tag, shard, in_use) "
    "SELECT va, tag, shard, sum(d) FROM deltas GROUP BY va, tag, shard HAVING sum(d) <> 0 "
    "ORDER BY va, tag, shard "
    "ON CONFLICT (virtual_account_id, tag, shard) "
    "DO UPDATE SET in_use = virtual_account_usage.in_use + EXCLUDED.in_use"
)

# What is in use per virtual account and tag (sql/023_usage_report.sql, in_use_of: the
# totals less the usage that stopped counting since the last recount). $1 the virtual
# accounts, $2 now.
IN_USE = "SELECT va, tag, total FROM in_use_of($1::bigint[], $2)"


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
        "  SELECT c.was AS va, u.tag, usage_shard(c.id) AS shard, -u.count AS d "
        "  FROM changed c JOIN product_usage u ON u.product_id = c.id WHERE c.was IS NOT NULL "
        "  UNION ALL SELECT c.now_in, u.tag, usage_shard(c.id), u.count "
        "  FROM changed c JOIN product_usage u ON u.product_id = c.id "
        "  WHERE c.now_in IS NOT NULL) " + _ADD_TO_TOTALS,
        uuids(product_instance_ids),
        now,
    )


async def in_use_by_virtual_account(
    conn: asyncpg.Connection, va_ids: list[int], now: dt.datetime
) -> dict[int, dict[str, int]]:
    """Per virtual account and tag: the usage that counts at ``now`` (tags with none are
    absent)."""
    rows = await conn.fetch(IN_USE, va_ids, now)
    result: dict[int, dict[str, int]] = {}
    for row in rows:
        result.setdefault(row["va"], {})[row["tag"]] = int(row["total"])
    return result
