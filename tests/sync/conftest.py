"""The sync tests' two daemons: the upstream runs on a real TCP port of 127.0.0.1 with
role "upstream" and a database of its own; the satellite is the usual test daemon
with the settings of tests/helpers/sync.py (retries without waiting, bundles in the
test's directory)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from satellite.config import Settings
from tests.conftest import AiohttpClient, clone_database
from tests.helpers.sync import Upstream, open_upstream, satellite_settings


@pytest.fixture
def settings(state_dir: Path, db_dsn: str, tmp_path: Path) -> Settings:
    return satellite_settings(state_dir, db_dsn, tmp_path)


@pytest.fixture
def other_dsn(pg_server: str, template_db: str) -> Iterator[str]:
    """A second satellite's database."""
    yield from clone_database(pg_server, template_db)


@pytest.fixture
async def upstream(
    upstream_state_dir: Path, upstream_dsn: str, tmp_path: Path, aiohttp_client: AiohttpClient
) -> AsyncIterator[Upstream]:
    async with open_upstream(upstream_state_dir, upstream_dsn, tmp_path, aiohttp_client) as up:
        yield up
