"""Load benchmark: products register and report usage through the agent library.

Starts a daemon (``satellite serve``) on the embedded PostgreSQL in a temporary state
directory, bound to 127.0.0.1, then:
  0. with ``--fill N``: N background product instances made in SQL (bench/load_fill.py)
     over several virtual accounts, the measured products' among them,
  1. registers the measured products at a given concurrency,
  2. closed loop: C products report back to back for T seconds (the most reports/s),
  3. open loop: the same products report at a fixed total rate for T seconds, latency
     counted from when each report was due,
  4. the floor on this machine, in the same run (bench/load_floor.py): a bare aiohttp
     handler, one that verifies and signs ES256 as the device API does, and ``pgbench -N``
     on the daemon's PostgreSQL; then floor / (daemon + PostgreSQL CPU per report).
Per operation: throughput, p50/p99 latency, and the CPU of the daemon, of PostgreSQL (all
its processes) and of this load generator, each on its own. Every loop is bounded in
count and time; everything stops by itself. See bench/README.md.

    python bench/load.py --products 1000 --concurrency 200 --seconds 20 --rate 300 --fill 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Sequence
from pathlib import Path

import asyncpg
import load_fill
import load_floor
import uvloop
from load_cpu import Cpu, cpu_line

from satellite.storage.embedded import DATABASE_NAME
from satellite_agent.client import Agent
from satellite_agent.state import Identity

# The measured products report TAG; the background products use all of TAGS.
TAGS = [  # from the shipped catalog (config/catalog.toml)
    "regid.2016-07.com.cisco.UCM_Enhanced_12.0_66d0d1cf-4863-4761-91d0-d01d3eb1949a",
    "regid.2016-07.com.cisco.UCM_Basic_12.0_3b9d7c41-6a2f-4f1e-8c55-0e7a2d9b4c12",
    "regid.2016-07.com.cisco.UCM_Essential_12.0_8c3a1f2e-2d8b-4e57-9d0e-5b1f3c6a7e01",
]
TAG = TAGS[0]
MOST_IN_A_LINE = 10_000_000  # the API's limit on a pool line's quantity
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def satellite(*args: str, state: Path) -> str:
    exe = str(Path(sys.executable).parent / "satellite")
    return subprocess.run(
        [exe, "--state-dir", str(state), *args], check=True, capture_output=True, text=True
    ).stdout


def api(base: str, path: str, body: object, token: str | None = None) -> dict[str, object]:
    request = urllib.request.Request(  # noqa: S310 - loopback http only
        base + path, data=json.dumps(body).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with _opener.open(request, timeout=30) as response:
            result: dict[str, object] = json.loads(response.read())
            return result
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"{path}: {exc.code} {exc.read().decode(errors='replace')}") from exc


def serve(
    state: Path, port: int, config: Path | None = None, extra: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """``satellite serve`` on 127.0.0.1:``port``, plain HTTP: what the benchmarks measure is
    the server, not TLS (and their earlier figures were taken before HTTPS was the default);
    ``extra``: more options of ``serve``."""
    options = ["--config", str(config)] if config is not None else []
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "satellite"),
            *options,
            "--state-dir",
            str(state),
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--plain-http",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_ready(base: str) -> None:
    """Until the daemon answers /readyz (at most 30 s)."""
    for _ in range(300):
        try:
            with _opener.open(base + "/readyz", timeout=2):
                return
        except OSError:
            time.sleep(0.1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Tally:
    """Latencies of the operations that succeeded, and the failures."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self.not_sent = 0  # (open loop) still due when the loop had to end
        self.first_error: str | None = None

    async def time(self, operation: Awaitable[object], since: float) -> None:
        try:
            await operation
        except Exception as exc:  # a benchmark counts failures, it does not stop on them
            self.errors += 1
            self.first_error = self.first_error or f"{type(exc).__name__}: {exc}"
            return
        self.latencies.append(time.perf_counter() - since)

    def line(self, what: str, seconds: float) -> str:
        rate = len(self.latencies) / seconds
        mean = statistics.fmean(self.latencies) * 1000 if self.latencies else float("nan")
        text = (
            f"{what}: {len(self.latencies)} in {seconds:.1f} s = {rate:.0f}/s; "
            f"p50 {percentile(self.latencies, 0.5) * 1000:.1f} ms, "
            f"p99 {percentile(self.latencies, 0.99) * 1000:.1f} ms, mean {mean:.1f} ms, "
            f"errors {self.errors}"
        )
        if self.not_sent:
            text += f", {self.not_sent} not sent (still due when the loop had run twice its time)"
        return text + (f" (first: {self.first_error})" if self.first_error else "")


async def register_all(agents: list[Agent], token: str, concurrency: int) -> tuple[Tally, float]:
    """Every product registers once, ``concurrency`` at a time; and the seconds it took."""
    tally = Tally()
    gate = asyncio.Semaphore(concurrency)

    async def one(agent: Agent) -> None:
        async with gate:
            since = time.perf_counter()
            async with agent.connected():
                await tally.time(agent.register(token), since)

    started = time.perf_counter()
    await asyncio.gather(*(one(a) for a in agents))
    return tally, time.perf_counter() - started


async def closed_loop(agents: list[Agent], seconds: float) -> tuple[Tally, float]:
    """Every product reports again as soon as its answer arrives: the most the server takes."""
    tally = Tally()
    started = time.perf_counter()
    deadline = started + seconds

    async def product(agent: Agent, n: int) -> None:
        async with agent.connected():
            for count in range(n, n + 10_000_000):
                if time.perf_counter() >= deadline:
                    return
                await tally.time(agent.report_usage({TAG: count % 7}), time.perf_counter())

    await asyncio.gather(*(product(agent, n) for n, agent in enumerate(agents)))
    return tally, time.perf_counter() - started


async def open_loop(agents: list[Agent], rate: float, seconds: float) -> tuple[Tally, float]:
    """Reports at a fixed total ``rate``, each product on its own evenly spaced schedule.

    A report's latency counts from when it was due, not from when it was sent, so a client
    or server that falls behind shows as latency (no coordinated omission).
    """
    tally = Tally()
    period = len(agents) / rate
    started = time.perf_counter()
    rounds = max(1, int(seconds / period))
    # A server that cannot keep up would stretch the loop without end: what is still due
    # by twice the time is not sent, and counted as such.
    deadline = started + 2 * seconds

    async def product(agent: Agent, n: int) -> None:
        offset = period * n / len(agents)
        async with agent.connected():
            for k in range(rounds):
                if time.perf_counter() >= deadline:
                    tally.not_sent += rounds - k
                    return
                due = started + offset + k * period
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                await tally.time(agent.report_usage({TAG: (n + k) % 7}), due)

    await asyncio.gather(*(product(agent, n) for n, agent in enumerate(agents)))
    return tally, time.perf_counter() - started


def database_dsn(pgdata: Path) -> str:
    """The daemon's database, through the embedded server's socket (postmaster.pid's fifth
    line; its fourth is the port)."""
    lines = (pgdata / "postmaster.pid").read_text().splitlines()
    return f"postgresql://postgres@/{DATABASE_NAME}?host={lines[4]}&port={lines[3].strip()}"


def fill_background(
    base: str, token: str, pgdata: Path, products: int, virtual_accounts: int
) -> None:
    """``products`` background product instances over ``virtual_accounts`` virtual accounts
    of the account (DEFAULT, where the measured products register, and others made here),
    then a pool line of every tag in each, comfortably above their usage (but DEFAULT's
    line of TAG: the measured pool, made by the caller)."""
    for n in range(1, virtual_accounts):
        api(base, "/api/v1/accounts/Bench/virtual-accounts", {"name": f"FILL{n:02d}"}, token)
    needed = uvloop.run(_fill(pgdata, products))
    for (name, tag), used in needed.items():
        if name != "DEFAULT" or tag != TAG:
            api(
                base,
                f"/api/v1/accounts/Bench/virtual-accounts/{name}/license-pool",
                {"entitlementTag": tag, "quantity": used + used // 5 + 1000},
                token,
            )


async def _fill(pgdata: Path, products: int) -> dict[tuple[str, str], int]:
    """The fill itself; then what each virtual account uses of each tag."""
    conn = await asyncpg.connect(database_dsn(pgdata))
    try:
        vas = {
            str(r["name"]): int(r["id"])
            for r in await conn.fetch(
                "SELECT v.id, v.name FROM virtual_accounts v "
                "JOIN accounts a ON a.id = v.account_id WHERE a.name = 'Bench'"
            )
        }
        took = await load_fill.fill(conn, products, sorted(vas.values()), TAGS)
        print(
            f"fill: {products} product instances over {len(vas)} virtual accounts in {took:.1f} s",
            flush=True,
        )
        return {
            (name, tag): await load_fill.in_use(conn, va, tag)
            for name, va in vas.items()
            for tag in TAGS
        }
    finally:
        await conn.close()


async def background_in_use(pgdata: Path) -> int:
    """What the background products use of TAG in DEFAULT (0 without ``--fill``)."""
    conn = await asyncpg.connect(database_dsn(pgdata))
    try:
        va = await conn.fetchval(
            "SELECT v.id FROM virtual_accounts v JOIN accounts a ON a.id = v.account_id "
            "WHERE a.name = 'Bench' AND v.name = 'DEFAULT'"
        )
        return await load_fill.in_use(conn, int(va), TAG)
    finally:
        await conn.close()


async def totals_wrong(pgdata: Path) -> int:
    conn = await asyncpg.connect(database_dsn(pgdata))
    try:
        return await load_fill.check(conn)
    finally:
        await conn.close()


def new_agent(work: Path, base: str, n: int) -> Agent:
    """Product instance ``n``'s agent (its state under ``work``), pointed at ``base``."""
    agent = Agent(work / "agents" / str(n))
    state = agent.init(
        Identity(
            pid="BENCH",
            serial_number=f"SN{n:07d}",
            uuid=f"u{n}",
            product_type="UCM",
            product_version="15",
        )
    )
    state.transport.url = base
    state.share_host_identity = False
    agent.save(state)
    return agent


def make_agents(work: Path, base: str, products: int) -> list[Agent]:
    return [new_agent(work, base, n) for n in range(products)]


def idle_line(daemon: int, pgdata: Path, seconds: float) -> str:
    """What the daemon and PostgreSQL spend with nothing asked of them (jobs, autovacuum):
    the background under every figure below."""
    before = Cpu.now(daemon, pgdata)
    time.sleep(seconds)
    spent = Cpu.now(daemon, pgdata) - before
    return (
        f"idle for {seconds:.0f} s: daemon {spent.daemon / seconds * 1000:.0f} ms/s, "
        f"PostgreSQL {spent.postgres / seconds * 1000:.0f} ms/s of CPU"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument(
        "--rate", type=float, default=2000, help="open-loop reports/s (0: closed loop only)"
    )
    parser.add_argument("--register-concurrency", type=int, default=100)
    parser.add_argument(
        "--quantity",
        type=int,
        default=5_000_000,
        help="licenses in the pool beyond what the background products use (products "
        "report 0 to 6 each: about 3 x --concurrency puts the virtual account on the line of "
        "its shortage alert)",
    )
    parser.add_argument(
        "--fill", type=int, default=0, help="background product instances made in SQL first"
    )
    parser.add_argument("--fill-virtual-accounts", type=int, default=10)
    parser.add_argument(
        "--floor-seconds", type=int, default=10, help="each floor measurement (0: none)"
    )
    parser.add_argument(
        "--serve-options",
        default="",
        help="more options of 'satellite serve', as one string (e.g. \"--workers 2\")",
    )
    args = parser.parse_args()
    if not 0 <= args.fill <= 10_000_000 or not 1 <= args.fill_virtual_accounts <= 100:
        parser.error("--fill is 0 to 10,000,000 and --fill-virtual-accounts 1 to 100")
    if not 1 <= args.concurrency <= args.products:
        parser.error("--concurrency is 1 to --products")
    print(
        f"uptime: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
        f"(load average 1, 5, 15 min) on {os.cpu_count()} cores",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="satellite-bench-", dir="/dev/shm"))
    state = work / "state"
    pgdata = state / "pgdata"
    port = free_port()
    out = satellite("init", state=state)
    client_id = re.search(r"client_id: (\S+)", out).group(1)  # type: ignore[union-attr]
    secret = re.search(r"client_secret: (\S+)", out).group(1)  # type: ignore[union-attr]
    # A benchmark of throughput: registration-flood limits high enough not to be measured.
    config = work / "satellite.toml"
    config.write_text(
        "[limits.registrations]\nper_token = 100000000\nper_virtual_account = 100000000\n"
    )
    daemon = serve(state, port, config, shlex.split(args.serve_options))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base)
        token = str(
            api(
                base,
                "/backend/oauth/token",
                {
                    "grant_type": "client_credentials",
                    "client_id": client_id,
                    "client_secret": secret,
                },
            )["access_token"]
        )
        api(base, "/api/v1/accounts", {"name": "Bench"}, token)
        if args.fill:
            fill_background(base, token, pgdata, args.fill, args.fill_virtual_accounts)
        background = uvloop.run(background_in_use(pgdata))
        if background + args.quantity > MOST_IN_A_LINE:
            raise SystemExit(f"--quantity: at most {MOST_IN_A_LINE - background} with this fill")
        api(
            base,
            "/api/v1/accounts/Bench/virtual-accounts/DEFAULT/license-pool",
            {"entitlementTag": TAG, "quantity": background + args.quantity},
            token,
        )
        reg_token = api(
            base,
            "/api/v1/accounts/Bench/virtual-accounts/DEFAULT/tokens",
            {"numberOfUses": args.products},
            token,
        )
        product_token = str(reg_token["tokenInfo"]["token"])  # type: ignore[index]
        agents = make_agents(work, base, args.products)
        print(idle_line(daemon.pid, pgdata, 5), flush=True)

        before = Cpu.now(daemon.pid, pgdata)
        registered, took = uvloop.run(
            register_all(agents, product_token, args.register_concurrency)
        )
        print(registered.line(f"registrations, {args.register_concurrency} at a time", took))
        print(
            cpu_line(
                "registration", Cpu.now(daemon.pid, pgdata) - before, len(registered.latencies)
            ),
            flush=True,
        )

        reporting = agents[: args.concurrency]
        before = Cpu.now(daemon.pid, pgdata)
        tally, took = uvloop.run(closed_loop(reporting, args.seconds))
        closed = Cpu.now(daemon.pid, pgdata) - before
        print(tally.line(f"usage reports, closed loop, {len(reporting)} products", took))
        print(cpu_line("report", closed, len(tally.latencies)), flush=True)
        reports = [(closed, len(tally.latencies), "closed loop")]
        if args.rate:
            before = Cpu.now(daemon.pid, pgdata)
            fixed, took = uvloop.run(open_loop(reporting, args.rate, args.seconds))
            spent = Cpu.now(daemon.pid, pgdata) - before
            print(
                fixed.line(
                    f"usage reports, open loop at {args.rate:.0f}/s, {len(reporting)} products",
                    took,
                )
            )
            print(cpu_line("report", spent, len(fixed.latencies)), flush=True)
            reports.append((spent, len(fixed.latencies), "open loop"))
        wrong = uvloop.run(totals_wrong(pgdata))
        print(f"usage totals inconsistent with the products' usage: {wrong} rows")
        if args.floor_seconds:
            print_floor(daemon.pid, pgdata, args.floor_seconds, reports)
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    print(f"uptime: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


def print_floor(
    daemon: int, pgdata: Path, seconds: int, reports: list[tuple[Cpu, int, str]]
) -> None:
    """The floor on this machine, in the same run, and how far the reports are above it."""
    bare = load_floor.handler("bare", free_port(), seconds, TAG)
    print(bare.line(), flush=True)
    signed = load_floor.handler("signed", free_port(), seconds, TAG)
    print(signed.line(), flush=True)
    bench = load_floor.pgbench(pgdata, seconds, lambda: Cpu.now(daemon, pgdata).postgres)
    print(bench.line(), flush=True)
    floor_ms = signed.cpu_us / 1000 + bench.cpu_ms
    print(f"floor of a report: {floor_ms:.3f} ms of server + database CPU")
    for spent, count, what in reports:
        cost = (spent.daemon + spent.postgres) * 1000 / max(1, count)
        print(
            f"floor / (daemon + PostgreSQL CPU per report), {what}: "
            f"{floor_ms:.3f} / {cost:.3f} = {floor_ms / cost:.2f}"
        )


if __name__ == "__main__":
    main()
