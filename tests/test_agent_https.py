"""The agent to an https:// daemon: its own certificate trusted through a CA file, directly
and through a CONNECT tunnel of an authenticating proxy."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from satellite.agent.client import Agent, ServerUnreachable
from satellite.agent.state import Identity
from satellite.app import create_app
from satellite.crypto.keys import KeyPaths, ensure_tls_certificate
from satellite.runtime import Runtime
from tests.conftest import ENHANCED, Api
from tests.test_device import new_token, setup_voice
from tests.test_proxy import through


@pytest.fixture
async def https_url(runtime: Runtime, tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """The daemon's app over TLS on 127.0.0.1, and the PEM file of its certificate."""
    paths = KeyPaths(tmp_path / "tls-state")
    ensure_tls_certificate(paths, ["127.0.0.1"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(paths.tls_cert, paths.tls_key)
    runner = web.AppRunner(create_app(runtime))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"https://{host}:{port}", paths.tls_cert
    await runner.cleanup()


def https_agent(tmp_path: Path, url: str, ca_file: Path | None) -> Agent:
    agent = Agent(tmp_path / "product")
    state = agent.init(
        Identity(
            pid="UCM", serial_number="TLS1", uuid="u", product_type="UCM", product_version="15"
        )
    )
    state.transport.url = url
    state.transport.ca_file = str(ca_file) if ca_file else None
    agent.save(state)
    return agent


async def test_https_needs_the_servers_certificate_trusted(
    admin: Api, https_url: tuple[str, Path], tmp_path: Path
) -> None:
    url, certificate = https_url
    await setup_voice(admin, enhanced=5)
    token = await new_token(admin)
    agent = https_agent(tmp_path, url, None)
    with pytest.raises(ServerUnreachable, match="certificate"):
        await agent.register(token)
    state = agent.state
    state.transport.ca_file = str(certificate)
    agent.save(state)
    state = await agent.register(token)
    assert state.registration == "registered"
    state = await agent.report_usage({ENHANCED: 2})
    assert state.authorization is not None
    assert state.authorization["state"] == "AUTHORIZED"


async def test_https_through_an_authenticating_proxy_tunnel(
    admin: Api,
    https_url: tuple[str, Path],
    tmp_path: Path,
    auth_proxy: int,
) -> None:
    url, certificate = https_url
    await setup_voice(admin, enhanced=5)
    agent = https_agent(tmp_path, url, certificate)
    through(agent, auth_proxy, "product", "s3cret")
    state = await agent.register(await new_token(admin))
    assert state.registration == "registered"
    await agent.report_usage({ENHANCED: 1})
