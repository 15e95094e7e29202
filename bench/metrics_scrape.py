"""What a Prometheus scrape of /metrics costs with many product instances.

Starts the embedded PostgreSQL in a state directory under /dev/shm, makes ``--products``
product instances in one virtual account (``product_list.fill``: a tenth of them ended),
gives the virtual account pool lines of ``--tags`` catalog tags and each tag some usage,
then scrapes ``/metrics`` over real HTTP (the app on 127.0.0.1, the token on the main
listener) ``--rounds`` times: the scrape's wall time (median, max), the part of it spent
reading the database (``satellite_metrics_database_read_seconds``), the CPU the database
backends spent per scrape, and each of the scrape's queries on its own.

    .venv/bin/python bench/metrics_scrape.py --products 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer
from product_list import fill  # (bench/ is on the path when this script runs)
from prometheus_client.parser import text_string_to_metric_families

from satellite.api.context import Services
from satellite.config import DatabaseSettings, MetricsSettings, Settings
from satellite.services.metrics import MetricsReader
from satellite.storage import metrics, sync
from satellite.wiring import (
    apply_migrations,
    create_app,
    create_key_material,
    database_server,
    load_runtime,
    open_services,
)

TOKEN = secrets.token_urlsafe(16)


def backends_cpu_seconds() -> float:
    """User + system CPU of every PostgreSQL process so far (Linux /proc)."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"postgres" not in (proc / "cmdline").read_bytes():
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def add_pool_and_usage(services: Services, tags: int) -> None:
    catalog_tags = [entry.tag for entry in services.catalog][:tags]
    async with services.db.transaction() as conn:
        va = await conn.fetchval("SELECT id FROM virtual_accounts WHERE name = 'DEFAULT'")
        for n, tag in enumerate(catalog_tags):
            await conn.execute(
                "INSERT INTO license_lines (virtual_account_id, tag, quantity, license_type) "
                "VALUES ($1, $2, $3, 'PERPETUAL')",
                va,
                tag,
                1000 * (n + 1),
            )
            await conn.execute(
                "INSERT INTO virtual_account_usage (virtual_account_id, tag, shard, in_use) "
                "SELECT $1, $2, s, $3 FROM generate_series(0, 15) AS s",
                va,
                tag,
                900 * (n + 1) // 16,
            )


async def queries(services: Services, rounds: int) -> dict[str, float]:
    """Median ms of each of the scrape's reads on its own."""
    reader = MetricsReader(services.db, services.licenses, services.catalog, 60.0)
    cases = {
        "product instances by state": metrics.product_instances_by_status,
        "positions (all accounts)": services.licenses.all_positions,
        "open alerts by type": metrics.open_alerts_by_type,
        "sync links": sync.links,
    }
    figures = {}
    for name, query in cases.items():
        walls = []
        for _ in range(rounds):
            async with services.db.snapshot() as conn:
                started = time.perf_counter()
                await query(conn)
                walls.append(time.perf_counter() - started)
        figures[name] = statistics.median(walls) * 1000
    walls = []
    for _ in range(rounds):
        started = time.perf_counter()
        await reader.read()
        walls.append(time.perf_counter() - started)
    figures["the reader, all in one snapshot"] = statistics.median(walls) * 1000
    return figures


async def run(settings: Settings, dsn: str, products: int, tags: int, rounds: int) -> None:
    await apply_migrations(settings, dsn)
    runtime = load_runtime(settings, dsn)
    async with open_services(runtime) as services:
        started = time.perf_counter()
        await fill(services, products)
        await add_pool_and_usage(services, tags)
        print(f"{products} product instances made in {time.perf_counter() - started:.0f} s")
        each = await queries(services, rounds)
    server = TestServer(create_app(runtime), host="127.0.0.1")
    await server.start_server()
    walls, reads, cpu = [], [], 0.0
    size = 0
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(rounds):
                cpu_before = backends_cpu_seconds()
                started = time.perf_counter()
                async with session.get(
                    server.make_url("/metrics"), headers={"Authorization": f"Bearer {TOKEN}"}
                ) as response:
                    text = await response.text()
                    assert response.status == 200, text
                walls.append(time.perf_counter() - started)
                cpu += backends_cpu_seconds() - cpu_before
                size = len(text)
                for family in text_string_to_metric_families(text):
                    for sample in family.samples:
                        if sample.name == "satellite_metrics_database_read_seconds":
                            reads.append(sample.value)
                        if sample.name == "satellite_product_instances":
                            assert sample.value > 0
    finally:
        await server.close()
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores), {rounds} scrapes")
    print(
        f"scrape over HTTP: median {statistics.median(walls) * 1000:.0f} ms, "
        f"max {max(walls) * 1000:.0f} ms, {size} bytes"
    )
    print(f"  of which reading the database: median {statistics.median(reads) * 1000:.0f} ms")
    print(f"  PostgreSQL CPU per scrape: {cpu / rounds * 1000:.0f} ms")
    for name, ms in each.items():
        print(f"  {name:34} {ms:8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--tags", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="satellite-bench-", dir="/dev/shm"))
    try:
        token = state / "metrics-token"
        token.write_text(TOKEN)
        settings = Settings(
            state_dir=str(state),
            listen=["127.0.0.1:0"],
            database=DatabaseSettings(pool_min_size=1, pool_max_size=4),
            metrics=MetricsSettings(serve="main-listener", bearer_token_file=str(token)),
        )
        create_key_material(settings, [])
        with database_server(settings) as dsn:
            asyncio.run(run(settings, dsn, args.products, args.tags, args.rounds))
    finally:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
