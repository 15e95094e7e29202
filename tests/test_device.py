"""The real agent against the real daemon: register, report, renew, deregister, refusals."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from satellite_agent.client import Agent, AgentError, RequestRefused
from satellite_agent.state import Identity
from satellite_protocol.crypto import jose
from tests.conftest import BASIC, CUWL, ENHANCED, Api

ACCOUNT = "/api/v1/accounts/Acme"
VOICE = ACCOUNT + "/virtual-accounts/Voice"


def base_url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


async def setup_voice(admin: Api, **pool: int) -> None:
    status, body = await admin.post("/api/v1/accounts", {"name": "Acme"})
    assert status == 200, body
    status, body = await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Voice"})
    assert status == 200, body
    for tag, quantity in pool.items():
        status, body = await admin.post(
            VOICE + "/license-pool", {"entitlementTag": TAGS[tag], "quantity": quantity}
        )
        assert status == 200, body


TAGS = {"enhanced": ENHANCED, "basic": BASIC, "cuwl": CUWL}


async def new_token(admin: Api, va: str = "Voice", **fields: Any) -> str:
    status, body = await admin.post(f"{ACCOUNT}/virtual-accounts/{va}/tokens", fields)
    assert status == 200, body
    token: str = body["tokenInfo"]["token"]
    return token


def new_agent(tmp_path: Path, server: TestServer, serial: str = "FCH0001") -> Agent:
    agent = Agent(tmp_path / f"agent-{serial}")
    state = agent.init(
        Identity(
            pid="UCM",
            serial_number=serial,
            uuid=f"6f1e0c5a-0000-4000-8000-{serial[-6:].rjust(12, '0')}",
            product_type="UCM",
            product_version="15.0",
        )
    )
    state.transport.url = base_url(server)
    agent.save(state)
    return agent


async def licenses(admin: Api) -> dict[str, dict[str, Any]]:
    status, body = await admin.post(ACCOUNT + "/licenses", {})
    assert status == 200, body
    return {line["entitlementTag"]: line for line in body["licenses"]}


async def test_register_report_renew_deregister(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, enhanced=10)
    token = await new_token(admin, numberOfUses=2)
    agent = new_agent(tmp_path, server)

    state = await agent.register(token)
    assert state.registration == "registered"
    assert state.virtual_account == "Voice"
    assert state.product_instance_id
    assert state.authorization is not None
    assert state.authorization["state"] == "AUTHORIZED"
    key_file = agent.dir.key_file
    assert key_file.stat().st_mode & 0o777 == 0o600
    row = await db.fetchrow("SELECT uses FROM registration_tokens")
    assert row is not None
    assert row["uses"] == 1

    state = await agent.report_usage({ENHANCED: 7})
    assert state.authorization is not None
    assert state.authorization["state"] == "AUTHORIZED"
    assert [(t["tag"], t["count"], t["state"]) for t in state.authorization["tags"]] == [
        (ENHANCED, 7, "AUTHORIZED")
    ]
    view = await licenses(admin)
    assert (view[ENHANCED]["inUse"], view[ENHANCED]["available"]) == (7, 3)

    # Usage replaces the previous report; history is kept.
    await agent.report_usage({ENHANCED: 12})
    view = await licenses(admin)
    assert view[ENHANCED]["inUse"] == 12
    assert view[ENHANCED]["status"] == "Out Of Compliance"
    assert agent.state.authorization["state"] == "OUT_OF_COMPLIANCE"  # type: ignore[index]
    assert await db.fetchval("SELECT count(*) FROM usage_reports") == 2

    before = agent.state.authorization["expiresAt"]  # type: ignore[index]
    state = await agent.renew_authorization()
    assert state.authorization["expiresAt"] >= before  # type: ignore[index]

    await agent.deregister()
    assert agent.state.registration == "deregistered"
    view = await licenses(admin)
    assert view[ENHANCED]["inUse"] == 0
    actions = [
        r["action"]
        for r in await db.fetch("SELECT action FROM events WHERE actor LIKE 'product:%'")
    ]
    assert actions == ["product.registered", "product.deregistered"]


async def test_an_ended_product_is_refused(admin: Api, server: TestServer, tmp_path: Path) -> None:
    await setup_voice(admin, enhanced=10)
    agent = new_agent(tmp_path, server)
    await agent.register(await new_token(admin))
    saved = agent.state
    key = agent.dir.key_file.read_bytes()
    await agent.deregister()
    # The same product state replayed later (a restored backup): the server says no.
    agent.save(saved)
    agent.dir.key_file.write_bytes(key)
    with pytest.raises(RequestRefused) as refused:
        await agent.report_usage({ENHANCED: 1})
    assert refused.value.status == 403
    assert "deregistered" in str(refused.value)
    assert agent.state.registration == "removed"


async def test_token_exhaustion_race_has_one_winner(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_voice(admin)
    token = await new_token(admin, numberOfUses=1)
    agents = [new_agent(tmp_path, server, f"FCH{n:04d}") for n in range(4)]
    results = await asyncio.gather(*(a.register(token) for a in agents), return_exceptions=True)
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1, results
    assert all(isinstance(r, RequestRefused) and r.status == 403 for r in losers), losers
    assert await db.fetchval("SELECT count(*) FROM product_instances") == 1
    assert await db.fetchval("SELECT uses FROM registration_tokens") == 1


async def test_bad_tokens_are_refused_and_change_nothing(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_voice(admin)
    token = await new_token(admin)
    agent = new_agent(tmp_path, server)
    _, fingerprint = token.rsplit(".", 1)
    with pytest.raises(AgentError):
        await agent.register("not-a-token")
    with pytest.raises(RequestRefused) as refused:
        await agent.register("x" * 43 + "." + fingerprint)
    assert refused.value.status == 401
    status, body = await admin.post(VOICE + "/tokens/revoke", {"tokens": [token]})
    assert status == 200, body
    with pytest.raises(RequestRefused) as refused:
        await agent.register(token)
    assert refused.value.status == 403
    assert "revoked" in str(refused.value)
    assert await db.fetchval("SELECT count(*) FROM product_instances") == 0
    assert agent.state.registration == "unregistered"
    assert not agent.dir.key_file.exists()


async def test_a_server_the_token_did_not_pin_is_not_trusted(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    """The token carries the CA fingerprint: an answer from another CA is refused."""
    await setup_voice(admin)
    token = await new_token(admin)
    secret, fingerprint = token.rsplit(".", 1)
    other = ("A" if fingerprint[0] != "A" else "B") + fingerprint[1:]
    agent = new_agent(tmp_path, server)
    with pytest.raises(RequestRefused):
        # The server cannot find a token whose digest differs: refused before any trust.
        await agent.register(f"{secret}.{other}")
    assert agent.state.registration == "unregistered"


async def signed_post(api: Api, path: str, message: dict[str, Any]) -> tuple[int, Any]:
    return await api.call("POST", path, raw=json.dumps(message).encode())


async def test_replayed_altered_and_foreign_requests_are_refused(
    admin: Api, server: TestServer, tmp_path: Path, anon: Api, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, enhanced=5)
    agent = new_agent(tmp_path, server)
    state = await agent.register(await new_token(admin))
    product = state.product_instance_id
    assert product is not None
    path = f"/device/v1/products/{product}/usage"
    key = agent.dir.load_key()

    async def fresh_nonce() -> str:
        async with anon.client.get("/device/v1/nonce") as response:
            assert response.status == 204
            return response.headers["Replay-Nonce"]

    payload = json.dumps({"usage": [{"tag": ENHANCED, "count": 2}]}).encode()
    message = jose.sign(key, payload, {"kid": product, "nonce": await fresh_nonce(), "url": path})
    status, _ = await signed_post(anon, path, message)
    assert status == 200
    # Replay: the nonce was used.
    status, body = await signed_post(anon, path, message)
    assert status == 400, body
    assert body["type"].endswith("bad-nonce")
    # Altered payload under the old signature.
    altered = dict(message)
    altered["payload"] = (
        base64.urlsafe_b64encode(b'{"usage":[{"tag":"' + ENHANCED.encode() + b'","count":0}]}')
        .rstrip(b"=")
        .decode()
    )
    altered["protected"] = jose.sign(
        key, b"", {"kid": product, "nonce": await fresh_nonce(), "url": path}
    )["protected"]
    status, body = await signed_post(anon, path, altered)
    assert status == 401, body
    # Signed by another key.
    stranger = agent.dir.new_key()
    foreign = jose.sign(
        stranger, payload, {"kid": product, "nonce": await fresh_nonce(), "url": path}
    )
    status, body = await signed_post(anon, path, foreign)
    assert status == 401, body
    # Signed for another path.
    misdirected = jose.sign(
        key, payload, {"kid": product, "nonce": await fresh_nonce(), "url": path + "x"}
    )
    status, body = await signed_post(anon, path, misdirected)
    assert status == 401, body
    # Not a nonce of this server.
    forged = jose.sign(key, payload, {"kid": product, "nonce": "1.abc.def", "url": path})
    status, body = await signed_post(anon, path, forged)
    assert status == 400, body
    # Nothing but the first report changed anything.
    assert await db.fetchval("SELECT count(*) FROM usage_reports") == 1
    assert (await licenses(admin))[ENHANCED]["inUse"] == 2


async def test_reregistering_into_another_virtual_account_moves_the_usage(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    await setup_voice(admin, enhanced=5)
    status, body = await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Lab"})
    assert status == 200, body
    agent = new_agent(tmp_path, server)
    await agent.register(await new_token(admin))
    await agent.report_usage({ENHANCED: 3})
    state = await agent.register(await new_token(admin, va="Lab"))
    assert state.virtual_account == "Lab"
    status, body = await admin.post(ACCOUNT + "/licenses", {})
    by_va = {(line["virtualAccount"], line["entitlementTag"]): line for line in body["licenses"]}
    assert by_va[("Voice", ENHANCED)]["inUse"] == 0
    assert by_va[("Lab", ENHANCED)]["inUse"] == 3
    assert by_va[("Lab", ENHANCED)]["status"] == "Out Of Compliance"


async def test_borrowing_from_a_higher_tier_and_back(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    await setup_voice(admin, basic=2, cuwl=5)
    agent = new_agent(tmp_path, server)
    await agent.register(await new_token(admin))
    state = await agent.report_usage({BASIC: 4})
    assert state.authorization is not None
    assert state.authorization["state"] == "AUTHORIZED"
    view = await licenses(admin)
    assert view[BASIC]["licenseSubstitutions"] == [
        {
            "license": "UC Manager CUWL License (12.x)",
            "entitlementTag": CUWL,
            "quantity": 2,
            "direction": "borrowed",
        }
    ]
    assert view[CUWL]["available"] == 3
    # The lower tier restocked: no more borrowing.
    status, body = await admin.post(
        VOICE + "/license-pool", {"entitlementTag": BASIC, "quantity": 10}
    )
    assert status == 200, body
    view = await licenses(admin)
    assert view[BASIC]["licenseSubstitutions"] == []
    assert view[CUWL]["available"] == 5


async def test_usage_of_a_tag_no_longer_in_the_catalog_is_not_authorized(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    """A report naming a tag outside the catalog is refused (tests/test_data_guards.py);
    usage stored while the catalog still had a tag is no longer authorized once it has not."""
    await setup_voice(admin, enhanced=5)
    agent = new_agent(tmp_path, server)
    await agent.register(await new_token(admin))
    await agent.report_usage({ENHANCED: 1})
    gone = "regid.2099-01.com.example.Nothing"
    await db.execute(
        "INSERT INTO product_usage (product_id, tag, count) VALUES ($1::text::uuid, $2, 1)",
        agent.state.product_instance_id,
        gone,
    )
    state = await agent.renew_authorization()
    assert state.authorization is not None
    states = {t["tag"]: t["state"] for t in state.authorization["tags"]}
    assert states == {ENHANCED: "AUTHORIZED", gone: "NOT_AUTHORIZED"}
    assert state.authorization["state"] == "NOT_AUTHORIZED"


async def test_answers_arriving_in_pieces_are_read_whole(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    """A gateway in between may pass an answer on in several pieces: the agent reads it to
    its end (a registration answer carries three certificates, several kilobytes)."""
    upstream = base_url(server)

    async def relay(request: web.Request) -> web.StreamResponse:
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                upstream + request.path_qs,
                data=await request.read(),
                headers={"Content-Type": request.content_type},
            ) as answer,
        ):
            body = await answer.read()
            headers = {k: v for k, v in answer.headers.items() if k.lower() == "replay-nonce"}
            status = answer.status
        response = web.StreamResponse(status=status, headers=headers)
        response.content_type = "application/json"
        await response.prepare(request)
        for start in range(0, len(body), 700):  # in 700-byte pieces, a moment apart
            await response.write(body[start : start + 700])
            await asyncio.sleep(0.01)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", relay)
    gateway = TestServer(app, host="127.0.0.1")
    await gateway.start_server()
    try:
        await setup_voice(admin, enhanced=5)
        agent = new_agent(tmp_path, server)
        state = agent.state
        state.transport.url = str(gateway.make_url("")).rstrip("/")
        agent.save(state)
        state = await agent.register(await new_token(admin))
        assert state.registration == "registered"
        state = await agent.report_usage({ENHANCED: 2})
        assert state.authorization is not None
        assert state.authorization["state"] == "AUTHORIZED"
    finally:
        await gateway.close()
