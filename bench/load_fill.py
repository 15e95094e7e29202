"""``load.py --fill N``: N background product instances made in SQL in the daemon's database,
before the measured products register, so that a report is measured among many products.

The products are spread evenly over the virtual accounts given (the measured products'
one among them), with dates and usage as a satellite that has run for a while holds them:

* 4 % deregistered (ended, no usage, not counted);
* 1 % whose registration expired (their ID certificate ran out: ended when it did; their
  usage rows stay, not counted), as the expiry job leaves them;
* 5 % registered whose authorization lapsed 1 to 120 days ago and was recorded as lapsed
  by the job (``authorization_lapse_recorded``; not counted): products that stopped
  reporting and were never deregistered;
* 90 % current: authorization good for 1 hour to 90 days more, ID certificate for 1 to
  365 days, last contact in the last 8 hours, counted in their virtual account.

Every product that is not deregistered uses the first tag (1 to 3 licenses), a quarter of
them the other tags too; each has one usage report in the history (its last). The running
totals (``virtual_account_usage``, sql/004_usage_totals.sql) are the sums of the counted
products' usage per virtual account, tag and shard, as ``recount`` keeps them.
"""

from __future__ import annotations

import time

import asyncpg

_PRODUCTS = """
INSERT INTO product_instances (id, virtual_account_id, udi_pid, udi_serial, udi_uuid,
    product_type, product_version, hostname, ip_address, public_jwk, export_controlled,
    status, registered_at, last_contact_at, certificate_expires_at, authorization_expires_at,
    authorization_lapse_recorded, ended_at, counted_in)
SELECT id, va, pid, serial, udi_uuid, product_type, product_version, hostname, ip, jwk,
    export_controlled, status, registered_at, last_contact_at, cert, auth,
    CASE WHEN kind = 'lapsed' THEN auth END,
    CASE kind WHEN 'deregistered' THEN last_contact_at WHEN 'expired' THEN cert END,
    CASE WHEN kind = 'current' THEN va END
FROM (
    SELECT md5('bench-fill-' || i)::uuid AS id,
        vas[1 + i % cardinality(vas)] AS va,
        (ARRAY['C9300-24T', 'C9500-32C', 'ISR4451-X/K9', 'C8000V'])[1 + i % 4] AS pid,
        'FILL' || lpad(i::text, 8, '0') AS serial,
        md5('bench-fill-udi-' || i)::uuid::text AS udi_uuid,
        (ARRAY['Switch', 'Switch', 'Router', 'Virtual'])[1 + i % 4] AS product_type,
        '17.' || (9 + i % 4) || '.' || (i % 7) AS product_version,
        'edge-' || lpad(i::text, 8, '0') || '.site.example.net' AS hostname,
        '10.' || ((i >> 16) & 255) || '.' || ((i >> 8) & 255) || '.' || (i & 255) AS ip,
        jsonb_build_object('kty', 'EC', 'crv', 'P-256',
            'x', rtrim(translate(encode(sha256(('x' || i)::bytea), 'base64'), '+/', '-_'), '='),
            'y', rtrim(translate(encode(sha256(('y' || i)::bytea), 'base64'), '+/', '-_'), '='))
            AS jwk,
        i % 20 = 0 AS export_controlled,
        k.kind,
        CASE k.kind WHEN 'deregistered' THEN 'deregistered'
            WHEN 'expired' THEN 'registration_expired' ELSE 'registered' END AS status,
        now() - interval '400 days' + (i % 380) * interval '1 day' AS registered_at,
        CASE k.kind
            WHEN 'current' THEN now() - (i % 480) * interval '1 minute'
            ELSE now() - interval '1 day' - (i % 120) * interval '1 day' - interval '60 days'
        END AS last_contact_at,
        CASE k.kind
            WHEN 'expired' THEN now() - interval '1 day' - (i % 60) * interval '1 day'
            ELSE now() + interval '1 day' + (i % 365) * interval '1 day'
        END AS cert,
        CASE k.kind
            WHEN 'current' THEN now() + interval '1 hour' + (i % 2159) * interval '1 hour'
            WHEN 'lapsed' THEN now() - interval '1 day' - (i % 120) * interval '1 day'
            ELSE now() - interval '61 days' - (i % 60) * interval '1 day'
        END AS auth
    FROM generate_series(1, $1::bigint) AS i,
        LATERAL (SELECT CASE WHEN i % 100 < 4 THEN 'deregistered' WHEN i % 100 = 4
            THEN 'expired' WHEN i % 100 < 10 THEN 'lapsed' ELSE 'current' END AS kind) AS k,
        (SELECT $2::bigint[] AS vas) AS v
) AS made
"""

_USAGE = """
INSERT INTO product_usage (product_id, tag, count)
SELECT p.id, t.tag, 1 + get_byte(uuid_send(p.id), 0) % 3
FROM product_instances p CROSS JOIN unnest($1::text[]) WITH ORDINALITY AS t (tag, n)
WHERE p.udi_serial LIKE 'FILL%' AND p.status <> 'deregistered'
    AND (t.n = 1 OR get_byte(uuid_send(p.id), 1) % 4 = 0)
"""

_HISTORY = """
INSERT INTO usage_reports (product_id, reported_at, usage)
SELECT p.id, p.last_contact_at, jsonb_object_agg(u.tag, u.count)
FROM product_instances p JOIN product_usage u ON u.product_id = p.id
WHERE p.udi_serial LIKE 'FILL%'
GROUP BY p.id, p.last_contact_at
"""

# As recount adds them: the counted products' usage, by virtual account, tag and shard.
_TOTALS = """
INSERT INTO virtual_account_usage (virtual_account_id, tag, shard, in_use)
SELECT p.counted_in, u.tag, get_byte(uuid_send(p.id), 15) % 16, sum(u.count)
FROM product_usage u JOIN product_instances p ON p.id = u.product_id
WHERE p.counted_in IS NOT NULL AND p.udi_serial LIKE 'FILL%' GROUP BY 1, 2, 3
ON CONFLICT (virtual_account_id, tag, shard)
DO UPDATE SET in_use = virtual_account_usage.in_use + EXCLUDED.in_use
"""


async def fill(conn: asyncpg.Connection, products: int, vas: list[int], tags: list[str]) -> float:
    """Make ``products`` background product instances over the virtual accounts ``vas`` with
    usage of ``tags``, in one transaction, then VACUUM ANALYZE (as autovacuum would have by
    the time such a satellite serves); the seconds it took."""
    started = time.perf_counter()
    async with conn.transaction():
        await conn.execute(_PRODUCTS, products, vas)
        await conn.execute(_USAGE, tags)
        await conn.execute(_HISTORY)
        await conn.execute(_TOTALS)
    for table in ("product_instances", "product_usage", "usage_reports", "virtual_account_usage"):
        await conn.execute(f"VACUUM ANALYZE {table}")
    return time.perf_counter() - started


async def in_use(conn: asyncpg.Connection, va: int, tag: str) -> int:
    """What the totals hold in use of ``tag`` in virtual account ``va``."""
    total = await conn.fetchval(
        "SELECT coalesce(sum(in_use), 0) FROM virtual_account_usage "
        "WHERE virtual_account_id = $1 AND tag = $2",
        va,
        tag,
    )
    return int(total)


async def check(conn: asyncpg.Connection) -> int:
    """The virtual account, tag and shard rows whose total differs from the counted
    products' usage (0: the totals are consistent with the products)."""
    wrong = await conn.fetchval(
        "SELECT count(*) FROM (SELECT p.counted_in AS va, u.tag, "
        "  get_byte(uuid_send(p.id), 15) % 16 AS shard, sum(u.count) AS n "
        "  FROM product_usage u JOIN product_instances p ON p.id = u.product_id "
        "  WHERE p.counted_in IS NOT NULL GROUP BY 1, 2, 3) AS want "
        "FULL JOIN (SELECT virtual_account_id AS va, tag, shard, in_use AS n "
        "  FROM virtual_account_usage WHERE shard < 16 AND in_use <> 0) AS have "
        "USING (va, tag, shard) WHERE want.n IS DISTINCT FROM have.n"
    )
    return int(wrong)
