"""One run of the usage-rollup job at scale: ``--accounts`` virtual accounts of ``--tags``
tags each (a pool line per tag, ``--products`` products per virtual account reporting one of
every tag, their usage in the running totals as reports leave it).

Starts the embedded PostgreSQL in a state directory under /dev/shm, makes the world, then
runs the job ``--rounds`` times, each a minute after the last (all in one UTC day, so every
run after the first updates the day's rows): milliseconds per run (wall, median and
slowest), the CPU the database's backend spent per run (from /proc), and the rows written.

    .venv/bin/python bench/usage_rollup.py --accounts 1000 --tags 10
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time

from product_list import backend_cpu_seconds, on_one_connection

from satellite.api.context import Services
from satellite.config import Settings
from satellite.wiring import (
    apply_migrations,
    load_runtime,
    open_services,
)


async def fill(services: Services, vas: int, tags: int, products: int) -> None:
    catalog = [entry.tag for entry in services.catalog][:tags]
    assert len(catalog) == tags, f"the catalog has {len(catalog)} tags"
    async with services.db.transaction() as conn:
        account = await conn.fetchval("INSERT INTO accounts (name) VALUES ('Acme') RETURNING id")
        await conn.execute(
            "INSERT INTO virtual_accounts (account_id, name, is_default) "
            "SELECT $1, 'VA' || lpad(i::text, 5, '0'), i = 1 FROM generate_series(1, $2) AS i",
            account,
            vas,
        )
        await conn.execute(
            "INSERT INTO license_lines (virtual_account_id, tag, quantity, license_type) "
            "SELECT va.id, t.tag, 100, 'PERPETUAL' FROM virtual_accounts va "
            "CROSS JOIN unnest($1::text[]) AS t(tag)",
            catalog,
        )
        await conn.execute(
            "INSERT INTO product_instances (id, virtual_account_id, udi_pid, udi_serial, "
            "udi_uuid, product_type, product_version, public_jwk, export_controlled, status, "
            "registered_at, last_contact_at, certificate_expires_at, authorization_expires_at, "
            "counted_in) "
            "SELECT gen_random_uuid(), va.id, 'UCM', 'SN' || va.id || '-' || i, "
            "gen_random_uuid()::text, 'UCM', '15.0', '{}'::jsonb, false, 'registered', now(), "
            "now(), now() + interval '365 days', now() + interval '90 days', va.id "
            "FROM virtual_accounts va CROSS JOIN generate_series(1, $1) AS i",
            products,
        )
        await conn.execute(
            "INSERT INTO product_usage (product_id, tag, count) "
            "SELECT p.id, t.tag, 1 FROM product_instances p "
            "CROSS JOIN unnest($1::text[]) AS t(tag)",
            catalog,
        )
        # The running totals as the reports keep them (sql/004_usage_totals.sql).
        await conn.execute(
            "INSERT INTO virtual_account_usage (virtual_account_id, tag, shard, in_use) "
            "SELECT p.counted_in, u.tag, get_byte(uuid_send(p.id), 15) % 16, sum(u.count) "
            "FROM product_usage u JOIN product_instances p ON p.id = u.product_id "
            "GROUP BY 1, 2, 3"
        )
    async with services.db.connection() as conn:
        await conn.execute("ANALYZE")


async def run(settings: Settings, dsn: str, args: argparse.Namespace) -> None:
    await apply_migrations(settings, dsn)
    runtime = load_runtime(settings, dsn)
    async with open_services(runtime) as services:
        started = time.perf_counter()
        await fill(services, args.accounts, args.tags, args.products)
        print(f"world made in {time.perf_counter() - started:.0f} s")
        statements: list[str] = []
        async with services.db.connection() as conn:
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            # (The pool's one connection: the job's statements are logged as they run.)
            conn.add_query_logger(lambda record: statements.append(record.query))
        noon = dt.datetime.combine(dt.datetime.now(dt.UTC).date(), dt.time(12), tzinfo=dt.UTC)
        walls, cpus, rows = [], [], 0
        for n in range(args.rounds):
            cpu_before = backend_cpu_seconds(backend)
            logged = len(statements)
            started = time.perf_counter()
            report = await services.usage.rollup(noon + n * dt.timedelta(minutes=1))
            walls.append(time.perf_counter() - started)
            cpus.append(backend_cpu_seconds(backend) - cpu_before)
            assert report is not None
            rows = report.counts["rows"]
            # (the last run's: the first also reads type information once per connection)
            per_run = len(statements) - logged
        async with services.db.connection() as conn:
            kept = await conn.fetchval("SELECT count(*) FROM usage_daily")
            samples = await conn.fetchval("SELECT min(samples) FROM usage_daily")
    assert kept == rows == args.accounts * args.tags
    assert samples == args.rounds
    print(
        f"load average {os.getloadavg()[0]:.2f}; {args.accounts} virtual accounts x {args.tags} "
        f"tags, {args.products} products each; {rows} rows a run, {args.rounds} runs, "
        f"{per_run} statements a run"
    )
    print(
        f"wall per run: median {statistics.median(walls) * 1000:.0f} ms, slowest "
        f"{max(walls) * 1000:.0f} ms (first, all inserts: {walls[0] * 1000:.0f} ms); "
        f"database CPU per run: median {statistics.median(cpus) * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1000, help="virtual accounts")
    parser.add_argument("--tags", type=int, default=10)
    parser.add_argument("--products", type=int, default=10, help="per virtual account")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    on_one_connection(lambda settings, dsn: run(settings, dsn, args))


if __name__ == "__main__":
    main()
