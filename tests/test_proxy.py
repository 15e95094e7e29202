"""The agent through a real proxy (proxy.py): plain HTTP with and without basic
authentication, and one that speaks TLS itself (an HTTPS proxy)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from aiohttp.test_utils import TestServer

from satellite.agent.client import Agent, AgentError
from tests.conftest import ENHANCED, Api, run_proxy
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
