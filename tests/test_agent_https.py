"""The agent to an https:// daemon: its certificate from the server's own CA trusted
through the CA the token pinned; an operator's certificate trusted through a CA file,
directly and through a CONNECT tunnel of an authenticating proxy."""

from __future__ import annotations

import shutil
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from satellite.crypto.keys import KeyPaths, ensure_server_keys, ensure_tls_certificate
from satellite.wiring import Runtime, create_app
from satellite_agent.client import Agent, AgentError, ServerUnreachable
from satellite_agent.state import Identity
from tests.conftest import ENHANCED, Api
from tests.test_device import new_token, setup_voice
from tests.test_proxy import through


@asynccontextmanager
async def serve_tls(runtime: Runtime, paths: KeyPaths) -> AsyncIterator[str]:
    """The daemon's app over TLS on 127.0.0.1 with the certificate in ``paths``; its URL."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(paths.tls_cert, paths.tls_key)
    runner = web.AppRunner(create_app(runtime))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"https://{host}:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def https_url(runtime: Runtime, tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """The daemon's app over TLS with a certificate of a CA other than the server's (one
    of the operator's), and the PEM file of that CA."""
    paths = KeyPaths(tmp_path / "tls-state")
    ensure_server_keys(paths, common_name="the operator's CA")
    ensure_tls_certificate(paths, ["127.0.0.1"])
    async with serve_tls(runtime, paths) as url:
        yield url, paths.ca_cert


@pytest.fixture
async def pinned_url(runtime: Runtime, state_dir: Path, tmp_path: Path) -> AsyncIterator[str]:
    """The daemon's app over TLS with the certificate its own CA issued (as ``serve`` has
    it by default)."""
    paths = KeyPaths(tmp_path / "own-state")
    shutil.copytree(state_dir / "keys", paths.keys_dir)
    ensure_tls_certificate(paths, ["127.0.0.1"])
    async with serve_tls(runtime, paths) as url:
        yield url


async def test_the_ca_the_token_pinned_verifies_tls_with_no_file(
    admin: Api, pinned_url: str, tmp_path: Path
) -> None:
    await setup_voice(admin, enhanced=5)
    agent = https_agent(tmp_path, pinned_url, None)
    state = await agent.register(await new_token(admin))
    assert state.registration == "registered"
    assert state.transport.ca_file is None
    # Later requests trust the CA pinned in the state.
    state = await agent.report_usage({ENHANCED: 2})
    assert state.authorization is not None
    assert state.authorization["state"] == "AUTHORIZED"


async def test_a_server_whose_ca_is_not_the_tokens_gets_nothing(
    admin: Api, pinned_url: str, tmp_path: Path
) -> None:
    """A token of another server: its CA does not match, and nothing is sent."""
    await setup_voice(admin, enhanced=5)
    secret, fingerprint = (await new_token(admin)).rsplit(".", 1)
    other = ("A" if fingerprint[0] != "A" else "B") + fingerprint[1:]
    agent = https_agent(tmp_path, pinned_url, None)
    with pytest.raises(AgentError, match="does not match the token"):
        await agent.register(f"{secret}.{other}")
    assert agent.state.registration == "unregistered"


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
