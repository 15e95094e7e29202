"""An upstream beside the satellite under test, for sync tests: its app on a real port of
127.0.0.1, its services and its admin client; the satellite's settings for syncing; and
the steps (accounts, purchases, registration, carrying bundles) the tests take at each
end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
from aiohttp.test_utils import TestServer

from satellite.api.context import Services
from satellite.config import DatabaseSettings, Settings, SyncSettings
from satellite.domain.access import Principal, host_operator
from satellite.wiring import Runtime, create_app, load_runtime, open_services
from sync.satellite import SatelliteSync
from sync.upstream import Answered
from tests.conftest import ENHANCED, AiohttpClient, Api, Credentials, login
from tests.helpers.api import base_url

OPERATOR = host_operator("pytest")
UP_ACCOUNT = "/api/v1/accounts/Acme"
SITE = "/api/v1/accounts/Site"


def sync_settings(tmp_path: Path, **changes: Any) -> SyncSettings:
    values: dict[str, Any] = {
        "attempts": 2,
        "retry_backoff_seconds": 0.0,
        "timeout_seconds": 30.0,
        "connect_timeout_seconds": 5.0,
        "spool_dir": str(tmp_path / "spool"),
        **changes,
    }
    return SyncSettings(**values)


def satellite_settings(state_dir: Path, db_dsn: str, tmp_path: Path) -> Settings:
    """The satellite's settings: retries without waiting, bundles in the test's directory."""
    return Settings(
        state_dir=str(state_dir),
        listen=["127.0.0.1:0"],
        database=DatabaseSettings(dsn=db_dsn, pool_min_size=1, pool_max_size=5),
        sync=sync_settings(tmp_path),
    )


@dataclass
class Upstream:
    runtime: Runtime
    services: Services
    server: TestServer
    admin: Api
    db: asyncpg.Connection

    @property
    def url(self) -> str:
        return base_url(self.server)


@asynccontextmanager
async def open_upstream(
    upstream_state_dir: Path, upstream_dsn: str, tmp_path: Path, aiohttp_client: AiohttpClient
) -> AsyncIterator[Upstream]:
    settings = Settings(
        role="upstream",
        state_dir=str(upstream_state_dir),
        listen=["127.0.0.1:0"],
        database=DatabaseSettings(dsn=upstream_dsn, pool_min_size=1, pool_max_size=5),
        sync=sync_settings(tmp_path / "upstream"),
    )
    runtime = load_runtime(settings, upstream_dsn)
    server = TestServer(create_app(runtime), host="127.0.0.1")
    await server.start_server()
    async with open_services(runtime) as services:
        first = await services.principals.bootstrap_client(OPERATOR)
        assert first is not None
        api = await login(
            Api(await aiohttp_client(server)), Credentials(first.client_id, first.client_secret)
        )
        conn = await asyncpg.connect(upstream_dsn)
        up = Upstream(runtime, services, server, api, conn)
        try:
            yield up
        finally:
            await conn.close()
    await up.server.close()  # (a test may have restarted it)


async def ok(call: Any, expected: int = 200) -> Any:
    status, body = await call
    assert status == expected, body
    return body


async def setup_upstream(up: Upstream, enhanced: int = 10, export: bool = False) -> None:
    await ok(
        up.admin.post("/api/v1/accounts", {"name": "Acme", "exportControlledAllowed": export}), 200
    )
    await ok(up.admin.post(UP_ACCOUNT + "/virtual-accounts", {"name": "Voice"}), 200)
    if enhanced:
        await buy(up, enhanced)


async def buy(up: Upstream, quantity: int, va: str = "Voice") -> int:
    line = await ok(
        up.admin.post(
            f"{UP_ACCOUNT}/virtual-accounts/{va}/license-pool",
            {"entitlementTag": ENHANCED, "quantity": quantity},
        ),
        200,
    )
    return int(line["license"]["id"])


async def setup_site(admin: Api) -> None:
    await ok(admin.post("/api/v1/accounts", {"name": "Site"}), 200)
    await ok(admin.post(SITE + "/virtual-accounts", {"name": "Voice"}), 200)


async def satellite_token(up: Upstream) -> str:
    return (await up.services.upstream.create_token(OPERATOR, "Acme", "site", None)).secret


async def register_online(up: Upstream, services: Services) -> str:
    link = await services.sync.register_online(
        OPERATOR, "Site", upstream_url=up.url, token=await satellite_token(up), name="site-1"
    )
    return link.satellite_id


async def pool(admin: Api, base: str, va: str = "Voice") -> list[dict[str, Any]]:
    body = await ok(admin.get(f"{base}/virtual-accounts/{va}/license-pool"))
    lines: list[dict[str, Any]] = body["licenses"]
    return lines


async def in_use(admin: Api, base: str) -> dict[tuple[str, str], int]:
    body = await ok(admin.post(base + "/licenses", {}))
    return {
        (line["virtualAccount"], line["entitlementTag"]): line["inUse"]
        for line in body["licenses"]
        if line["inUse"]
    }


async def satellite_products(db: asyncpg.Connection, account: str = "Site") -> set[tuple[Any, ...]]:
    rows = await db.fetch(
        "SELECT p.id::text, va.name, p.udi_pid, p.udi_serial, p.status, p.export_controlled "
        "FROM product_instances p JOIN virtual_accounts va ON va.id = p.virtual_account_id "
        "WHERE va.account_id = (SELECT id FROM accounts WHERE name = $1)",
        account,
    )
    return {tuple(r) for r in rows}


async def mirrored_products(up: Upstream, satellite_id: str) -> set[tuple[Any, ...]]:
    rows = await up.db.fetch(
        "SELECT p.product_id::text, va.name, p.udi_pid, p.udi_serial, p.status, "
        "p.export_controlled FROM satellite_products p "
        "JOIN virtual_accounts va ON va.id = p.virtual_account_id WHERE p.satellite_id = $1",
        satellite_id,
    )
    return {tuple(r) for r in rows}


async def answer_file(
    up: Upstream, request: Path, out: Path, principal: Principal | None
) -> Answered:
    """What ``satellite sync answer --in REQUEST --out ANSWER`` does at the upstream."""
    answered, data = await up.services.upstream.answer(request, principal)
    await asyncio.to_thread(out.write_bytes, data)
    return answered


async def site_token(admin: Api) -> str:
    body = await ok(admin.post(SITE + "/virtual-accounts/Voice/tokens", {}), 200)
    token: str = body["tokenInfo"]["token"]
    return token


def proxied(services: Services, runtime: Runtime, tmp_path: Path, **proxy: Any) -> SatelliteSync:
    """The satellite's sync service as a daemon configured with ``[sync] proxy_*`` has it."""
    settings = msgspec.structs.replace(
        runtime.settings, sync=sync_settings(tmp_path, attempts=1, **proxy)
    )
    return SatelliteSync(services.db, runtime.keys, services.licenses, settings)
