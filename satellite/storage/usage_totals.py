"""The usage totals (sql/004_usage_totals.sql): what is in use per virtual account and tag,
kept exact at every moment; the statements that change a product's usage or its place in
them, and the one that reads them."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from satellite.storage.ids import uuids

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
# hour). Subtracting it keeps what is in use exact at every moment; it is usually nothing.
# Parameters: {vas} (bigint[]), {now}.
#
# Its cost must not grow with the products (sql/021_lapsed_usage.sql), also in the plan
# PostgreSQL makes once for a prepared statement, without knowing {now}: there it takes
# "<= {now}" for a third of the rows, and would then read every product's usage in one
# scan; as a range (BETWEEN) its guess is half a percent, and the usage is looked up per
# lapsed product (OFFSET 0 keeps the lateral subquery from being joined as a whole).
_LAPSED_USAGE = (
    "SELECT p.counted_in AS va, u.tag, -u.count AS n FROM product_instances p "
    "CROSS JOIN LATERAL (SELECT tag, count FROM product_usage "
    "  WHERE product_id = p.id OFFSET 0) AS u "
    "WHERE p.counted_in = ANY({vas}) AND p.status = 'registered' "
    "AND least(p.authorization_expires_at, p.certificate_expires_at) "
    "  BETWEEN '-infinity' AND {now}"
)

# A report's usage statement. $1 the product, $2 and $3 its usage (tags, counts), $4 now,
# $5 the report (jsonb, for the history), $6 the virtual account to answer for.
REPLACE_USAGE = (
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
    ") AS after GROUP BY tag"
)

# What is in use per virtual account and tag. $1 the virtual accounts, $2 now.
IN_USE = (
    "SELECT va, tag, sum(n)::bigint AS total FROM ("
    "  SELECT virtual_account_id AS va, tag, in_use AS n FROM virtual_account_usage "
    "  WHERE virtual_account_id = ANY($1::bigint[]) "
    f"  UNION ALL {_LAPSED_USAGE.format(vas='$1::bigint[]', now='$2')}"
    ") AS counted GROUP BY va, tag HAVING sum(n) <> 0"
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
        REPLACE_USAGE,
        uuid.UUID(product_instance_id),
        list(usage),
        list(usage.values()),
        now,
        usage,
        va_id,
    )
    in_use = {row["tag"]: int(row["total"]) for row in rows if row["total"]}
    return in_use, {row["tag"]: int(row["change"]) for row in rows if row["change"]}


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
