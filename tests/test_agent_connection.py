"""What the agent sends on the wire: one connection kept across its requests, and no
request for a nonce when an answer it already has handed one out."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

from satellite.crypto.keys import KeyPaths, ensure_tls_certificate
from satellite.wiring import Runtime, create_app
from satellite_agent.client import Agent
from satellite_agent.runner import Runner
from satellite_agent.state import Identity
from tests.conftest import ENHANCED, Api
from tests.helpers.api import new_token, setup_voice

Seen = list[tuple[str, str, int]]  # method, path, the client's port (its connection)


@asynccontextmanager
async def serve_seen(
    runtime: Runtime, context: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, Seen]]:
    """The daemon's app on 127.0.0.1 (over TLS with ``context``): its URL, and each
    request it answered."""
    seen: Seen = []

    async def note(request: web.Request, response: web.StreamResponse) -> None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        seen.append((request.method, request.path, peer[1] if peer else 0))

    app = create_app(runtime)
    app.on_response_prepare.append(note)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"{'https' if context else 'http'}://{host}:{port}", seen
    finally:
        await runner.cleanup()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def product(tmp_path: Path, url: str, clock: Callable[[], dt.datetime] = _now) -> Agent:
    agent = Agent(tmp_path / "product", clock)
    state = agent.init(
        Identity(
            pid="UCM", serial_number="CONN1", uuid="u", product_type="UCM", product_version="15"
        )
    )
    state.transport.url = url
    agent.save(state)
    return agent


async def test_one_connection_from_registration_through_reports(
    admin: Api, runtime: Runtime, tmp_path: Path
) -> None:
    """The registration pins the server's CA; over http:// that changes nothing on the
    wire, so the reports that follow go over the same kept connection."""
    await setup_voice(admin, enhanced=5)
    token = await new_token(admin)
    async with serve_seen(runtime) as (url, seen):
        agent = product(tmp_path, url)
        async with agent.connected():
            await agent.register(token)
            for count in (1, 2, 3):
                state = await agent.report_usage({ENHANCED: count})
    assert state.authorization is not None
    assert state.authorization["state"] == "AUTHORIZED"
    assert [path.rsplit("/", 1)[1] for _, path, _ in seen] == [
        *("nonce", "register", "usage", "usage", "usage")
    ]
    assert len({port for _, _, port in seen}) == 1


async def test_registering_again_takes_the_nonce_of_the_last_answer(
    admin: Api, runtime: Runtime, tmp_path: Path
) -> None:
    await setup_voice(admin, enhanced=5)
    first, second = await new_token(admin), await new_token(admin)
    async with serve_seen(runtime) as (url, seen):
        agent = product(tmp_path, url)
        async with agent.connected():
            await agent.register(first)
            await agent.report_usage({ENHANCED: 1})
            state = await agent.register(second)
    assert state.registration == "registered"
    assert [path.rsplit("/", 1)[1] for _, path, _ in seen] == [
        *("nonce", "register", "usage", "register")
    ]


async def test_over_https_the_first_nonce_comes_with_the_ca_certificate(
    admin: Api, runtime: Runtime, state_dir: Path, tmp_path: Path
) -> None:
    """Before its first registration over https:// the agent fetches the server's CA; that
    answer carries a nonce, which the registration uses; the reports keep one verified
    connection (the CA fetch is a connection of its own: it trusts nothing)."""
    paths = KeyPaths(tmp_path / "own-state")
    shutil.copytree(state_dir / "keys", paths.keys_dir)
    ensure_tls_certificate(paths, ["127.0.0.1"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(paths.tls_cert, paths.tls_key)
    await setup_voice(admin, enhanced=5)
    token = await new_token(admin)
    async with serve_seen(runtime, context) as (url, seen):
        agent = product(tmp_path, url)
        async with agent.connected():
            await agent.register(token)
            await agent.report_usage({ENHANCED: 1})
            state = await agent.report_usage({ENHANCED: 2})
    assert state.authorization is not None
    assert state.authorization["state"] == "AUTHORIZED"
    assert [path.rsplit("/", 1)[1] for _, path, _ in seen] == [
        *("ca-certificate", "register", "usage", "usage")
    ]
    assert len({port for _, _, port in seen[1:]}) == 1


async def run_until_seen(agent: Agent, seen: Seen, count: int) -> None:
    """The agent's runner (reporting usage of 1), until the server saw ``count`` requests
    (at most 10 s), then stopped."""
    stop = asyncio.Event()
    running = asyncio.create_task(Runner(agent, lambda: {ENHANCED: 1}).run(stop))
    for _ in range(100):  # at most 10 s
        if len(seen) >= count:
            break
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(running, 10)


async def test_the_runners_duties_due_together_share_one_connection(
    admin: Api, runtime: Runtime, tmp_path: Path
) -> None:
    await setup_voice(admin, enhanced=5)
    token = await new_token(admin)
    async with serve_seen(runtime) as (url, seen):
        agent = product(tmp_path, url)
        await agent.register(token)
        state = agent.state
        due = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        state.renew_registration_after = due
        assert state.authorization is not None
        state.authorization["renewAfter"] = due.isoformat()
        agent.save(state)
        del seen[:]
        await run_until_seen(agent, seen, 3)
    assert [path.rsplit("/", 1)[1] for _, path, _ in seen] == [
        *("registration", "authorization", "usage")
    ]
    assert len({port for _, _, port in seen}) == 1


async def test_a_nonce_kept_for_long_is_not_sent(
    admin: Api, runtime: Runtime, tmp_path: Path
) -> None:
    """The server takes a nonce for minutes only: after a long wait (a product reports
    every few hours) the agent asks for a fresh one instead of sending a request that is
    refused as stale and sent again."""
    await setup_voice(admin, enhanced=5)
    token = await new_token(admin)
    later = dt.timedelta(0)

    def clock() -> dt.datetime:
        return dt.datetime.now(dt.UTC) + later

    async with serve_seen(runtime) as (url, seen):
        agent = product(tmp_path, url, clock)
        await agent.register(token)
        await agent.report_usage({ENHANCED: 1})
        later = dt.timedelta(hours=6)
        state = await agent.report_usage({ENHANCED: 2})
    assert state.usage == {ENHANCED: 2}
    assert [path.rsplit("/", 1)[1] for _, path, _ in seen] == [
        *("nonce", "register", "usage", "nonce", "usage")
    ]


async def test_a_runner_inside_the_products_own_session_uses_it(
    admin: Api, runtime: Runtime, tmp_path: Path
) -> None:
    await setup_voice(admin, enhanced=5)
    token = await new_token(admin)
    async with serve_seen(runtime) as (url, seen):
        agent = product(tmp_path, url)
        async with agent.connected():
            await agent.register(token)
            await run_until_seen(agent, seen, 3)
    assert agent.state.usage == {ENHANCED: 1}
    assert [path.rsplit("/", 1)[1] for _, path, _ in seen] == [*("nonce", "register", "usage")]
    assert len({port for _, _, port in seen}) == 1
