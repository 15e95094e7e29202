"""A registration never takes a live product it cannot prove it is (issue 11, section 1):
the real agent against the real daemon."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from satellite_agent.client import Agent, RequestRefused
from satellite_agent.runner import Runner
from satellite_agent.state import AgentState, Identity
from tests.conftest import ENHANCED, Api
from tests.test_agent_cli import AgentCli
from tests.test_device import ACCOUNT, VOICE, base_url, licenses, new_token, setup_voice

PID, SERIAL = "C9300", "FOC1234X0AB"
PROBLEM = "urn:satellite:problem:"


def product_agent(path: Path, server: TestServer, uuid: str) -> Agent:
    """An agent of PID C9300, serial FOC1234X0AB (the issue's product), key of its own."""
    agent = Agent(path)
    state = agent.init(
        Identity(
            pid=PID, serial_number=SERIAL, uuid=uuid, product_type="C9300", product_version="17"
        )
    )
    state.transport.url = base_url(server)
    agent.save(state)
    return agent


async def beta_token(admin: Api) -> str:
    """A token of another account, Beta (virtual account Main)."""
    assert (await admin.post("/api/v1/accounts", {"name": "Beta"}))[0] == 200
    status, body = await admin.post("/api/v1/accounts/Beta/virtual-accounts", {"name": "Main"})
    assert status == 200, body
    status, body = await admin.post("/api/v1/accounts/Beta/virtual-accounts/Main/tokens", {})
    assert status == 200, body
    token: str = body["tokenInfo"]["token"]
    return token


async def snapshot(db: asyncpg.Connection) -> list[Any]:
    return [
        [tuple(r) for r in await db.fetch(f"SELECT * FROM {table} ORDER BY 1")]  # noqa: S608
        for table in (
            "product_instances",
            "product_usage",
            "virtual_account_usage",
            "events",
            "registration_tokens",
        )
    ]


async def serials(admin: Api, base: str = VOICE) -> list[str]:
    status, body = await admin.get(f"{base}/devices")
    assert status == 200, body
    return [d["sudi"]["udiSerialNumber"] for d in body["devices"]]


async def test_a_token_of_another_account_cannot_take_a_live_product(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    """The issue's reproduction: P registers into account A (Acme); a second agent with its
    own key, same PID and serial, registers with a token of account B (Beta)."""
    await setup_voice(admin, enhanced=5)
    real = product_agent(tmp_path / "real", server, "6f1e0c5a-0000-4000-8000-000000000001")
    await real.register(await new_token(admin))
    await real.report_usage({ENHANCED: 2})
    token = await beta_token(admin)
    intruder = product_agent(tmp_path / "intruder", server, "6f1e0c5a-0000-4000-8000-00000000000f")
    before = await snapshot(db)

    with pytest.raises(RequestRefused) as refused:
        await intruder.register(token)
    assert refused.value.status == 409
    assert refused.value.problem["type"] == PROBLEM + "registered-elsewhere"
    detail = refused.value.problem["detail"]
    assert f"PID:{PID} SN:{SERIAL} is registered elsewhere" in detail
    assert "deregistered or removed there first" in detail
    assert "Acme" not in detail  # the other account is not named to a token holder
    assert await snapshot(db) == before  # nothing changed, the token not used either
    assert intruder.state.registration == "unregistered"

    # Claiming to be the live instance (its id, copied) does not help without its key:
    # the proof is signed with the intruder's own.
    def claim(state: AgentState) -> None:
        state.product_instance_id = real.state.product_instance_id

    intruder.update(claim)
    intruder.dir.save_key(intruder.dir.new_key())
    with pytest.raises(RequestRefused) as refused:
        await intruder.register(token, force=True)
    assert refused.value.problem["type"] == PROBLEM + "registered-elsewhere"
    assert await snapshot(db) == before

    # A still lists it, and the real product goes on as before.
    assert await serials(admin) == [SERIAL]
    assert await serials(admin, "/api/v1/accounts/Beta/virtual-accounts/Main") == []
    state = await real.report_usage({ENHANCED: 3})
    assert state.authorization is not None
    assert state.authorization["state"] == "AUTHORIZED"
    assert (await licenses(admin))[ENHANCED]["inUse"] == 3


async def test_another_virtual_account_is_refused_even_with_force(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    """Force replaces only within the product's own virtual account: a token of another
    virtual account of the same account is refused as well."""
    await setup_voice(admin, enhanced=5)
    assert (await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Lab"}))[0] == 200
    real = product_agent(tmp_path / "real", server, "6f1e0c5a-0000-4000-8000-000000000001")
    await real.register(await new_token(admin))
    other = product_agent(tmp_path / "other", server, "6f1e0c5a-0000-4000-8000-000000000002")
    lab_token = await new_token(admin, va="Lab")
    before = await snapshot(db)
    for force in (False, True):
        with pytest.raises(RequestRefused) as refused:
            await other.register(lab_token, force=force)
        assert refused.value.status == 409
        assert refused.value.problem["type"] == PROBLEM + "registered-elsewhere"
    assert await snapshot(db) == before
    assert await serials(admin) == [SERIAL]


async def test_force_in_the_same_virtual_account_replaces_and_the_old_one_is_told(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, enhanced=5)
    token = await new_token(admin, numberOfUses=5)
    old = product_agent(tmp_path / "old", server, "6f1e0c5a-0000-4000-8000-000000000001")
    await old.register(token)
    await old.report_usage({ENHANCED: 2})
    old_id = old.state.product_instance_id

    # Without force: refused, saying how to replace it.
    new = AgentCli(tmp_path / "new")
    url = base_url(server)
    await new.ok("init", "--pid", PID, "--serial", SERIAL, "--url", url)
    before = await snapshot(db)
    code, _, err = await new("register", token)
    assert code != 0
    assert err.count("\n") == 1
    assert "(409)" in err
    assert "force" in err
    assert await snapshot(db) == before

    # With force, in the reference's grammar: replaced, audited.
    out = await new.ok("license", "smart", "register", "idtoken", token, "force")
    assert "registered as" in out
    new_id = json.loads(await new.ok("status", "--json"))["productInstanceId"]
    assert new_id != old_id
    events = await db.fetch(
        "SELECT action, target, details FROM events WHERE action = 'product.replaced'"
    )
    assert len(events) == 1
    assert events[0]["target"] == f"Voice/{old_id}"
    details = json.loads(events[0]["details"])
    assert details["replaced_by"] == new_id
    assert details["udi"] == f"PID:{PID} SN:{SERIAL}"
    # The old registration's usage left with it.
    assert (await licenses(admin))[ENHANCED]["inUse"] == 0
    assert await serials(admin) == [SERIAL]
    status, body = await admin.get(f"{VOICE}/devices?status=Replaced")
    assert status == 200, body
    assert [d["status"] for d in body["devices"]] == ["Replaced"]

    # The old product learns it in words, not as a bad signature ...
    runner = Runner(old, lambda: {ENHANCED: 2})
    with pytest.raises(RequestRefused) as refused:
        await runner.run_due()
    assert refused.value.status == 403
    assert refused.value.problem["type"] == PROBLEM + "registration-replaced"
    assert "registration replaced by a forced registration" in str(refused.value)
    assert "signature" not in str(refused.value)
    state = old.state
    assert state.registration == "replaced"
    assert state.last_error is not None
    assert "registration replaced by" in state.last_error
    # ... shows it in its status, and stops: nothing is due any more (no retry loop).
    status_out = await AgentCli(tmp_path / "old").ok("status")
    assert "registration replaced by a forced registration" in status_out
    assert await runner.run_due() == []
    assert (await licenses(admin))[ENHANCED]["inUse"] == 0


async def test_the_product_itself_moves_by_proving_its_key(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    """'reregister': the request is signed with the product's current key as well, so it
    may move into another account (its usage moves with it)."""
    await setup_voice(admin, enhanced=5)
    real = product_agent(tmp_path / "real", server, "6f1e0c5a-0000-4000-8000-000000000001")
    await real.register(await new_token(admin))
    product_id = real.state.product_instance_id
    await real.report_usage({ENHANCED: 2})
    state = await real.register(await beta_token(admin))
    assert (state.product_instance_id, state.virtual_account) == (product_id, "Main")
    assert await serials(admin) == []
    assert await serials(admin, "/api/v1/accounts/Beta/virtual-accounts/Main") == [SERIAL]
    state = await real.report_usage({ENHANCED: 1})
    assert state.registration == "registered"
    actions = [r["action"] for r in await db.fetch("SELECT action FROM events ORDER BY id")]
    assert "product.moved_out" in actions


async def test_a_replaced_product_due_to_renew_its_registration_stops_too(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    await setup_voice(admin, enhanced=5)
    token = await new_token(admin, numberOfUses=2)
    old = product_agent(tmp_path / "old", server, "6f1e0c5a-0000-4000-8000-000000000001")
    await old.register(token)
    new = product_agent(tmp_path / "new", server, "6f1e0c5a-0000-4000-8000-000000000002")
    await new.register(token, force=True)

    def due(state: AgentState) -> None:
        state.renew_registration_after = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)

    old.update(due)
    runner = Runner(old, dict)
    with pytest.raises(RequestRefused, match="registration replaced by"):
        await runner.run_due()
    assert old.state.registration == "replaced"
    assert await runner.run_due() == []
