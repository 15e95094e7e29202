"""The usage report's statements at scale: their plans and their cost at 10k and at a million
product instances.

Starts the embedded PostgreSQL in a state directory under /dev/shm, makes one account with
``--vas`` virtual accounts and ``--products`` product instances spread over them in SQL (one
in seven ended; the others use one or two of four tags, with authorizations running out
over 90 days, certificates over a year, and ``--lapsed`` of them lapsed since the job last
recounted them, as within the hour before it runs), the usage totals as they would be.
Then, for one product of the first virtual account:

1. the plans of a report's statements (``--explain``): those of the report's function
   (sql/023_usage_report.sql), each statement in it as ``auto_explain`` shows it (ANALYZE,
   BUFFERS, nested statements), and ``EXPLAIN (ANALYZE, BUFFERS)`` of the prepared
   statement that reads what is in use (a pool state without a report), with the custom
   plan and with ``plan_cache_mode = force_generic_plan`` (what a statement prepared once
   per connection runs after five calls), each in a transaction rolled back;
2. ``--rounds`` reports through ``storage.usage_report.report_usage`` (one statement, as
   the daemon runs it) and ``in_use_by_virtual_account``, with ``--plan-cache-mode``
   (auto: as the daemon runs them): the database backend's CPU per call (from /proc) and
   the wall time per call (median).

    .venv/bin/python bench/report_plans.py --products 1000000 --explain
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg

from satellite.config import DatabaseSettings, Settings
from satellite.services.licenses import POOL_ALERT_LOCK_BASE
from satellite.storage import usage_report, usage_totals
from satellite.storage.db import Database
from satellite.wiring import apply_migrations, create_key_material, database_server

TAGS = ("regid.a", "regid.b", "regid.c", "regid.d")


def backend_cpu_seconds(pid: int) -> float:
    """User + system CPU of one PostgreSQL backend so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def fill(conn: asyncpg.Connection, products: int, vas: int, lapsed: int) -> None:
    account = await conn.fetchval("INSERT INTO accounts (name) VALUES ('Acme') RETURNING id")
    await conn.execute(
        "INSERT INTO virtual_accounts (account_id, name, is_default) "
        "SELECT $1, 'VA' || i, i = 1 FROM generate_series(1, $2) AS i",
        account,
        vas,
    )
    first = await conn.fetchval("SELECT min(id) FROM virtual_accounts")
    # Product i is in virtual account i % vas; the ones with i <= lapsed ran out an hour ago.
    await conn.execute(
        "INSERT INTO product_instances (id, virtual_account_id, udi_pid, udi_serial, "
        "udi_uuid, product_type, product_version, hostname, public_jwk, export_controlled, "
        "status, registered_at, last_contact_at, certificate_expires_at, "
        "authorization_expires_at, ended_at, counted_in) "
        "SELECT gen_random_uuid(), $1 + i % $3, 'UCM', 'SN' || lpad(i::text, 8, '0'), "
        "gen_random_uuid()::text, 'UCM', '15.0', 'host-' || lpad(i::text, 7, '0'), "
        "'{}'::jsonb, false, "
        "CASE WHEN i % 7 = 0 THEN 'deregistered' ELSE 'registered' END, "
        "now() - interval '365 days', now() - interval '1 hour', "
        "now() + (i % 365 + 1) * interval '1 day', "
        "CASE WHEN i <= $4 THEN now() - interval '1 hour' "
        "  ELSE now() + (i % 2160 + 1) * interval '1 hour' END, "
        "CASE WHEN i % 7 = 0 THEN now() END, "
        "CASE WHEN i % 7 <> 0 THEN $1 + i % $3 END "
        "FROM generate_series(1, $2) AS i",
        first,
        products,
        vas,
        lapsed,
    )
    await conn.execute(
        "INSERT INTO product_usage (product_id, tag, count) "
        "SELECT id, ($1::text[])[1 + get_byte(uuid_send(id), 0) % 4], "
        "1 + get_byte(uuid_send(id), 1) % 5 "
        "FROM product_instances WHERE status = 'registered' "
        "UNION ALL SELECT id, ($1::text[])[1 + (get_byte(uuid_send(id), 0) + 1) % 4], 2 "
        "FROM product_instances WHERE status = 'registered' AND get_byte(uuid_send(id), 2) < 128",
        list(TAGS),
    )
    await conn.execute(
        "INSERT INTO virtual_account_usage (virtual_account_id, tag, shard, in_use) "
        "SELECT p.counted_in, u.tag, get_byte(uuid_send(p.id), 15) % 16, sum(u.count) "
        "FROM product_usage u JOIN product_instances p ON p.id = u.product_id "
        "WHERE p.counted_in IS NOT NULL GROUP BY 1, 2, 3"
    )
    await conn.execute("VACUUM ANALYZE product_instances")
    await conn.execute("VACUUM ANALYZE product_usage")
    await conn.execute("VACUUM ANALYZE virtual_account_usage")


async def explain(conn: asyncpg.Connection, name: str, sql: str, types: str, args: str) -> None:
    """Print the custom and the generic plan of one prepared statement, run and rolled back
    (a function's statements as auto_explain tells them, the second run of each: the first
    also plans them)."""
    await conn.execute(f"PREPARE {name} ({types}) AS {sql}")
    nested: list[str] = []

    def told(_: object, message: asyncpg.PostgresLogMessage) -> None:
        nested.append(str(message.message))

    conn.add_log_listener(told)
    for mode in ("force_custom_plan", "force_custom_plan", "force_generic_plan"):
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
            nested.clear()
            rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE {name} ({args})")
        finally:
            await tx.rollback()
        print(f"--- {name}, {mode}")
        print("\n".join(row[0] for row in rows))
        for plan in nested:
            if "EXPLAIN" not in plan.split("\n", 2)[1]:  # (not the EXPLAIN itself)
                print(plan)
    conn.remove_log_listener(told)
    await conn.execute(f"DEALLOCATE {name}")


async def tell_nested_plans(conn: asyncpg.Connection) -> None:
    """auto_explain in this session: every statement's plan, nested ones too, as a notice."""
    await conn.execute("LOAD 'auto_explain'")
    for name, value in (
        ("log_min_duration", "0"),
        ("log_analyze", "on"),
        ("log_buffers", "on"),
        ("log_timing", "off"),
        ("log_nested_statements", "on"),
        ("log_level", "notice"),
    ):
        await conn.execute(f"SET auto_explain.{name} = {value}")


async def report(conn: asyncpg.Connection, product: str, i: int) -> None:
    """Report i of ``product`` (its key the fill's), one statement on its own."""
    now = dt.datetime.now(dt.UTC)
    done = await usage_report.report_usage(
        conn,
        product,
        jwk={},
        nonce=f"bench-{i}-{now.timestamp()}",
        forget_host=False,
        usage={"regid.a": i % 6} if i % 6 else {},
        now=now,
        day=now.date(),
        pool_lock_base=POOL_ALERT_LOCK_BASE,
    )
    assert isinstance(done, usage_report.Reported), done


def literal(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


async def run(
    dsn: str, products: int, vas: int, lapsed: int, rounds: int, plans: bool, mode: str
) -> None:
    # One connection, so that every statement runs in the one backend whose CPU is read.
    db = await Database.connect(dsn, DatabaseSettings(pool_min_size=1, pool_max_size=1))
    async with db.connection() as conn:
        started = time.perf_counter()
        await fill(conn, products, vas, lapsed)
        print(f"{products} product instances made in {time.perf_counter() - started:.0f} s")
        va = await conn.fetchval("SELECT min(id) FROM virtual_accounts")
        product = str(
            await conn.fetchval(
                "SELECT id FROM product_instances WHERE virtual_account_id = $1 "
                "AND counted_in IS NOT NULL AND authorization_expires_at > now() LIMIT 1",
                va,
            )
        )
        now = dt.datetime.now(dt.UTC)
        if plans:
            await tell_nested_plans(conn)
            await explain(
                conn,
                "report_usage",
                usage_report.REPORT_USAGE,
                "uuid, jsonb, text, boolean, text[], int[], jsonb, timestamptz, date, bigint",
                f"{literal(product)}, '{{}}', 'a-nonce', false, ARRAY['regid.a'], ARRAY[3], "
                f"'{{\"regid.a\": 3}}', {literal(now)}, {literal(now.date())}, 0",
            )
            await explain(
                conn,
                "in_use",
                usage_totals.IN_USE,
                "bigint[], timestamptz",
                f"ARRAY[{va}]::bigint[], {literal(now)}",
            )
            await conn.execute("SET auto_explain.log_min_duration = -1")
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        await conn.execute(f"SET plan_cache_mode = {mode}")
        figures = {}
        for name, call in (
            ("report_usage", lambda i: report(conn, product, i)),
            (
                "in_use_by_virtual_account",
                lambda i: usage_totals.in_use_by_virtual_account(
                    conn, [va], dt.datetime.now(dt.UTC)
                ),
            ),
        ):
            walls = []
            cpu_before = backend_cpu_seconds(backend)
            for i in range(rounds):
                began = time.perf_counter()
                await call(i)
                walls.append(time.perf_counter() - began)
            cpu = backend_cpu_seconds(backend) - cpu_before
            figures[name] = (statistics.median(walls) * 1000, cpu / rounds * 1000)
    await db.close()
    print(
        f"load average {os.getloadavg()[0]:.2f}, {rounds} calls each, {products} products, "
        f"plan_cache_mode {mode}"
    )
    for name, (wall, cpu) in figures.items():
        print(f"{name:28} {wall:7.3f} ms wall {cpu:7.3f} ms backend CPU per call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--vas", type=int, default=10)
    parser.add_argument("--lapsed", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument(
        "--plan-cache-mode",
        choices=("auto", "force_custom_plan", "force_generic_plan"),
        default="auto",
        help="for the measured calls (auto: as the daemon runs them)",
    )
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="satellite-bench-", dir="/dev/shm"))
    try:
        settings = Settings(state_dir=str(state), listen=["127.0.0.1:0"])
        create_key_material(settings, [])
        with database_server(settings) as dsn:
            asyncio.run(apply_migrations(settings, dsn))
            asyncio.run(
                run(
                    dsn,
                    args.products,
                    args.vas,
                    args.lapsed,
                    args.rounds,
                    args.explain,
                    args.plan_cache_mode,
                )
            )
    finally:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
