"""The product instance list at scale: what the console's list page (and the API's and the
CLI's device list) asks of the database, over many products of one virtual account.

Starts the embedded PostgreSQL in a state directory under /dev/shm, makes one account with
one virtual account and ``--products`` product instances (a tenth of them ended), then
calls the ``list_devices`` operation (25 a page, as the page asks) for each case below,
``--rounds`` times each, first with the schema as migrated and then with the indexes of
migration 014 dropped, in the same run: milliseconds per call (wall, median) and the
CPU the database's backend spent per call (from /proc), and the ratio of the two runs.

    .venv/bin/python bench/product_list.py --products 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from satellite.api import product_instances as api
from satellite.api.context import Services
from satellite.config import DatabaseSettings, Settings
from satellite.domain.access import host_operator
from satellite.wiring import (
    apply_migrations,
    create_key_material,
    database_server,
    load_runtime,
    open_services,
)

PAGE = 25
INDEXES = ("product_instances_va_registered_at", "product_instances_udi_serial")
CASES: dict[str, Callable[[int], dict[str, object]]] = {
    "first page": lambda n: {},
    "page at offset 50 000": lambda n: {"offset": 50_000},
    "last page": lambda n: {"offset": max(n * 9 // 10 - PAGE, 0)},
    "every state, first page": lambda n: {"status": "all"},
    "one serial number": lambda n: {"udi_serial": f"SN{n // 2:08d}"},
    "part of a host name": lambda n: {"host_name": "host-0004242"},
}


def backend_cpu_seconds(pid: int) -> float:
    """User + system CPU of one PostgreSQL backend so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def fill(services: Services, products: int) -> None:
    async with services.db.transaction() as conn:
        account = await conn.fetchval("INSERT INTO accounts (name) VALUES ('Acme') RETURNING id")
        va = await conn.fetchval(
            "INSERT INTO virtual_accounts (account_id, name, is_default) "
            "VALUES ($1, 'DEFAULT', true) RETURNING id",
            account,
        )
        # Registered over a year, one in ten ended (deregistered).
        await conn.execute(
            "INSERT INTO product_instances (id, virtual_account_id, udi_pid, udi_serial, "
            "udi_uuid, product_type, product_version, hostname, public_jwk, export_controlled, "
            "status, registered_at, last_contact_at, certificate_expires_at, "
            "authorization_expires_at, ended_at) "
            "SELECT gen_random_uuid(), $1, 'UCM', 'SN' || lpad(i::text, 8, '0'), "
            "gen_random_uuid()::text, 'UCM', '15.0', 'host-' || lpad(i::text, 7, '0'), "
            "'{}'::jsonb, false, "
            "CASE WHEN i % 10 = 0 THEN 'deregistered' ELSE 'registered' END, "
            "now() - interval '365 days' + i * interval '30 seconds', now(), "
            "now() + interval '365 days', now() + interval '90 days', "
            "CASE WHEN i % 10 = 0 THEN now() END "
            "FROM generate_series(1, $2) AS i",
            va,
            products,
        )
    async with services.db.connection() as conn:
        await conn.execute("ANALYZE product_instances")


async def measure(services: Services, products: int, rounds: int) -> dict[str, tuple[float, float]]:
    """Per case: median wall ms per call and backend CPU ms per call."""
    operator = host_operator("bench")
    figures = {}
    async with services.db.connection() as conn:
        backend = await conn.fetchval("SELECT pg_backend_pid()")
    for case, fields in CASES.items():
        query = api.DevicesQuery(account="Acme", va="DEFAULT", limit=PAGE, **fields(products))
        walls = []
        cpu_before = backend_cpu_seconds(backend)
        for _ in range(rounds):
            started = time.perf_counter()
            answer = await api.list_devices(services, operator, query)
            walls.append(time.perf_counter() - started)
        cpu = backend_cpu_seconds(backend) - cpu_before
        assert answer.devices or case != "first page"  # the world is as made
        figures[case] = (statistics.median(walls) * 1000, cpu / rounds * 1000)
    return figures


async def run(settings: Settings, dsn: str, products: int, rounds: int) -> None:
    await apply_migrations(settings, dsn)
    runtime = load_runtime(settings, dsn)
    async with open_services(runtime) as services:
        started = time.perf_counter()
        await fill(services, products)
        print(f"{products} product instances made in {time.perf_counter() - started:.0f} s")
        with_index = await measure(services, products, rounds)
        async with services.db.connection() as conn:
            for index in INDEXES:
                await conn.execute(f"DROP INDEX {index}")
        without = await measure(services, products, rounds)
    print(f"load average {os.getloadavg()[0]:.2f}, {rounds} calls a case, {PAGE} a page")
    print(f"{'case':28} {'with 014':>18} {'without':>18} {'wall ratio':>10}")
    for case in CASES:
        (wall_a, cpu_a), (wall_b, cpu_b) = with_index[case], without[case]
        print(
            f"{case:28} {wall_a:7.1f} ms {cpu_a:5.1f} cpu {wall_b:7.1f} ms {cpu_b:5.1f} cpu "
            f"{wall_b / wall_a:9.1f}x"
        )


def on_one_connection(bench: Callable[[Settings, str], Coroutine[Any, Any, None]]) -> None:
    """``bench(settings, dsn)`` against an embedded PostgreSQL in a new state directory on
    /dev/shm (removed after), its pool one connection, so that every query runs in the one
    backend whose CPU is read."""
    state = Path(tempfile.mkdtemp(prefix="satellite-bench-", dir="/dev/shm"))
    try:
        settings = Settings(
            state_dir=str(state),
            listen=["127.0.0.1:0"],
            database=DatabaseSettings(pool_min_size=1, pool_max_size=1),
        )
        create_key_material(settings, [])
        with database_server(settings) as dsn:
            asyncio.run(bench(settings, dsn))
    finally:
        shutil.rmtree(state, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    on_one_connection(lambda settings, dsn: run(settings, dsn, args.products, args.rounds))


if __name__ == "__main__":
    main()
