"""Shared fixtures: a real PostgreSQL, a migrated template database, a database per test.

PostgreSQL is the embedded server (started once per session, that is once per xdist
worker, in a temporary directory) or the server named by ``SATELLITE_TEST_DSN``. Each test
gets its own database, cloned from a template that has every migration applied, so tests
are isolated and fast.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import os
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
import proxy
import pytest
import trustme
from aiohttp.test_utils import TestClient, TestServer

from satellite.api.context import Services
from satellite.config import DatabaseSettings, Settings
from satellite.crypto.keys import KeyPaths, ensure_server_keys
from satellite.domain.access import host_operator
from satellite.resources import migrations_dir
from satellite.storage.embedded import EmbeddedPostgres
from satellite.storage.migrations import load_migrations, migrate
from satellite.wiring import Runtime, create_app, load_runtime, open_services

if TYPE_CHECKING:
    from tests.helpers.webhooks import Receiver

AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]

_counter = itertools.count()


def satellite_exe() -> str:
    beside = Path(sys.executable).parent / "satellite"
    if beside.exists():
        return str(beside)
    found = shutil.which("satellite")
    assert found, "the satellite console script is not installed"
    return found


def dsn_for(server_dsn: str, database: str) -> str:
    parts = urlsplit(server_dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def _admin(server_dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn_for(server_dsn, "postgres"))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test marked ``unit`` must not reach PostgreSQL: ``pytest -m unit`` starts none."""
    for item in items:
        if item.get_closest_marker("unit") and "pg_server" in getattr(item, "fixturenames", ()):
            raise pytest.UsageError(f"{item.nodeid} is marked unit but needs the database")


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """DSN of a PostgreSQL server the tests may create databases on."""
    configured = os.environ.get("SATELLITE_TEST_DSN")
    if configured:
        yield configured
        return
    embedded = EmbeddedPostgres(tmp_path_factory.mktemp("pg"))
    dsn = embedded.start()
    # A throwaway server: durability buys nothing here and costs seconds per run.
    asyncio.run(
        _admin(
            dsn,
            "ALTER SYSTEM SET fsync = off",
            "ALTER SYSTEM SET synchronous_commit = off",
            "ALTER SYSTEM SET full_page_writes = off",
            "SELECT pg_reload_conf()",
        )
    )
    try:
        yield dsn_for(dsn, "postgres")
    finally:
        embedded.stop()


@pytest.fixture(scope="session")
def template_db(pg_server: str) -> str:
    """A database with every migration applied, to clone per test."""
    name = f"satellite_template_{os.getpid()}"

    async def build() -> None:
        await _admin(pg_server, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(dsn_for(pg_server, name))
        try:
            await migrate(conn, load_migrations(migrations_dir()))
        finally:
            await conn.close()

    asyncio.run(build())
    return name


@pytest.fixture
def fresh_db(pg_server: str) -> Iterator[str]:
    """DSN of a new empty database, dropped after the test."""
    name = f"satellite_test_{os.getpid()}_{next(_counter)}"
    asyncio.run(_admin(pg_server, f'CREATE DATABASE "{name}"'))
    yield dsn_for(pg_server, name)
    asyncio.run(_admin(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def clone_database(pg_server: str, template_db: str) -> Iterator[str]:
    """DSN of a new migrated database, dropped when the generator closes."""
    name = f"satellite_test_{os.getpid()}_{next(_counter)}"
    asyncio.run(_admin(pg_server, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"'))
    try:
        yield dsn_for(pg_server, name)
    finally:
        asyncio.run(_admin(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def db_dsn(pg_server: str, template_db: str) -> Iterator[str]:
    """DSN of a migrated database of this test's own, dropped after the test."""
    yield from clone_database(pg_server, template_db)


@pytest.fixture(scope="session")
def upstream_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An upstream's own keys (not the satellite's), for sync tests."""
    path = tmp_path_factory.mktemp("upstream-state")
    ensure_server_keys(KeyPaths(path), common_name="upstream CA")
    return path


@pytest.fixture
def upstream_dsn(pg_server: str, template_db: str) -> Iterator[str]:
    """An upstream's own database, for sync tests."""
    yield from clone_database(pg_server, template_db)


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state directory with server keys (shared: keys are read-only for the tests)."""
    path = tmp_path_factory.mktemp("state")
    ensure_server_keys(KeyPaths(path))
    return path


@pytest.fixture
def settings(state_dir: Path, db_dsn: str) -> Settings:
    return Settings(
        state_dir=str(state_dir),
        listen=["127.0.0.1:0"],
        database=DatabaseSettings(dsn=db_dsn, pool_min_size=1, pool_max_size=5),
    )


@pytest.fixture
def runtime(settings: Settings, db_dsn: str) -> Runtime:
    return load_runtime(settings, db_dsn)


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test's database, to look at what the API stored."""
    conn = await asyncpg.connect(db_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@dataclass
class Api:
    """A test client that speaks JSON and carries a bearer token."""

    client: TestClient[Any, Any]
    token: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def _headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def call(
        self, method: str, path: str, body: Any = None, *, raw: bytes | None = None
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else msgspec.json.encode(body))
        headers = self._headers()
        if data is not None:
            headers.setdefault("Content-Type", "application/json")
        async with self.client.request(method, path, data=data, headers=headers) as response:
            text = await response.read()
            return response.status, (msgspec.json.decode(text) if text else None)

    async def get(self, path: str) -> tuple[int, Any]:
        return await self.call("GET", path)

    async def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("POST", path, body, **kw)

    def as_token(self, token: str | None) -> Api:
        return Api(self.client, token, dict(self.headers))


@dataclass
class Credentials:
    client_id: str
    client_secret: str


@pytest.fixture
async def system_admin(runtime: Runtime) -> Credentials:
    """The first system-admin client, as init creates it."""
    async with open_services(runtime) as services:
        new = await services.principals.bootstrap_client(host_operator("pytest"))
    assert new is not None
    return Credentials(new.client_id, new.client_secret)


@pytest.fixture
async def anon(aiohttp_client: AiohttpClient, runtime: Runtime) -> Api:
    """An unauthenticated client of a fresh app."""
    return Api(await aiohttp_client(create_app(runtime)))


async def login(api: Api, creds: Credentials) -> Api:
    status, body = await api.post(
        "/backend/oauth/token",
        {
            "grant_type": "client_credentials",
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
        },
    )
    assert status == 200, body
    return api.as_token(body["access_token"])


@pytest.fixture
async def admin(anon: Api, system_admin: Credentials) -> Api:
    """A system admin's client."""
    return await login(anon, system_admin)


async def new_client(admin: Api, role: str, accounts: list[str]) -> Api:
    status, body = await admin.post("/api/v1/clients", {"role": role, "accounts": accounts})
    assert status == 200, body
    return await login(admin, Credentials(body["clientId"], body["clientSecret"]))


@pytest.fixture
async def server(runtime: Runtime) -> AsyncIterator[TestServer]:
    """The daemon's app (no scheduler: tests run the jobs themselves) on a real TCP port of
    127.0.0.1, for agents to talk to."""
    test_server = TestServer(create_app(runtime), host="127.0.0.1")
    await test_server.start_server()
    yield test_server
    await test_server.close()


@pytest.fixture
async def services(runtime: Runtime) -> AsyncIterator[Services]:
    """The services on the test database, for what the host CLI and the jobs do."""
    async with open_services(runtime) as opened:
        yield opened


# --- a real HTTP proxy (proxy.py) on 127.0.0.1 ---------------------------------------------


def run_proxy(basic_auth: str | None, **tls: str) -> Iterator[int]:
    """proxy.py on 127.0.0.1 until the generator closes; its port. ``tls``: cert_file and
    key_file make the proxy itself speak TLS (an HTTPS proxy)."""
    options: dict[str, Any] = {
        "hostname": ipaddress.ip_address("127.0.0.1"),
        "port": 0,
        "num_workers": 1,
        "num_acceptors": 1,
        **tls,
    }
    if basic_auth:
        options["basic_auth"] = basic_auth
    with proxy.Proxy(**options) as running:
        yield int(running.flags.port)


@pytest.fixture
def open_proxy() -> Iterator[int]:
    yield from run_proxy(None)


@pytest.fixture
def auth_proxy() -> Iterator[int]:
    yield from run_proxy("product:s3cret")


@pytest.fixture
def tls_proxy(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """proxy.py speaking TLS itself (an HTTPS proxy), with basic authentication; its
    certificate is issued by a test CA, whose certificate file is returned with the port."""
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1")
    cert, key, ca = tmp_path / "proxy.crt", tmp_path / "proxy.key", tmp_path / "ca.crt"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    authority.cert_pem.write_to_path(str(ca))
    yield from (
        (port, ca) for port in run_proxy("product:s3cret", cert_file=str(cert), key_file=str(key))
    )


ENHANCED = "regid.2016-07.com.cisco.UCM_Enhanced_12.0_66d0d1cf-4863-4761-91d0-d01d3eb1949a"
BASIC = "regid.2016-07.com.cisco.UCM_Basic_12.0_3b9d7c41-6a2f-4f1e-8c55-0e7a2d9b4c12"
CUWL = "regid.2017-02.com.cisco.UCM_CUWL_12.0_cc59375a-1cd8-4b36-8366-6f4d2abba965"
# Version-independent user licenses (tags of our own: see config/catalog.toml).
FLEX_ACCESS = "regid.2016-07.com.cisco.UCM_FlexNU_Access_v14_3f75c3f0-45c1-407a-9fd8-7c5e4ac51aed"
FLEX_ENHANCED = (
    "regid.2016-07.com.cisco.UCM_FlexNU_Enhanced_v14_4433fdad-fd47-4761-a38f-235eebab6196"
)
FLEX_PROFESSIONAL = (
    "regid.2016-07.com.cisco.UCM_FlexNU_Professional_v14_eff6d7ad-aae8-437f-b363-4f0597217572"
)
FLEX_EA = "regid.2016-07.com.cisco.UCM_FlexEA_v14_53b8fa22-f882-496e-bca5-db14ec9d1281"


async def lock_waiters(db: asyncpg.Connection, count: int) -> None:
    """Wait (bounded) until ``count`` backends of this database wait for a lock."""
    for _ in range(200):
        waiting = await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
        if waiting >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} transactions came to wait for a lock")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver on 127.0.0.1 (``tests.helpers.webhooks``), closed after the test
    (a request it holds is let go first)."""
    from tests.helpers.webhooks import start_receiver  # (it imports this module)

    started = await start_receiver()
    yield started
    if started.hold is not None:
        started.hold.set()
    await started.server.close()


async def _migrate(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, load_migrations(migrations_dir()))
    finally:
        await conn.close()


@pytest.fixture
def own_pg(tmp_path: Path) -> Iterator[tuple[EmbeddedPostgres, str]]:
    """A PostgreSQL of this test's own (the test may kill it), migrated."""
    embedded = EmbeddedPostgres(tmp_path / "pg-state")
    dsn = embedded.start()
    asyncio.run(_migrate(dsn))
    try:
        yield embedded, dsn
    finally:
        embedded.stop()
