"""Sync benchmark: a request bundle for N product instances, exported, answered, imported.

Starts the embedded PostgreSQL in a temporary directory (or uses ``--dsn``), makes two
migrated databases and two state directories with their own keys (a satellite and an
upstream), fills the satellite with N product instances in SQL, registers it with the
upstream by files, then measures, each phase in a child process of its own (so that one
phase's peak memory does not hide another's):

  1. export of the request bundle at the satellite (every product: the first sync),
  2. the upstream's answer to it: verify, then apply the N products to its mirror,
  3. the satellite's import of the answer,
  4.-6. the same cycle again with nothing changed (``--changed K``: K products changed).

For each phase: wall time, the Python process's CPU time and peak RSS (VmHWM), the
PostgreSQL server's CPU time (every process of the server, read from /proc), and the
bundle's size. Everything is bounded: one pass over N products per phase, and the
PostgreSQL server stops at the end. See bench/README.md.

    python bench/sync --products 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# Benchmark this checkout, whatever an editable install points at (first on the path: the
# script's own directory must not shadow the ``sync`` package).
ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from satellite.config import DatabaseSettings, Settings, SyncSettings  # noqa: E402
from satellite.crypto.keys import KeyPaths, ensure_server_keys  # noqa: E402
from satellite.domain.access import host_operator  # noqa: E402
from satellite.resources import migrations_dir  # noqa: E402
from satellite.storage.embedded import EmbeddedPostgres  # noqa: E402
from satellite.storage.migrations import load_migrations, migrate  # noqa: E402
from satellite.wiring import load_runtime, open_services  # noqa: E402
from sync.spool import write_atomically  # noqa: E402

OPERATOR = host_operator("bench")
SITE, ACME = "Site", "Acme"
VIRTUAL_ACCOUNTS = ["Default", "Voice", "Collaboration", "Routing", "Security"]
TAGS = [
    "regid.2016-07.com.cisco.UCM_Enhanced_12.0_66d0d1cf-4863-4761-91d0-d01d3eb1949a",
    "regid.2017-03.com.cisco.DNA_Advantage,1.0_8d28d2b6-a7cb-4ee3-a3f3-b1d28a7a5a48",
    "regid.2018-01.com.cisco.ISR_4400_Security,1.0_29f0a2d3-6f0b-41f9-9ac5-3a9f8e3e1f2b",
]
PHASES = ["export", "answer", "import", "export-again", "answer-again", "import-again"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- the two servers ---------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """What a phase's child process needs (passed as JSON)."""

    work: str
    satellite_dsn: str
    upstream_dsn: str

    @property
    def path(self) -> Path:
        return Path(self.work)

    def settings(self, role: str) -> Settings:
        name = "upstream" if role == "upstream" else "satellite"
        dsn = self.upstream_dsn if role == "upstream" else self.satellite_dsn
        return Settings(
            role="upstream" if role == "upstream" else "satellite",
            state_dir=str(self.path / f"{name}-state"),
            listen=["127.0.0.1:0"],
            database=DatabaseSettings(dsn=dsn, pool_min_size=1, pool_max_size=4),
            sync=SyncSettings(spool_dir=str(self.path / f"{name}-spool")),
        )

    def bundle(self, phase: str) -> Path:
        """The file a phase writes: export* a request, answer* an answer."""
        again = "-again" if phase.endswith("-again") else ""
        kind = "request" if phase.startswith("export") else "answer"
        return self.path / f"{kind}{again}.jsonl"


def dsn_for(server_dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(server_dsn)._replace(path=f"/{database}"))


async def create_databases(server_dsn: str, names: list[str]) -> None:
    conn = await asyncpg.connect(dsn_for(server_dsn, "postgres"))
    try:
        for name in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    migrations = load_migrations(migrations_dir())
    for name in names:
        db = await asyncpg.connect(dsn_for(server_dsn, name))
        try:
            await migrate(db, migrations)
        finally:
            await db.close()


async def drop_databases(server_dsn: str, names: list[str]) -> None:
    conn = await asyncpg.connect(dsn_for(server_dsn, "postgres"))
    try:
        for name in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None  # another host
    return int(stat.rsplit(")", 1)[1].split()[1])


async def postmaster_pid(dsn: str) -> int | None:
    """The PostgreSQL server's main process, when it runs on this host (its CPU time is
    read from /proc): the parent of this connection's backend."""
    conn = await asyncpg.connect(dsn)
    try:
        return _parent(await conn.fetchval("SELECT pg_backend_pid()"))
    finally:
        await conn.close()


def _cpu_ticks(pid: int, children_too: bool) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime are fields 14-17 (1-based); fields[0] is field 3.
    ticks = int(fields[11]) + int(fields[12])
    if children_too:
        ticks += int(fields[13]) + int(fields[14])
    return ticks


def server_cpu_seconds(postmaster: int | None) -> float | None:
    """CPU time of the whole server: the postmaster, its live processes, and the ones that
    ended (a backend's time goes to the postmaster's children times when it exits)."""
    if postmaster is None:
        return None
    total = _cpu_ticks(postmaster, children_too=True)
    children = Path(f"/proc/{postmaster}/task/{postmaster}/children")
    for pid in children.read_text().split():
        try:
            total += _cpu_ticks(int(pid), children_too=False)
        except (OSError, IndexError):
            continue  # ended meanwhile (and counted in the postmaster's)
    return total / CLOCK_TICKS


# --- filling the satellite ---------------------------------------------------------------

_PRODUCTS = """
INSERT INTO product_instances (id, virtual_account_id, udi_pid, udi_serial, udi_uuid,
    product_type, product_version, hostname, ip_address, public_jwk, export_controlled,
    status, registered_at, last_contact_at, certificate_expires_at, authorization_expires_at,
    ended_at, counted_in)
SELECT md5('bench-product-' || i)::uuid,
    vas[1 + i % cardinality(vas)],
    (ARRAY['C9300-24T', 'C9500-32C', 'ISR4451-X/K9', 'C8000V'])[1 + i % 4],
    'FOC' || lpad(i::text, 8, '0'),
    md5('bench-udi-' || i)::uuid::text,
    (ARRAY['Switch', 'Switch', 'Router', 'Virtual'])[1 + i % 4],
    '17.' || (9 + i % 4) || '.' || (i % 7),
    'edge-' || lpad(i::text, 7, '0') || '.site.example.net',
    '10.' || ((i >> 16) & 255) || '.' || ((i >> 8) & 255) || '.' || (i & 255),
    jsonb_build_object('kty', 'EC', 'crv', 'P-256',
        'x', rtrim(translate(encode(sha256(('x' || i)::bytea), 'base64'), '+/', '-_'), '='),
        'y', rtrim(translate(encode(sha256(('y' || i)::bytea), 'base64'), '+/', '-_'), '=')),
    i % 20 = 0,
    CASE WHEN i % 25 = 0 THEN 'deregistered' ELSE 'registered' END,
    now() - (i % 5000) * interval '1 hour',
    now() - (i % 24) * interval '1 hour',
    now() + interval '300 days',
    now() + interval '80 days',
    CASE WHEN i % 25 = 0 THEN now() - (i % 100) * interval '1 hour' END,
    CASE WHEN i % 25 = 0 THEN NULL ELSE vas[1 + i % cardinality(vas)] END
FROM generate_series(1, $1::bigint) AS i,
    (SELECT array_agg(id ORDER BY id) AS vas FROM virtual_accounts) AS v
"""

_USAGE = """
INSERT INTO product_usage (product_id, tag, count)
SELECT p.id, t.tag, 1 + (get_byte(uuid_send(p.id), 0) % 3)
FROM product_instances p CROSS JOIN unnest($1::text[]) WITH ORDINALITY AS t (tag, n)
WHERE p.status = 'registered' AND (t.n = 1 OR get_byte(uuid_send(p.id), 1) % 4 = 0)
"""

_TOTALS = """
INSERT INTO virtual_account_usage (virtual_account_id, tag, shard, in_use)
SELECT p.counted_in, u.tag, get_byte(uuid_send(p.id), 15) % 16, sum(u.count)
FROM product_usage u JOIN product_instances p ON p.id = u.product_id
WHERE p.counted_in IS NOT NULL GROUP BY 1, 2, 3
"""

# One product in a hundred is a specific license reservation with its licenses.
_RESERVATIONS = """
INSERT INTO reservations (product_id, public_key, request_code, status, current_timestamp_ms,
    current_code, created_at, updated_at)
SELECT id, 'A' || encode(sha256(id::text::bytea), 'hex'), 'CB-' || udi_serial, 'active',
    1700000000000, 'AUTH-' || udi_serial, registered_at, registered_at
FROM product_instances WHERE status = 'registered' AND get_byte(uuid_send(id), 2) < 3
"""

_RESERVED = """
INSERT INTO reservation_licenses (product_id, stage, line_id, tag, quantity, license_type,
    start_date, end_date)
SELECT r.product_id, 'current', t.n, t.tag, 1 + t.n::int,
    CASE WHEN t.n = 1 THEN 'PERPETUAL' ELSE 'TERM' END,
    CASE WHEN t.n = 1 THEN NULL ELSE current_date END,
    CASE WHEN t.n = 1 THEN NULL ELSE current_date + 365 END
FROM reservations r CROSS JOIN unnest($1::text[]) WITH ORDINALITY AS t (tag, n) WHERE t.n <= 2
"""


async def accounts_and_pools(conn: asyncpg.Connection, account: str, lines: bool) -> None:
    account_id = await conn.fetchval(
        "INSERT INTO accounts (name) VALUES ($1) RETURNING id", account
    )
    for index, name in enumerate(VIRTUAL_ACCOUNTS):
        va_id = await conn.fetchval(
            "INSERT INTO virtual_accounts (account_id, name, description, is_default) "
            "VALUES ($1, $2, $3, $4) RETURNING id",
            account_id,
            name,
            f"{name} products",
            index == 0,
        )
        if lines:
            for tag in TAGS:
                await conn.execute(
                    "INSERT INTO license_lines (virtual_account_id, tag, quantity, "
                    "license_type) VALUES ($1, $2, $3, 'PERPETUAL')",
                    va_id,
                    tag,
                    1_000_000,
                )


async def fill(setup: Setup, products: int) -> dict[str, int]:
    conn = await asyncpg.connect(setup.satellite_dsn)
    try:
        await accounts_and_pools(conn, SITE, lines=False)
        await conn.execute(_PRODUCTS, products)
        await conn.execute(_USAGE, TAGS)
        await conn.execute(_TOTALS)
        await conn.execute(_RESERVATIONS)
        await conn.execute(_RESERVED, TAGS)
        await conn.execute("VACUUM ANALYZE")
        counts = {
            table: int(await conn.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608
            for table in ("product_instances", "product_usage", "reservations")
        }
    finally:
        await conn.close()
    up = await asyncpg.connect(setup.upstream_dsn)
    try:
        await accounts_and_pools(up, ACME, lines=True)
    finally:
        await up.close()
    return counts


async def register(setup: Setup) -> str:
    """The satellite registers with the upstream by files (disconnected mode)."""
    request, answer = setup.path / "registration.request", setup.path / "registration.answer"
    up_runtime = load_runtime(setup.settings("upstream"), setup.upstream_dsn)
    sat_runtime = load_runtime(setup.settings("satellite"), setup.satellite_dsn)
    async with open_services(up_runtime) as up, open_services(sat_runtime) as sat:
        token = (await up.upstream.create_token(OPERATOR, ACME, "bench", None)).secret
        await sat.sync.request_registration(
            OPERATOR, SITE, token=token, name="bench-site", upstream_url=None, out=request
        )
        _, data = await up.upstream.answer(request, OPERATOR)
        write_atomically(answer, data)
        link = await sat.sync.complete_registration(OPERATOR, SITE, answer)
    return link.satellite_id


async def change(setup: Setup, products: int) -> None:
    """Between the cycles: ``products`` products change hostname (the next request's)."""
    conn = await asyncpg.connect(setup.satellite_dsn)
    try:
        await conn.execute(
            "UPDATE product_instances SET hostname = hostname || '.moved' WHERE id IN "
            "(SELECT id FROM product_instances ORDER BY id LIMIT $1)",
            products,
        )
    finally:
        await conn.close()


# --- one phase, in a child process ----------------------------------------------------------


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    return float("nan")


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM, not ru_maxrss, which Linux carries
    over an exec from the process that forked it (the parent's size would show)."""
    return _status_mb("VmHWM")


def rss_mb() -> float:
    return _status_mb("VmRSS")


def reset_peak_rss() -> None:
    """Start VmHWM again from the current RSS (Linux 4.0+), so that the peak reported is the
    phase's, not that of the imports before it."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_phase(setup: Setup, phase: str) -> dict[str, Any]:
    role = "upstream" if phase.startswith("answer") else "satellite"
    dsn = setup.upstream_dsn if role == "upstream" else setup.satellite_dsn
    runtime = load_runtime(setup.settings(role), dsn)
    result: dict[str, Any] = {}
    async with open_services(runtime) as services:
        before, peak_before = rss_mb(), peak_rss_mb()
        reset_peak_rss()
        cpu, started = cpu_seconds(), time.perf_counter()
        if phase.startswith("export"):
            out = setup.bundle(phase)
            await services.sync.write_request(OPERATOR, SITE, out)
            result["bytes"] = out.stat().st_size
            result["records"] = sum(1 for _ in out.open("rb")) - 2
        elif phase.startswith("answer"):
            request = setup.bundle(phase.replace("answer", "export"))
            answered, data = await services.upstream.answer(request, OPERATOR)
            write_atomically(setup.bundle(phase), data)
            result["bytes"] = setup.bundle(phase).stat().st_size
            result["counts"] = answered.counts
        else:
            imported = await services.sync.import_answer(
                OPERATOR, setup.bundle(phase.replace("import", "answer"))
            )
            result["counts"] = imported.counts
        result["seconds"] = time.perf_counter() - started
        result["cpu_seconds"] = cpu_seconds() - cpu
        result["rss_before_mb"] = before
        result["peak_before_mb"] = peak_before  # imports and connecting, before the phase
        result["peak_rss_mb"] = peak_rss_mb()
    return result


def child(setup: Setup, phase: str, postmaster: int | None) -> tuple[dict[str, Any], float | None]:
    """Run one phase in a fresh interpreter; its figures and the server's CPU seconds."""
    result_path = setup.path / f"{phase}.json"
    server_before = server_cpu_seconds(postmaster)
    subprocess.run(
        [sys.executable, __file__, "--phase", phase, "--setup", json.dumps(setup.__dict__)],
        check=True,
        stdout=subprocess.DEVNULL,  # the services' logs
        timeout=3600,
    )
    server_after = server_cpu_seconds(postmaster)
    server = None if server_before is None or server_after is None else server_after - server_before
    figures: dict[str, Any] = json.loads(result_path.read_text())
    return figures, server


# --- the run -------------------------------------------------------------------------------


def report(rows: list[tuple[str, dict[str, Any], float | None]]) -> None:
    print()
    print(
        f"{'phase':<14}{'wall s':>9}{'python CPU s':>14}{'PG CPU s':>10}"
        f"{'RSS MB start':>13}{'peak RSS MB':>13}{'bundle MB':>11}  records / counts"
    )
    for phase, figures, server in rows:
        size = figures.get("bytes")
        detail = figures.get("counts", figures.get("records", ""))
        print(
            f"{phase:<14}{figures['seconds']:>9.1f}{figures['cpu_seconds']:>14.1f}"
            f"{'-' if server is None else f'{server:.1f}':>10}"
            f"{figures['rss_before_mb']:>13.0f}{figures['peak_rss_mb']:>13.0f}"
            f"{'-' if size is None else f'{size / 1e6:.1f}':>11}  {detail}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--changed", type=int, default=0, help="products changed before cycle 2")
    parser.add_argument("--dsn", help="a PostgreSQL server to create two databases on")
    parser.add_argument("--work-dir", help="where the temporary directory goes (default /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the bundles and databases")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--setup", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        setup = Setup(**json.loads(args.setup))
        figures = asyncio.run(run_phase(setup, args.phase))
        (setup.path / f"{args.phase}.json").write_text(json.dumps(figures))
        return
    if not 1 <= args.products <= 10_000_000 or not 0 <= args.changed <= args.products:
        parser.error("--products is 1 to 10,000,000 and --changed at most --products")

    work = Path(tempfile.mkdtemp(prefix="bench-sync-", dir=args.work_dir))
    embedded = None if args.dsn else EmbeddedPostgres(work / "pg")
    server_dsn = args.dsn or (embedded.start() if embedded else "")
    names = [f"bench_sync_satellite_{os.getpid()}", f"bench_sync_upstream_{os.getpid()}"]
    setup = Setup(str(work), dsn_for(server_dsn, names[0]), dsn_for(server_dsn, names[1]))
    try:
        asyncio.run(create_databases(server_dsn, names))
        ensure_server_keys(KeyPaths(work / "satellite-state"))
        ensure_server_keys(KeyPaths(work / "upstream-state"), common_name="bench upstream CA")
        started = time.perf_counter()
        counts = asyncio.run(fill(setup, args.products))
        print(f"filled the satellite in {time.perf_counter() - started:.1f} s: {counts}")
        satellite_id = asyncio.run(register(setup))
        print(f"registered as satellite {satellite_id} (by files); work directory {work}")
        postmaster = asyncio.run(postmaster_pid(setup.satellite_dsn))
        rows: list[tuple[str, dict[str, Any], float | None]] = []
        for phase in PHASES:
            if phase == "export-again" and args.changed:
                asyncio.run(change(setup, args.changed))
            figures, server = child(setup, phase, postmaster)
            rows.append((phase, figures, server))
            print(f"  {phase}: {figures['seconds']:.1f} s", flush=True)
        report(rows)
    finally:
        if not args.keep:
            asyncio.run(drop_databases(server_dsn, names))
        if embedded is not None:
            embedded.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
