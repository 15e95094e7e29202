"""Guess-rate benchmark: how many guesses of each secret reach its check under the limits.

Starts a daemon (``satellite serve``) with the shipped default limits on the embedded
PostgreSQL in a temporary state directory, bound to 127.0.0.1, creates a client, a user
and a registration token, then for each secret sends wrong guesses from ``--concurrency``
connections for ``--seconds`` (bounded in time and count):

  * client secret: client_credentials grants with a wrong secret for the real client id;
  * password: password grants with a wrong password for the real user;
  * access token: admin API requests with random bearer tokens;
  * registration token: device registrations with random tokens (signed, fresh nonces).

For each it prints the requests/s answered, how many reached the secret's check (a 400 or
401 answer; a 429 was refused before it) and that as a rate. See bench/README.md.

    python bench/guesses.py --seconds 10 --concurrency 30
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import msgspec
from cryptography.hazmat.primitives.asymmetric import ec

# bench/load.py, beside this script (a script's own directory is first on sys.path).
from load import api, free_port, satellite, serve, wait_ready

from satellite.crypto.secrets import b64url
from satellite_protocol import device as wire
from satellite_protocol.crypto import jose
from satellite_protocol.crypto.pki import make_csr

MAX_REQUESTS = 1_000_000  # per kind and connection, besides the time bound
Guess = Callable[[aiohttp.ClientSession], Awaitable[int]]


async def hammer(
    base: str, guess: Guess, concurrency: int, seconds: float
) -> tuple[Counter[int], float]:
    statuses: Counter[int] = Counter()
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        for _ in range(MAX_REQUESTS):
            if time.perf_counter() >= deadline:
                return
            statuses[await guess(session)] += 1

    started = time.perf_counter()
    async with aiohttp.ClientSession(base) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return statuses, time.perf_counter() - started


def token_request(body: dict[str, str]) -> Guess:
    async def guess(session: aiohttp.ClientSession) -> int:
        async with session.post("/backend/oauth/token", json=body) as response:
            await response.read()
            return response.status

    return guess


async def bearer_guess(session: aiohttp.ClientSession) -> int:
    headers = {"Authorization": f"Bearer {secrets.token_urlsafe(32)}"}
    async with session.post("/api/v1/upstream_satellites/accounts", headers=headers) as response:
        await response.read()
        return response.status


def registration_guess() -> Guess:
    """A registration with a random token: one key and CSR for all, a fresh nonce each."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = jose.public_jwk(key.public_key())
    csr = make_csr(key, "BENCH:GUESS")
    path = wire.PREFIX + "/register"

    async def guess(session: aiohttp.ClientSession) -> int:
        async with session.get(wire.PREFIX + "/nonce") as response:
            nonce = response.headers[wire.NONCE_HEADER]
        request = wire.RegisterRequest(
            token_id=b64url(secrets.token_bytes(32)),
            token_proof=b64url(secrets.token_bytes(32)),
            udi=wire.Udi(udi_pid="BENCH", udi_serial="GUESS", udi_uuid="guess"),
            csr=csr,
            product_type="UCM",
            product_version="15",
        )
        message = jose.sign(
            key, msgspec.json.encode(request), {"jwk": jwk, "nonce": nonce, "url": path}
        )
        async with session.post(path, data=msgspec.json.encode(message)) as response:
            await response.read()
            return response.status

    return guess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="satellite-guesses-", dir="/dev/shm"))
    state = work / "state"
    port = free_port()
    out = satellite("init", state=state)
    client_id = re.search(r"client_id: (\S+)", out).group(1)  # type: ignore[union-attr]
    secret = re.search(r"client_secret: (\S+)", out).group(1)  # type: ignore[union-attr]
    daemon = serve(state, port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base)
        grant = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
        }
        token = str(api(base, "/backend/oauth/token", grant)["access_token"])
        api(
            base,
            "/api/v1/users",
            {"username": "bench", "password": "the right password", "role": "system-admin"},
            token,
        )
        kinds: dict[str, Guess] = {
            "client secret": token_request(grant | {"client_secret": "wrong"}),
            "password": token_request(
                {"grant_type": "password", "username": "bench", "password": "wrong guess"}
            ),
            "access token": bearer_guess,
            "registration token": registration_guess(),
        }
        for name, guess in kinds.items():
            statuses, took = asyncio.run(hammer(base, guess, args.concurrency, args.seconds))
            total = sum(statuses.values())
            checked = statuses[400] + statuses[401]
            print(
                f"{name}: {total} requests in {took:.1f} s = {total / took:.0f}/s; "
                f"reached the check: {checked} = {checked / took:.1f}/s; "
                f"429: {statuses[429]}; other: "
                f"{ {s: n for s, n in statuses.items() if s not in (400, 401, 429)} }"
            )
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
