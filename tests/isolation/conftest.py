"""The isolation tests' two tenants, made anew for each test."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import Api
from tests.helpers.isolation import ALPHA, BRAVO, World, make_tenant


@pytest.fixture
async def world(admin: Api, tmp_path: Path, state_dir: Path) -> World:
    server = admin.client.server
    assert isinstance(server, TestServer)
    return World(
        admin,
        await make_tenant(admin, ALPHA, server, tmp_path, state_dir),
        await make_tenant(admin, BRAVO, server, tmp_path, state_dir),
    )
