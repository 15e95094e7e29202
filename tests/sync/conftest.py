"""The sync tests' two daemons: the upstream runs on a real TCP port of 127.0.0.1 with
role "upstream" and a database of its own; the satellite is the usual test daemon
with the settings here (retries without waiting, bundles in the test's directory)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from satellite.config import DatabaseSettings, Settings
from satellite.wiring import create_app, load_runtime, open_services
from tests.conftest import (
    AiohttpClient,
    Api,
    Credentials,
    clone_database,
    login,
)
from tests.sync.support import (
    OPERATOR,
    Upstream,
    sync_settings,
)


@pytest.fixture
def settings(state_dir: Path, db_dsn: str, tmp_path: Path) -> Settings:
    """The satellite's settings: retries without waiting, bundles in the test's directory."""
    return Settings(
        state_dir=str(state_dir),
        listen=["127.0.0.1:0"],
        database=DatabaseSettings(dsn=db_dsn, pool_min_size=1, pool_max_size=5),
        sync=sync_settings(tmp_path),
    )


@pytest.fixture
def other_dsn(pg_server: str, template_db: str) -> Iterator[str]:
    """A second satellite's database."""
    yield from clone_database(pg_server, template_db)


@pytest.fixture
async def upstream(
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
