"""The agent through a real HTTP proxy (proxy.py), with and without basic authentication."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from satellite.agent.client import Agent, AgentError
from tests.conftest import ENHANCED, Api
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
