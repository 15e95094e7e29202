"""The agent's own CPU per registration and per usage report, before and after a change.

Starts ``satellite serve`` (plain HTTP, 127.0.0.1) on the embedded PostgreSQL in a state
directory under /dev/shm, then runs the same measurement in child processes, alternating
between the agent library of a git revision (``--compare``, extracted with ``git archive``
and put first on PYTHONPATH) and the one of this checkout, ``--rounds`` times each. A
child makes ``--products`` fresh products, registers them ``--concurrency`` at a time,
then every product reports ``--reports`` times back to back (``--concurrency`` products at
a time), each product in one HTTP session across both phases (``--sessions one``) or in one
per phase, as ``bench/load.py`` does (``--sessions per-phase``). Per phase: the child's CPU
(user + system, ``getrusage``) and the daemon's (from /proc) per operation, and wall time.

    .venv/bin/python bench/agent_cpu.py --products 200 --reports 20 --rounds 3

Every loop is bounded in count; the daemon stops at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

TAG = "regid.2016-07.com.cisco.UCM_Enhanced_12.0_66d0d1cf-4863-4761-91d0-d01d3eb1949a"
ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def api(base: str, path: str, body: object, token: str | None = None) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - loopback http only
        base + path, data=json.dumps(body).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with _opener.open(request, timeout=30) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def daemon_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the child: one agent library, measured ------------------------------------------------


@contextlib.asynccontextmanager
async def _kept() -> AsyncIterator[None]:
    """The session kept across the phases is the product's already."""
    yield


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from satellite_agent.client import Agent
    from satellite_agent.state import Identity

    work = Path(tempfile.mkdtemp(prefix="agents-", dir="/dev/shm"))
    try:
        agents = []
        for n in range(args.products):
            agent = Agent(work / str(n))
            state = agent.init(
                Identity(
                    pid="BENCH",
                    serial_number=f"{args.prefix}{n:06d}",
                    uuid=f"{args.prefix}-{n}",
                    product_type="UCM",
                    product_version="15",
                )
            )
            state.transport.url = args.base
            state.share_host_identity = False
            agent.save(state)
            agents.append(agent)
        gate = asyncio.Semaphore(args.concurrency)

        async def register(agent: Agent) -> None:
            async with gate, agent.connected() if args.sessions == "per-phase" else _kept():
                await agent.register(args.token)

        async def report(agent: Agent, n: int) -> None:
            async with gate, agent.connected() if args.sessions == "per-phase" else _kept():
                for k in range(args.reports):
                    await agent.report_usage({TAG: (n + k) % 7})

        phases: dict[str, Any] = {}
        async with contextlib.AsyncExitStack() as kept:
            if args.sessions == "one":  # each product's one session, across both phases
                for agent in agents:
                    await kept.enter_async_context(agent.connected())
            for name, count, run in (
                ("registration", len(agents), [register(a) for a in agents]),
                (
                    "report",
                    len(agents) * args.reports,
                    [report(a, n) for n, a in enumerate(agents)],
                ),
            ):
                cpu, server, wall = own_cpu(), daemon_cpu(args.daemon), time.perf_counter()
                await asyncio.gather(*run)
                phases[name] = {
                    "agent_ms": (own_cpu() - cpu) * 1000 / count,
                    "daemon_ms": (daemon_cpu(args.daemon) - server) * 1000 / count,
                    "wall_s": time.perf_counter() - wall,
                    "count": count,
                }
        import satellite_agent

        return {"library": str(Path(satellite_agent.__file__).parent), **phases}
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- the parent: the server, the variants, the figures -------------------------------------


def satellite_exe() -> str:
    return str(Path(sys.executable).parent / "satellite")


def start_server(work: Path, uses: int) -> tuple[subprocess.Popen[bytes], str, str]:
    state = work / "state"
    out = subprocess.run(
        [satellite_exe(), "--state-dir", str(state), "init"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    client_id = re.search(r"client_id: (\S+)", out).group(1)  # type: ignore[union-attr]
    secret = re.search(r"client_secret: (\S+)", out).group(1)  # type: ignore[union-attr]
    config = work / "satellite.toml"
    config.write_text(
        "[limits.registrations]\nper_token = 100000000\nper_virtual_account = 100000000\n"
    )
    port = free_port()
    daemon = subprocess.Popen(
        [
            satellite_exe(),
            *("--config", str(config), "--state-dir", str(state)),
            *("serve", "--listen", f"127.0.0.1:{port}", "--plain-http"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):  # at most 30 s
        try:
            with _opener.open(base + "/readyz", timeout=2):
                break
        except OSError:
            time.sleep(0.1)
    grant = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    admin = str(api(base, "/backend/oauth/token", grant)["access_token"])
    api(base, "/api/v1/accounts", {"name": "Bench"}, admin)
    account = "/api/v1/accounts/Bench/virtual-accounts/DEFAULT"
    api(base, account + "/license-pool", {"entitlementTag": TAG, "quantity": 10_000_000}, admin)
    token = api(base, account + "/tokens", {"numberOfUses": uses}, admin)
    return daemon, base, str(token["tokenInfo"]["token"])


def extract(revision: str, into: Path) -> Path:
    """The agent distribution's packages as they are at ``revision``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "agent"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "agent"


def run_child(args: argparse.Namespace, library: Path, prefix: str, extra: list[str]) -> Any:
    env = os.environ | {"PYTHONPATH": str(library)}
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--prefix", prefix, *extra],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    ).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--reports", type=int, default=20, help="per product")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--sessions",
        choices=("one", "per-phase"),
        default="one",
        help="one: each product registers and reports in one HTTP session (as 'run' does); "
        "per-phase: one session to register, another to report (as bench/load.py does)",
    )
    parser.add_argument("--compare", default="main", help="git revision measured as 'before'")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--daemon", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import uvloop

        print(json.dumps(uvloop.run(measure(args))))
        return

    work = Path(tempfile.mkdtemp(prefix="satellite-agent-bench-", dir="/dev/shm"))
    daemon, base, token = start_server(work, args.products * args.rounds * 2)
    try:
        variants = {
            f"before ({args.compare})": extract(args.compare, work),
            "after (this checkout)": ROOT / "agent",
        }
        extra = [
            *("--base", base, "--token", token, "--daemon", str(daemon.pid)),
            *("--products", str(args.products), "--reports", str(args.reports)),
            *("--concurrency", str(args.concurrency), "--sessions", args.sessions),
        ]
        results: dict[str, list[Any]] = {name: [] for name in variants}
        for round_ in range(args.rounds):
            for v, (name, library) in enumerate(variants.items()):
                result = run_child(args, library, f"R{round_}V{v}N", extra)
                results[name].append(result)
        print(f"uptime: {Path('/proc/loadavg').read_text().split()[:3]} (1, 5, 15 min)")
        print(
            f"{args.products} products, {args.concurrency} at a time, {args.reports} reports "
            f"each, sessions: {args.sessions}; {args.rounds} rounds alternating; median of the "
            "rounds (min-max)"
        )
        for name, runs in results.items():
            print(f"{name}: {runs[0]['library']}")
            for phase in ("registration", "report"):
                line = []
                for figure in ("agent_ms", "daemon_ms"):
                    values = [run[phase][figure] for run in runs]
                    line.append(
                        f"{figure[:-3]} {statistics.median(values):.3f} ms "
                        f"({min(values):.3f}-{max(values):.3f})"
                    )
                wall = statistics.median(run[phase]["wall_s"] for run in runs)
                print(f"  CPU per {phase}: {', '.join(line)}; wall {wall:.1f} s")
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
