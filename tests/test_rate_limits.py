"""Rate limits on guessable secrets and on registration floods, shared through PostgreSQL
by every daemon on the database."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import ec
from multidict import CIMultiDictProxy

from satellite.api.context import Services
from satellite.config import (
    BearerTokenLimit,
    DatabaseSettings,
    FailureLimit,
    LimitSettings,
    PasswordLimit,
    RegistrationLimit,
    Settings,
)
from satellite.crypto.secrets import token_id, token_proof
from satellite.domain.limits import address_key
from satellite.errors import InvalidToken, TooManyAttempts
from satellite.scheduler import jobs
from satellite.wiring import Runtime, create_app, load_runtime
from satellite_agent.client import Agent, RequestRefused
from satellite_agent.state import Identity
from satellite_protocol import device as wire
from satellite_protocol.crypto import jose
from satellite_protocol.crypto.pki import make_csr
from tests.conftest import AiohttpClient, Api, Credentials

TOKEN = "/backend/oauth/token"
VA = "/api/v1/accounts/Acme/virtual-accounts"
WINDOW = 3  # seconds: short, for the test that waits for a window to end

LIMITS = LimitSettings(
    password=PasswordLimit(failures_per_name=5, failures_per_address=100, window_seconds=300),
    client_secret=FailureLimit(
        failures_per_name=3, failures_per_address=100, window_seconds=WINDOW
    ),
    bearer_token=BearerTokenLimit(failures_per_address=3, window_seconds=300),
    token_proof=FailureLimit(failures_per_name=100, failures_per_address=3, window_seconds=300),
    registrations=RegistrationLimit(per_token=4, per_virtual_account=6, window_seconds=300),
)


@pytest.fixture
def settings(state_dir: Path, db_dsn: str) -> Settings:
    return Settings(
        state_dir=str(state_dir),
        listen=["127.0.0.1:0"],
        database=DatabaseSettings(dsn=db_dsn, pool_min_size=1, pool_max_size=5),
        limits=LIMITS,
    )


async def post(
    api: Api, path: str, body: dict[str, Any], token: str | None = None
) -> tuple[int, CIMultiDictProxy[str], Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with api.client.post(path, data=msgspec.json.encode(body), headers=headers) as response:
        return response.status, response.headers, msgspec.json.decode(await response.read())


def client_grant(client_id: str, secret: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}


def assert_limited(headers: CIMultiDictProxy[str], body: Any, limit: int, window: int) -> None:
    assert body["status"] == 429
    assert body["type"].endswith(":too-many-attempts")
    assert headers["Content-Type"].startswith("application/problem+json")
    retry_after = int(headers["Retry-After"])
    assert 1 <= retry_after <= window
    assert headers["RateLimit-Limit"] == str(limit)
    assert headers["RateLimit-Remaining"] == "0"
    assert headers["RateLimit-Reset"] == str(retry_after)
    assert f"try again in {retry_after} s" in body["detail"]


# --- client secrets --------------------------------------------------------------------------


async def test_wrong_client_secrets_are_refused_after_the_limit_until_the_window_ends(
    anon: Api, system_admin: Credentials
) -> None:
    right = client_grant(system_admin.client_id, system_admin.client_secret)
    wrong = client_grant(system_admin.client_id, "not-the-secret")
    for _ in range(LIMITS.client_secret.failures_per_name):
        status, _, body = await post(anon, TOKEN, wrong)
        assert status == 401, body
    status, headers, body = await post(anon, TOKEN, wrong)
    assert status == 429, body
    assert_limited(headers, body, LIMITS.client_secret.failures_per_name, WINDOW)
    assert "client id" in body["detail"]
    # The right secret waits too: were it let through, it would tell a guesser it was right.
    status, headers, body = await post(anon, TOKEN, right)
    assert status == 429, body
    # Other clients' names are not held up.
    status, _, body = await post(anon, TOKEN, client_grant("sat-someone-else", "wrong"))
    assert status == 401, body
    # Once the window ends, the right secret works again (bounded wait).
    for _ in range(int(WINDOW / 0.1) + 30):
        status, _, body = await post(anon, TOKEN, right)
        if status != 429:
            break
        await asyncio.sleep(0.1)
    assert status == 200, body
    # Successes do not count: only failures use up the limit.
    for _ in range(2 * LIMITS.client_secret.failures_per_name):
        status, _, body = await post(anon, TOKEN, right)
        assert status == 200, body


async def test_two_daemons_on_one_database_share_the_counters(
    aiohttp_client: AiohttpClient, runtime: Runtime, system_admin: Credentials
) -> None:
    first = Api(await aiohttp_client(create_app(runtime)))
    second = Api(await aiohttp_client(create_app(runtime)))
    wrong = client_grant(system_admin.client_id, "not-the-secret")
    statuses = []
    for n in range(LIMITS.client_secret.failures_per_name):
        status, _, _ = await post((first, second)[n % 2], TOKEN, wrong)
        statuses.append(status)
    assert statuses == [401] * LIMITS.client_secret.failures_per_name
    for daemon in (first, second):
        status, headers, body = await post(daemon, TOKEN, wrong)
        assert status == 429, body
        assert_limited(headers, body, LIMITS.client_secret.failures_per_name, WINDOW)


# --- passwords -------------------------------------------------------------------------------


async def test_parallel_wrong_passwords_are_checked_at_most_up_to_the_limit(
    admin: Api, anon: Api
) -> None:
    status, body = await admin.post(
        "/api/v1/users",
        {"username": "carol", "password": "a long enough password", "role": "system-admin"},
    )
    assert status == 200, body
    guesses = [
        {"grant_type": "password", "username": "carol", "password": f"guess number {n}"}
        for n in range(30)
    ]
    answers = await asyncio.gather(*(post(anon, TOKEN, guess) for guess in guesses))
    statuses = [status for status, _, _ in answers]
    # A 400 (invalid_grant) is a password that was checked; the others were refused first.
    checked = statuses.count(400)
    assert 1 <= checked <= LIMITS.password.failures_per_name, statuses
    assert statuses.count(429) == 30 - checked, statuses
    # And the right password waits for the window as well.
    right = guesses[0] | {"password": "a long enough password"}
    status, headers, body = await post(anon, TOKEN, right)
    assert status == 429, body
    assert_limited(headers, body, LIMITS.password.failures_per_name, LIMITS.password.window_seconds)
    assert "user name" in body["detail"]


# --- access tokens ---------------------------------------------------------------------------


async def test_unknown_access_tokens_are_limited_per_address(admin: Api) -> None:
    assert admin.token is not None
    path = "/api/v1/upstream_satellites/accounts"
    for n in range(LIMITS.bearer_token.failures_per_address):
        status, _, body = await post(admin, path, {}, token=f"guess-{n}")
        assert status == 401, body
    status, headers, body = await post(admin, path, {}, token="one more guess")
    assert status == 429, body
    assert_limited(
        headers,
        body,
        LIMITS.bearer_token.failures_per_address,
        LIMITS.bearer_token.window_seconds,
    )
    # From that address, a valid token waits too (the lookup is what is rationed).
    status, _, body = await post(admin, path, {}, token=admin.token)
    assert status == 429, body


# --- device registration ---------------------------------------------------------------------


async def setup_acme(admin: Api) -> None:
    status, body = await admin.post("/api/v1/accounts", {"name": "Acme"})
    assert status == 200, body
    status, body = await admin.post("/api/v1/accounts/Acme/virtual-accounts", {"name": "Voice"})
    assert status == 200, body


async def new_token(admin: Api) -> str:
    status, body = await admin.post(VA + "/Voice/tokens", {})
    assert status == 200, body
    token: str = body["tokenInfo"]["token"]
    return token


def new_agent(tmp_path: Path, server: TestServer, serial: str) -> Agent:
    agent = Agent(tmp_path / f"agent-{serial}")
    state = agent.init(
        Identity(
            pid="UCM",
            serial_number=serial,
            uuid=f"uuid-{serial}",
            product_type="UCM",
            product_version="15.0",
        )
    )
    state.transport.url = str(server.make_url("")).rstrip("/")
    agent.save(state)
    return agent


async def test_a_registration_flood_is_refused_per_token_and_per_virtual_account(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_acme(admin)
    first, second = await new_token(admin), await new_token(admin)
    per_token = LIMITS.registrations.per_token
    for n in range(per_token):
        await new_agent(tmp_path, server, f"FCH{n:04d}").register(first)
    with pytest.raises(RequestRefused) as refused:
        await new_agent(tmp_path, server, "FCH9999").register(first)
    assert refused.value.status == 429
    assert "too many registrations with this token" in refused.value.problem["detail"]
    # Nothing was registered, no use of the token was taken.
    assert await db.fetchval("SELECT count(*) FROM product_instances") == per_token
    status, body = await admin.get(VA + "/Voice/tokens")
    assert status == 200, body
    assert {t["token"]: t["uses"] for t in body["tokens"]}[first] == per_token
    # Another token of the same virtual account: its own count, but the account's is shared.
    per_account = LIMITS.registrations.per_virtual_account
    for n in range(per_account - per_token):
        await new_agent(tmp_path, server, f"FCK{n:04d}").register(second)
    with pytest.raises(RequestRefused) as refused:
        await new_agent(tmp_path, server, "FCK9999").register(second)
    assert refused.value.status == 429
    assert "into this virtual account" in refused.value.problem["detail"]
    assert await db.fetchval("SELECT count(*) FROM product_instances") == per_account


async def test_failed_token_proofs_are_limited_per_address(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_acme(admin)
    token = await new_token(admin)
    agent = new_agent(tmp_path, server, "FCH0001")
    for n in range(LIMITS.token_proof.failures_per_address):
        with pytest.raises(RequestRefused) as refused:
            await agent.register(f"guess{n}{token}")  # the same form, another token
        assert refused.value.status == 401
    with pytest.raises(RequestRefused) as refused:
        await agent.register(f"guess{token}")
    assert refused.value.status == 429
    assert "from this address" in refused.value.problem["detail"]
    # The right token waits for the window too, and nothing was registered.
    with pytest.raises(RequestRefused) as refused:
        await agent.register(token)
    assert refused.value.status == 429
    assert await db.fetchval("SELECT count(*) FROM product_instances") == 0


async def test_unknown_tokens_sent_at_once_are_checked_at_most_up_to_the_limit(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    await setup_acme(admin)
    token = await new_token(admin)
    agents = [new_agent(tmp_path, server, f"FCH{n:04d}") for n in range(12)]
    outcomes = await asyncio.gather(
        *(agent.register(f"guess{n}{token}") for n, agent in enumerate(agents)),
        return_exceptions=True,
    )
    statuses = [o.status if isinstance(o, RequestRefused) else o for o in outcomes]
    checked = statuses.count(401)
    assert 1 <= checked <= LIMITS.token_proof.failures_per_address, statuses
    assert statuses.count(429) == len(agents) - checked, statuses


async def test_registrations_that_prove_their_token_are_no_failures(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_acme(admin)
    token = await new_token(admin)
    # A site behind one address registers more products at once than failures are allowed
    # from an address: none is a failure, none is refused.
    count = LIMITS.registrations.per_token
    assert count > LIMITS.token_proof.failures_per_address
    agents = [new_agent(tmp_path, server, f"FCH{n:04d}") for n in range(count)]
    states = await asyncio.gather(*(agent.register(token) for agent in agents))
    assert [state.registration for state in states] == ["registered"] * count
    assert await db.fetchval("SELECT count(*) FROM product_instances") == count


async def register_proving(
    client: TestClient[Any, Any], token: str, proof_of: str, *, named: str | None = None
) -> int:
    """A registration naming ``token`` (spelt ``named`` if given) with a proof made with
    ``proof_of``: its status."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = jose.public_jwk(key.public_key())
    async with client.get(wire.PREFIX + "/nonce") as response:
        nonce = response.headers[wire.NONCE_HEADER]
    request = wire.RegisterRequest(
        token_id=named or token_id(token),
        token_proof=token_proof(proof_of, nonce, jose.jwk_thumbprint(jwk)),
        udi=wire.Udi(udi_pid="UCM", udi_serial="FCH0001", udi_uuid="uuid-FCH0001"),
        csr=make_csr(key, "UCM:FCH0001"),
        product_type="UCM",
        product_version="15.0",
    )
    path = wire.PREFIX + "/register"
    message = jose.sign(
        key, msgspec.json.encode(request), {"jwk": jwk, "nonce": nonce, "url": path}
    )
    async with client.post(
        path,
        data=msgspec.json.encode(message),
        headers={"Content-Type": "application/jose+json"},
    ) as response:
        return response.status


async def test_wrong_proofs_of_a_known_token_are_limited_per_token(
    admin: Api, aiohttp_client: AiohttpClient, settings: Settings, db_dsn: str
) -> None:
    per_token = 2
    limits = msgspec.structs.replace(
        LIMITS,
        token_proof=FailureLimit(
            failures_per_name=per_token, failures_per_address=100, window_seconds=300
        ),
    )
    runtime = load_runtime(msgspec.structs.replace(settings, limits=limits), db_dsn)
    daemon = await aiohttp_client(create_app(runtime))
    await setup_acme(admin)
    token, other = await new_token(admin), await new_token(admin)
    # Someone who learnt the token's id but not the token guesses proofs.
    for n in range(per_token):
        assert await register_proving(daemon, token, f"guess {n}") == 401
    assert await register_proving(daemon, token, "one more guess") == 429
    assert await register_proving(daemon, token, token) == 429  # the right one waits too
    # From the same address, another token is not held up.
    assert await register_proving(daemon, other, other) == 200


# --- counters are forgotten ------------------------------------------------------------------


async def test_ended_windows_are_forgotten_by_a_scheduled_job(
    anon: Api, system_admin: Credentials, services: Services, db: asyncpg.Connection
) -> None:
    await post(anon, TOKEN, client_grant(system_admin.client_id, "wrong"))
    counters = await db.fetchval("SELECT count(*) FROM rate_limit_counters")
    assert counters == 2  # the client id's and the address's
    report = await jobs.forget_rate_limits(services, lambda: dt.datetime.now(dt.UTC))
    assert report is not None
    assert report.counts == {"forgotten": 0}  # the window is still on
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=WINDOW + 1)
    report = await jobs.forget_rate_limits(services, lambda: later)
    assert report is not None
    assert report.counts == {"forgotten": 2}
    assert await db.fetchval("SELECT count(*) FROM rate_limit_counters") == 0


async def test_guesses_refused_by_a_limit_leave_no_counters(
    aiohttp_client: AiohttpClient, settings: Settings, db_dsn: str, db: asyncpg.Connection
) -> None:
    # Past its address's limit, a guesser naming a new client id each time must not add a
    # counter each time: the table would grow with every request (at the rate requests
    # arrive) while the job forgets ended windows only once a run.
    per_address = 3
    limits = msgspec.structs.replace(
        LIMITS,
        client_secret=FailureLimit(
            failures_per_name=3, failures_per_address=per_address, window_seconds=300
        ),
    )
    runtime = load_runtime(msgspec.structs.replace(settings, limits=limits), db_dsn)
    daemon = Api(await aiohttp_client(create_app(runtime)))
    statuses = [
        (await post(daemon, TOKEN, client_grant(f"sat-guess-{n}", "wrong")))[0] for n in range(40)
    ]
    assert statuses == [401] * per_address + [429] * (40 - per_address)
    # The address's counter and one per client id that was checked: no more.
    assert await db.fetchval("SELECT count(*) FROM rate_limit_counters") == 1 + per_address


async def test_addresses_of_one_ipv6_network_or_of_both_forms_count_as_one(
    services: Services,
) -> None:
    # An IPv6 host usually holds a whole /64, and the same IPv4 client reaches a dual-stack
    # listener as ::ffff:a.b.c.d: neither may multiply the guesses allowed an address.
    limit = LIMITS.bearer_token.failures_per_address
    for sources in (
        [f"2001:db8:1:2::{n + 1:x}" for n in range(limit)] + ["2001:db8:1:2:ffff::9"],
        ["::ffff:192.0.2.7"] * limit + ["192.0.2.7"],
    ):
        for n, source in enumerate(sources[:-1]):
            with pytest.raises(InvalidToken):
                await services.auth.authenticate(f"guess {n}", source)
        with pytest.raises(TooManyAttempts):
            await services.auth.authenticate("one more guess", sources[-1])
    # Another network is not held up.
    with pytest.raises(InvalidToken):
        await services.auth.authenticate("a guess", "2001:db8:1:3::1")


@pytest.mark.unit
def test_the_ipv6_network_an_address_counts_as_is_a_setting() -> None:
    assert address_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:2:3:4:5:6", 128) == "2001:db8:1:2:3:4:5:6/128"
    assert address_key("2001:db8:1:2:3:4:5:6", 48) == "2001:db8:1::/48"
    assert address_key("fe80::1%eth0") == "fe80::/64"
    assert address_key("::ffff:192.0.2.7", 128) == "192.0.2.7"


async def test_a_token_id_spelt_another_way_counts_as_the_same_token(admin: Api) -> None:
    # 32 bytes are 43 base64url characters, the last one with two bits to spare: four
    # spellings name one token. Each must not get a limit of its own.
    await setup_acme(admin)
    token = await new_token(admin)
    canonical = token_id(token)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(canonical[-1])
    spellings = [canonical[:-1] + alphabet[last & ~3 | n] for n in range(4)]
    assert canonical in spellings
    for _ in range(LIMITS.registrations.per_token):
        assert await register_proving(admin.client, token, token) != 429
    for spelling in spellings:
        assert await register_proving(admin.client, token, token, named=spelling) == 429
