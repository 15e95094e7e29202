"""A usage report that begins or ends no shortage is one statement on the database: one
round trip (the report is the device API's busiest request). Counted on the daemon's own
connections, through the real agent and HTTP."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import aiohttp
import asyncpg
import msgspec
import pytest
from aiohttp.test_utils import TestServer
from asyncpg.connection import LoggedQuery

from satellite.crypto.secrets import issue_nonce
from satellite.http.keys import SERVICES
from satellite.services.envelope import NONCE_LIFETIME
from satellite.wiring import Runtime, create_app
from satellite_agent.client import Agent
from satellite_agent.errors import RequestRefused
from satellite_agent.state import AgentState
from satellite_protocol import device as wire
from satellite_protocol.crypto import jose
from tests.conftest import ENHANCED, Api
from tests.helpers.api import ACCOUNT
from tests.helpers.jobs import registered_agent, setup_voice


async def report(server: TestServer, agent: Agent, usage: dict[str, int]) -> list[str]:
    """The statements the daemon ran on its database while ``agent`` reported ``usage``
    (its answer checked: it authorizes what was reported)."""
    db = server.app[SERVICES].db
    seen: list[str] = []

    def on_query(record: LoggedQuery) -> None:
        seen.append(record.query)

    db.observe_queries(on_query)
    try:
        state = await agent.report_usage(usage)
    finally:
        db.observe_queries(None)
    assert state.authorization is not None
    assert state.authorization["state"] == "AUTHORIZED"
    assert [(t["tag"], t["count"]) for t in state.authorization["tags"]] == list(usage.items())
    return seen


async def test_a_report_is_one_statement_on_the_database(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    await setup_voice(admin, [{"entitlementTag": ENHANCED, "quantity": 10}])
    agent = await registered_agent(admin, server, tmp_path, "FCH0001")

    # (The first statement on a connection has the driver look up the types it uses.)
    await report(server, agent, {ENHANCED: 1})
    # Its usage changing, then the same again.
    for count in (2, 5, 5):
        statements = await report(server, agent, {ENHANCED: count})
        assert len(statements) == 1, statements
    status, body = await admin.post(ACCOUNT + "/licenses", {})
    assert status == 200, body
    assert [(p["entitlementTag"], p["inUse"]) for p in body["licenses"]] == [(ENHANCED, 5)]

    # Releasing all of it, with no shortage open, too.
    statements = await report(server, agent, {})
    assert len(statements) == 1, statements
    status, body = await admin.post(ACCOUNT + "/licenses", {})
    assert status == 200, body
    assert [(p["entitlementTag"], p["inUse"]) for p in body["licenses"]] == [(ENHANCED, 0)]


async def test_a_key_renewed_through_another_process_is_the_one_reports_verify_with(
    admin: Api, server: TestServer, runtime: Runtime, tmp_path: Path, db: asyncpg.Connection
) -> None:
    """Two daemon processes on one database (workers): a product registered through the
    first, which keeps its key, renews its registration (a new key) through the second.
    A report signed with the old key, which the first still knows, is refused there and
    changes nothing; one signed with the new key is taken."""
    await setup_voice(admin, [{"entitlementTag": ENHANCED, "quantity": 10}])
    agent = await registered_agent(admin, server, tmp_path, "FCH0001")
    await report(server, agent, {ENHANCED: 1})
    old = Agent(tmp_path / "old")
    shutil.copytree(agent.dir.path, old.dir.path)  # (the product's state and old key)
    await renew_through_another_process(agent, runtime)
    use_server(agent, server)

    with pytest.raises(RequestRefused) as refused:
        await old.report_usage({ENHANCED: 7})
    assert refused.value.status == 401
    assert refused.value.problem["type"].endswith("bad-signature")
    assert await db.fetchval("SELECT count(*) FROM usage_reports") == 1
    status, body = await admin.post(ACCOUNT + "/licenses", {})
    assert status == 200, body
    assert [p["inUse"] for p in body["licenses"]] == [1]

    await report(server, agent, {ENHANCED: 3})
    status, body = await admin.post(ACCOUNT + "/licenses", {})
    assert status == 200, body
    assert [p["inUse"] for p in body["licenses"]] == [3]


async def renew_through_another_process(agent: Agent, runtime: Runtime) -> None:
    """The agent renews its registration (a new key) through a second server on the same
    database; it is left pointed at that server, closed by then."""
    other = TestServer(create_app(runtime), host="127.0.0.1")
    await other.start_server()
    try:
        use_server(agent, other)
        await agent.renew_registration()
    finally:
        await other.close()


def use_server(agent: Agent, server: TestServer) -> None:
    def change(state: AgentState) -> None:
        state.transport.url = str(server.make_url("")).rstrip("/")

    agent.update(change)


async def test_a_report_that_does_not_decode_from_an_ended_product_is_told_it_ended(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    """The envelope's refusals come first, as for every signed request: a deregistered
    product (its state restored from a backup) reporting a tag the catalog does not know
    is told it ended, not that the tag is unknown; its nonce stays unused."""
    await setup_voice(admin, [{"entitlementTag": ENHANCED, "quantity": 10}])
    agent = await registered_agent(admin, server, tmp_path, "FCH0001")
    await report(server, agent, {ENHANCED: 1})
    saved, key = agent.state, agent.dir.key_file.read_bytes()
    await agent.deregister()
    agent.save(saved)
    agent.dir.key_file.write_bytes(key)
    nonces = await db.fetchval("SELECT count(*) FROM used_nonces")
    with pytest.raises(RequestRefused) as refused:
        await agent.report_usage({"regid.not-in-the-catalog": 1})
    assert refused.value.status == 403
    assert "deregistered" in str(refused.value)
    assert await db.fetchval("SELECT count(*) FROM used_nonces") == nonces


async def test_a_stale_nonce_signed_with_a_replaced_key_is_told_the_signature_is_bad(
    admin: Api, server: TestServer, runtime: Runtime, tmp_path: Path
) -> None:
    """As on every signed request, the signature is judged on the product's key as stored:
    a report signed with the key it had before renewing through another process (the one
    this process still knows), with a stale nonce, is a bad signature, not a stale nonce
    (a product told so fetches a new nonce and tries again)."""
    await setup_voice(admin, [{"entitlementTag": ENHANCED, "quantity": 10}])
    agent = await registered_agent(admin, server, tmp_path, "FCH0001")
    await report(server, agent, {ENHANCED: 1})
    old_key = agent.dir.load_key()
    await renew_through_another_process(agent, runtime)

    product_id = agent.state.product_instance_id
    assert product_id is not None
    path = f"{wire.PREFIX}/products/{product_id}/usage"
    stale = issue_nonce(runtime.keys.token_key, time.time() - NONCE_LIFETIME - 60)
    payload = msgspec.json.encode(wire.UsageReport(usage=[wire.UsageEntry(tag=ENHANCED, count=7)]))
    message = jose.sign(old_key, payload, {"kid": product_id, "nonce": stale, "url": path})
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.make_url(path), json=message) as response,
    ):
        assert response.status == 401, await response.text()
        problem = await response.json(content_type=None)
    assert problem["type"].endswith("bad-signature"), problem


async def test_a_report_taken_is_answered_when_its_shortage_refresh_fails(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    """A report that begins a shortage is taken in its statement; the alerts are refreshed
    in a transaction after it. When that one fails (here its connection is cut while it
    waits for the alerts), the product still gets its answer: its report was taken, and
    a 503 ("try again") would be untrue; the pool-alerts job raises the alert later."""
    await setup_voice(admin, [{"entitlementTag": ENHANCED, "quantity": 1}])
    agent = await registered_agent(admin, server, tmp_path, "FCH0001")
    blocker = db.transaction()
    await blocker.start()
    try:
        await db.execute("LOCK TABLE alerts IN EXCLUSIVE MODE")  # (reads still pass)
        reported = asyncio.create_task(agent.report_usage({ENHANCED: 2}))
        waiting = None
        for _ in range(200):  # (bounded: 10 s)
            waiting = await db.fetchval(
                "SELECT pid FROM pg_locks WHERE relation = 'alerts'::regclass "
                "AND mode = 'RowExclusiveLock' AND NOT granted"
            )
            if waiting is not None or reported.done():
                break
            await asyncio.sleep(0.05)
        assert waiting is not None, "the shortage refresh never waited for the alerts"
        await db.fetchval("SELECT pg_terminate_backend($1)", waiting)
    finally:
        await blocker.rollback()
    state = await reported
    assert state.authorization is not None
    assert state.authorization["state"] == "OUT_OF_COMPLIANCE"
    status, body = await admin.post(ACCOUNT + "/licenses", {})
    assert status == 200, body
    assert [p["inUse"] for p in body["licenses"]] == [2]
