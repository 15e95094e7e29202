"""The database dies under a running app: every request that needs it is a 503 problem
document with Retry-After (never a 500), the agent takes that for "server unreachable",
and the same app serves again once the database is back (the pool reconnects)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from satellite.api.context import Services
from satellite.config import DatabaseSettings, Settings
from satellite.domain.access import host_operator
from satellite.errors import StateDirError
from satellite.storage.embedded import EmbeddedPostgres, alive
from satellite.wiring import create_app, load_runtime, open_services
from satellite_agent.client import ServerUnreachable
from satellite_agent.state import AgentState
from sync.transport import UpstreamRefused
from tests.conftest import ENHANCED, AiohttpClient, Api, Credentials, login
from tests.helpers.api import new_agent, new_token, setup_voice
from tests.helpers.console import Visitor, create_user
from tests.helpers.sync import (
    OPERATOR,
    SITE,
    Upstream,
    open_upstream,
    register_online,
    satellite_settings,
    setup_site,
    setup_upstream,
)

UNAVAILABLE = "urn:satellite:problem:database-unavailable"
WAIT = 30.0  # bound on waiting for a server to die or to come back


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().splitlines()[0])


def kill_postmaster(pgdata: Path) -> None:
    """kill -9 the postmaster and wait (bounded) until it is gone."""
    pid = postmaster_pid(pgdata)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + WAIT
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid), "the postmaster did not die"


def restart(embedded: EmbeddedPostgres) -> bool:
    """Start the killed server again; False while it cannot yet (its orphaned backends may
    hold the shared memory for a moment)."""
    try:
        embedded.restart_if_dead()
    except StateDirError:
        return False
    return embedded.running()


def assert_unavailable(status: int, body: object, headers: object) -> None:
    assert status == 503, body
    assert isinstance(body, dict)
    assert body["type"] == UNAVAILABLE, body
    assert body["status"] == 503
    assert "Retry-After" in headers  # type: ignore[operator]


async def _call(
    api: Api, method: str, path: str, body: object = None
) -> tuple[int, object, object]:
    headers = api._headers()
    async with api.client.request(method, path, json=body, headers=headers) as response:
        payload = await response.json(content_type=None) if await response.read() else None
        return response.status, payload, response.headers


async def test_requests_get_503_with_retry_after_while_the_database_is_down(
    own_pg: tuple[EmbeddedPostgres, str],
    state_dir: Path,
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
) -> None:
    embedded, dsn = own_pg
    settings = Settings(
        state_dir=str(state_dir),
        listen=["127.0.0.1:0"],
        database=DatabaseSettings(dsn=dsn, pool_min_size=1, pool_max_size=4),
    )
    runtime = load_runtime(settings, dsn)
    async with open_services(runtime) as services:
        first = await services.principals.bootstrap_client(host_operator("pytest"))
    assert first is not None
    creds = Credentials(first.client_id, first.client_secret)
    client = await aiohttp_client(create_app(runtime))
    assert isinstance(client.server, TestServer)
    admin = await login(Api(client), creds)
    await setup_voice(admin, enhanced=10)
    token = await new_token(admin, numberOfUses=5)
    agent = new_agent(tmp_path, client.server)
    await agent.register(token)
    waiting = new_agent(tmp_path, client.server, serial="FCH0002")
    password = await create_user(admin, "ann", "system-admin", [])
    person = Visitor(admin, "zh-CN")
    await person.sign_in("ann", password)

    kill_postmaster(embedded.pgdata)

    status, body, headers = await _call(admin, "GET", "/readyz")
    assert status == 503, body
    assert "Retry-After" in headers  # type: ignore[operator]
    for method, path, payload in [
        ("GET", "/api/v1/accounts", None),
        ("GET", "/api/v1/accounts/Acme/virtual-accounts", None),
        ("POST", "/api/v1/accounts/Acme/licenses", {}),
        ("POST", "/api/v1/accounts", {"name": "Other"}),
    ]:
        assert_unavailable(*await _call(admin, method, path, payload))
    assert_unavailable(
        *await _call(
            Api(client),
            "POST",
            "/backend/oauth/token",
            {
                "grant_type": "client_credentials",
                "client_id": creds.client_id,
                "client_secret": creds.client_secret,
            },
        )
    )
    # The upstream's sync endpoint (a bundle it cannot even look up the sender of).
    async with client.post(
        "/sync/v1/exchange",
        data=b"not a bundle",
        headers={"Content-Type": "application/x-satellite-sync"},
    ) as response:
        assert response.status < 500 or response.status == 503, await response.text()

    # A person in the console gets a page in their language, not a problem document.
    stranger = Visitor(admin, "en")
    try:
        pages = [
            await person.get("/accounts"),
            await person.post("/accounts/Acme/virtual-accounts", {"name": "X", "csrf": "x"}),
            await stranger.sign_in("ann", password),
        ]
        for page, language in zip(pages, ("zh-CN", "zh-CN", "en"), strict=True):
            assert page.status == 503, page.text
            assert f'<html lang="{language}">' in page.text
            assert page.headers["Content-Type"].startswith("text/html"), page.headers
            assert "Retry-After" in page.headers
            assert page.headers["Cache-Control"] == "no-store"
            assert 'class="error"' in page.text
    finally:
        await stranger.close()

    # The product's side: a 503 is "server unreachable" (retried later), not a refusal.
    with pytest.raises(ServerUnreachable, match="503"):
        await agent.report_usage({ENHANCED: 3})
    with pytest.raises(ServerUnreachable, match="503"):
        await waiting.register(token)
    assert agent.state.registration == "registered"

    # The database comes back: the same app serves again, its pool reconnects.
    for _ in range(int(WAIT / 0.2)):
        if await asyncio.to_thread(restart, embedded):
            break
        await asyncio.sleep(0.2)
    deadline = time.monotonic() + WAIT
    status = 0
    while time.monotonic() < deadline:
        status, body, _ = await _call(admin, "GET", "/readyz")
        if status == 200:
            break
        await asyncio.sleep(0.1)
    assert status == 200, body
    await agent.report_usage({ENHANCED: 3})
    status, body, _ = await _call(admin, "GET", "/api/v1/accounts")
    assert status == 200, body
    # The session outlived the outage.
    try:
        assert (await person.get("/accounts")).url.path == "/accounts"
    finally:
        await person.close()


async def test_the_agent_told_503_does_not_show_a_password_of_its_url(
    own_pg: tuple[EmbeddedPostgres, str],
    state_dir: Path,
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
) -> None:
    embedded, dsn = own_pg
    settings = Settings(
        state_dir=str(state_dir),
        listen=["127.0.0.1:0"],
        database=DatabaseSettings(dsn=dsn, pool_min_size=1, pool_max_size=2),
    )
    client = await aiohttp_client(create_app(load_runtime(settings, dsn)))
    assert isinstance(client.server, TestServer)
    agent = new_agent(tmp_path, client.server)
    password = "gateway-pa55-Vb62"

    def through_a_gateway(state: AgentState) -> None:
        state.transport.url = state.transport.url.replace("://", f"://operator:{password}@")

    agent.update(through_a_gateway)
    kill_postmaster(embedded.pgdata)
    with pytest.raises(ServerUnreachable, match="503") as unreachable:
        await agent.register("A" * 43 + "." + "B" * 43)
    assert password not in str(unreachable.value)
    assert "operator:***@" in str(unreachable.value)


# --- the upstream's /sync/v1 endpoints ------------------------------------------------------


# The sync tests' two daemons: their satellite's settings, their upstream (on upstream_dsn).
@pytest.fixture
def settings(state_dir: Path, db_dsn: str, tmp_path: Path) -> Settings:
    return satellite_settings(state_dir, db_dsn, tmp_path)


@pytest.fixture
async def upstream(
    upstream_state_dir: Path, upstream_dsn: str, tmp_path: Path, aiohttp_client: AiohttpClient
) -> AsyncIterator[Upstream]:
    async with open_upstream(upstream_state_dir, upstream_dsn, tmp_path, aiohttp_client) as up:
        yield up


@pytest.fixture
def upstream_dsn(own_pg: tuple[EmbeddedPostgres, str]) -> str:
    """The upstream of the sync fixtures runs on this test's own PostgreSQL."""
    return own_pg[1]


async def test_the_upstream_answers_a_sync_with_503_while_its_database_is_down(
    own_pg: tuple[EmbeddedPostgres, str], upstream: Upstream, admin: Api, services: Services
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    await register_online(upstream, services)

    kill_postmaster(own_pg[0].pgdata)
    with pytest.raises(UpstreamRefused) as refused:
        await services.sync.sync_now(OPERATOR, "Site")
    assert refused.value.status == 503, refused.value.detail
    status, body = await admin.get(SITE + "/sync")
    assert status == 200, body
    assert "(503)" in body["lastError"]


def _family(pid: int) -> list[int]:
    """``pid`` and its children (a postmaster and its backends)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children.append(int(entry.name))
    return [pid, *children]


async def test_requests_get_503_while_the_database_hangs(
    own_pg: tuple[EmbeddedPostgres, str], state_dir: Path, aiohttp_client: AiohttpClient
) -> None:
    """A database that stops answering without going away (a dead disk, a network
    partition to its host): the connections held hang with it, and a request that waits
    for one of them must not wait forever but get its 503."""
    embedded, dsn = own_pg
    settings = Settings(
        state_dir=str(state_dir),
        listen=["127.0.0.1:0"],
        database=DatabaseSettings(
            dsn=dsn, pool_min_size=1, pool_max_size=1, connect_timeout_seconds=1.0
        ),
    )
    client = await aiohttp_client(create_app(load_runtime(settings, dsn)))
    anon = Api(client)
    status, body, _ = await _call(anon, "GET", "/readyz")
    assert status == 200, body
    stopped = _family(postmaster_pid(embedded.pgdata))
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        hung = asyncio.create_task(_call(anon, "GET", "/readyz"))  # holds the one connection
        await asyncio.sleep(0.5)
        async with asyncio.timeout(WAIT):
            status, body, headers = await _call(
                anon,
                "POST",
                "/backend/oauth/token",
                {"grant_type": "client_credentials", "client_id": "c", "client_secret": "s"},
            )
        assert_unavailable(status, body, headers)
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    async with asyncio.timeout(WAIT):
        status, body, _ = await hung
    assert status in (200, 503), body
