"""Registration benchmark: CPU per registration (daemon and PostgreSQL) and its statements.

Starts a daemon (``satellite serve``, plain HTTP on 127.0.0.1) on the embedded PostgreSQL
in a temporary directory, then:
  1. registers one product with PostgreSQL logging every statement, and prints the
     statements it sent (each one a round trip);
  2. registers N products with one shared token (limited to N uses, or ``--unlimited``)
     at a given concurrency, and prints registrations/s and the CPU the daemon and all
     of PostgreSQL's processes spent per registration (from /proc, before and after),
     and the agents' (this process).
Bounded: N registrations, then everything stops. See bench/README.md.

    python bench/registration.py --products 2000 --concurrency 50
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import uvloop
from load import api, free_port, new_agent, serve, wait_ready

from satellite_agent.client import Agent

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def satellite(*args: str) -> str:
    exe = str(Path(sys.executable).parent / "satellite")
    return subprocess.run([exe, *args], check=True, capture_output=True, text=True).stdout


def _ticks(pid: int, children_too: bool) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children_too:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks


def cpu_seconds(daemon: int, pgdata: Path) -> tuple[float, float]:
    """The daemon's CPU seconds so far, and all of PostgreSQL's (the postmaster, its live
    processes, and the ones that ended, counted in the postmaster's children times)."""
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    server = _ticks(postmaster, children_too=True)
    for pid in Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split():
        try:
            server += _ticks(int(pid), children_too=False)
        except (OSError, IndexError):
            continue  # ended meanwhile (and counted in the postmaster's)
    return _ticks(daemon, children_too=False) / CLOCK_TICKS, server / CLOCK_TICKS


async def register_all(agents: list[Agent], token: str, concurrency: int) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one(agent: Agent) -> None:
        async with gate, agent.connected():
            await agent.register(token)

    started = time.perf_counter()
    await asyncio.gather(*(one(a) for a in agents))
    return time.perf_counter() - started


async def log_statements(pgdata: Path, setting: str) -> None:
    conn = await asyncpg.connect(host=str(pgdata), user="postgres", database="postgres")
    try:
        if setting == "all":
            await conn.execute("ALTER SYSTEM SET log_statement = 'all'")
        else:
            await conn.execute("ALTER SYSTEM RESET log_statement")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()
    await asyncio.sleep(0.5)  # (the reload reaches the backends on their next command)


def statements_of_one(work: Path, pgdata: Path, base: str, token: str) -> list[str]:
    """The statements PostgreSQL received while one product registered."""
    log = pgdata / "log"
    uvloop.run(log_statements(pgdata, "all"))
    start = log.stat().st_size
    uvloop.run(register_all([new_agent(work, base, 9_999_999)], token, 1))
    uvloop.run(log_statements(pgdata, "reset"))
    with log.open("rb") as handle:
        handle.seek(start)
        text = handle.read().decode(errors="replace")
    found = re.findall(r"LOG:  (?:statement|execute [^:]*): (.*)", text)
    return [s for s in found if "log_statement" not in s and "pg_reload_conf" not in s]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--unlimited", action="store_true", help="a token without a use limit")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="satellite-bench-", dir="/dev/shm"))
    state = work / "state"
    port = free_port()
    out = satellite("--state-dir", str(state), "init")
    client_id = re.search(r"client_id: (\S+)", out).group(1)  # type: ignore[union-attr]
    secret = re.search(r"client_secret: (\S+)", out).group(1)  # type: ignore[union-attr]
    config = work / "satellite.toml"  # flood limits high enough not to be measured
    config.write_text(
        "[limits.registrations]\nper_token = 100000000\nper_virtual_account = 100000000\n"
    )
    daemon = serve(state, port, config)
    base = f"http://127.0.0.1:{port}"
    pgdata = state / "pgdata"
    try:
        wait_ready(base)
        grant = {"grant_type": "client_credentials", "client_id": client_id}
        access = str(
            api(base, "/backend/oauth/token", grant | {"client_secret": secret})["access_token"]
        )
        api(base, "/api/v1/accounts", {"name": "Bench"}, access)
        uses = {} if args.unlimited else {"numberOfUses": args.products + 1}
        created = api(base, "/api/v1/accounts/Bench/virtual-accounts/DEFAULT/tokens", uses, access)
        token = str(created["tokenInfo"]["token"])  # type: ignore[index]

        statements = statements_of_one(work, pgdata, base, token)
        print(f"statements of one registration: {len(statements)}")
        for statement in statements:
            print(f"  {' '.join(statement.split())[:150]}")

        agents = [new_agent(work, base, n) for n in range(args.products)]
        before = cpu_seconds(daemon.pid, pgdata)
        agents_before = time.process_time()
        took = uvloop.run(register_all(agents, token, args.concurrency))
        after = cpu_seconds(daemon.pid, pgdata)
        agents_s = time.process_time() - agents_before
        daemon_s, server_s = (b - a for a, b in zip(before, after, strict=True))
        per = 1000 / args.products
        kind = "unlimited" if args.unlimited else "limited"
        print(
            f"registrations ({kind} token, concurrency {args.concurrency}): {args.products} "
            f"in {took:.1f} s = {args.products / took:.0f}/s"
        )
        print(
            f"  CPU per registration: daemon {daemon_s * per:.2f} ms, PostgreSQL "
            f"{server_s * per:.2f} ms, together {(daemon_s + server_s) * per:.2f} ms; "
            f"the agents (this process) {agents_s * per:.2f} ms"
        )
        print(f"  load average: {os.getloadavg()}")
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
