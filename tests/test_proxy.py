"""The agent through a real proxy (proxy.py): plain HTTP with and without basic
authentication, and one that speaks TLS itself (an HTTPS proxy)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from satellite_agent.client import Agent, AgentError
from tests.conftest import ENHANCED, Api
from tests.test_agent_cli import AgentCli
from tests.test_device import new_agent, new_token, setup_voice


def through(agent: Agent, port: int, user: str | None = None, password: str | None = None) -> None:
    state = agent.state
    state.transport.proxy_url = f"http://127.0.0.1:{port}"
    state.transport.proxy_user = user
    state.transport.proxy_password = password
    agent.save(state)


async def test_through_a_proxy_without_credentials(
    admin: Api, server: TestServer, tmp_path: Path, open_proxy: int
) -> None:
    await setup_voice(admin, enhanced=5)
    agent = new_agent(tmp_path, server)
    through(agent, open_proxy)
    state = await agent.register(await new_token(admin))
    assert state.registration == "registered"
    state = await agent.report_usage({ENHANCED: 2})
    assert state.authorization is not None
    assert state.authorization["state"] == "AUTHORIZED"


async def test_through_a_proxy_with_basic_auth(
    admin: Api, server: TestServer, tmp_path: Path, auth_proxy: int
) -> None:
    await setup_voice(admin, enhanced=5)
    token = await new_token(admin)
    agent = new_agent(tmp_path, server)

    through(agent, auth_proxy, "product", "wrong")
    with pytest.raises(AgentError, match="proxy refused the credentials"):
        await agent.register(token)
    through(agent, auth_proxy)
    with pytest.raises(AgentError, match="proxy refused the credentials"):
        await agent.register(token)
    assert agent.state.registration == "unregistered"

    through(agent, auth_proxy, "product", "s3cret")
    state = await agent.register(token)
    assert state.registration == "registered"
    await agent.report_usage({ENHANCED: 1})


async def test_through_an_https_proxy_with_basic_auth(
    admin: Api, server: TestServer, tmp_path: Path, tls_proxy: tuple[int, Path]
) -> None:
    """Set up as an operator would, with ``transport proxy --https``; the proxy's certificate
    is checked like a server's."""
    port, ca = tls_proxy
    await setup_voice(admin, enhanced=5)
    token = await new_token(admin)
    agent = new_agent(tmp_path, server)
    cli = AgentCli(agent.dir.path)
    proxy_args = ["transport", "proxy", "--host", "127.0.0.1", "--port", str(port), "--https"]
    proxy_args += ["--user", "product", "--password", "s3cret"]
    await cli.ok(*proxy_args)

    # The proxy's CA is not trusted yet: the agent refuses it, nothing is sent.
    with pytest.raises(AgentError, match="certificate"):
        await agent.register(token)
    assert agent.state.registration == "unregistered"

    out = await cli.ok(
        *proxy_args, "--user", "product", "--password", "s3cret", "--ca-file", str(ca)
    )
    assert out.strip() == f"proxy: https://127.0.0.1:{port} with credentials"
    state = await agent.register(token)
    assert state.registration == "registered"
    state = await agent.report_usage({ENHANCED: 2})
    assert state.authorization is not None
    assert state.authorization["state"] == "AUTHORIZED"
