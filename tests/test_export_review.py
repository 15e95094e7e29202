"""Export keys as registrations end and products are removed (the alarm follows what the
server released), the account's history and rules about held keys, a feature gone from the
catalog, races with cancel and usage reports, a server that never answers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from satellite.api.context import Services
from satellite.resources import config_dir
from satellite.wiring import Runtime, create_app
from satellite_agent.client import Agent, AgentError, RequestRefused, ServerUnreachable
from satellite_agent.export import ExportControl
from satellite_agent.runner import Runner, Schedule
from satellite_agent.state import Alarm
from satellite_protocol import device as wire
from satellite_protocol.catalog import parse_catalog
from tests.conftest import ENHANCED, Api
from tests.helpers.api import (
    ACCOUNT,
    EXPORT_KEY,
    FEATURE,
    VOICE,
    base_url,
    new_token,
)
from tests.helpers.export import (
    add_keys,
    export_position,
    grants,
    registered,
    setup_acme,
)

# --- review fixes -------------------------------------------------------------------------


async def remove_product(admin: Api, serial: str, va: str = VOICE) -> None:
    status, body = await admin.post(
        va + "/devices/remove",
        {"productInstacesRemoveRequests": [{"sudi": {"udiPid": "UCM", "udiSerialNumber": serial}}]},
    )
    assert status == 200, body


async def export_alerts(admin: Api) -> list[dict[str, Any]]:
    status, body = await admin.post(ACCOUNT + "/alerts", {})
    assert status == 200, body
    return [a for a in body["alerts"] if a["messageType"] == "Export Control Not Allowed"]


async def test_an_expired_registration_releases_its_export_keys(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection, services: Services
) -> None:
    """The job that ends expired registrations gives their export keys back to the pool
    (with the alert); the product learns it from its next refusal: alarm, key released,
    and only then may 'return' drop it without the server."""
    await setup_acme(admin, keys=1)
    alarms: list[Alarm] = []
    agent = await registered(admin, server, tmp_path, "EXPX01")
    agent = Agent(agent.dir.path, on_alarm=alarms.append)
    await ExportControl(agent).request(FEATURE)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)

    report = await services.maintenance.expire_registrations(later)
    assert report is not None
    assert report.counts == {"expired": 1, "export_keys_released": 1}
    rows = await db.fetch("SELECT status, end_reason FROM export_keys")
    assert [(r["status"], r["end_reason"]) for r in rows] == [("released", "registration expired")]
    assert (await export_position(admin))["exportKeys"] == 0
    [alert] = await export_alerts(admin)
    assert "EXPX01" in alert["message"]
    assert "registration expired" in alert["message"]

    with pytest.raises(RequestRefused):
        await agent.renew_authorization()
    assert agent.state.registration == "registration_expired"
    assert [a.features for a in alarms] == [[FEATURE]]
    assert agent.state.export.alarms == alarms
    assert ExportControl(agent).features() == {FEATURE: "export key (released: alarm)"}
    await ExportControl(agent).give_back(FEATURE)  # released there: only the key goes
    assert agent.state.export.keys == []


async def test_a_key_still_counted_is_not_dropped_while_not_registered(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    """A key the server was not known to release stays: 'return' while not registered
    refuses instead of dropping it (it was dropped, the license counted forever)."""
    await setup_acme(admin, keys=1)
    agent = await registered(admin, server, tmp_path, "EXPX04")
    await ExportControl(agent).request(FEATURE)
    state = agent.state
    state.registration = "registration_expired"  # as an older agent left it
    agent.save(state)
    with pytest.raises(AgentError, match="still counted on the server"):
        await ExportControl(agent).give_back(FEATURE)
    assert ExportControl(agent).features() == {FEATURE: "export key"}


async def test_a_product_removed_by_an_admin_raises_the_alarm(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_acme(admin, keys=1)
    alarms: list[Alarm] = []
    agent = await registered(admin, server, tmp_path, "EXPX03")
    agent = Agent(agent.dir.path, on_alarm=alarms.append)
    await ExportControl(agent).request(FEATURE)
    await remove_product(admin, "EXPX03")
    with structlog.testing.capture_logs() as logs, pytest.raises(RequestRefused) as refused:
        await agent.renew_authorization()
    assert refused.value.problem["type"].endswith(":product-ended")
    assert agent.state.registration == "removed"
    [alarm] = alarms
    assert (alarm.name, alarm.features) == ("SmartLicenseExportControlNotAllowed", [FEATURE])
    assert "removed" in alarm.message
    assert agent.state.export.alarms == [alarm]
    assert any(e["event"] == "agent.alarm" for e in logs)
    assert ExportControl(agent).features() == {FEATURE: "export key (released: alarm)"}
    assert [s for _, s in await grants(db)] == ["released"]
    await ExportControl(agent).give_back(FEATURE)
    assert agent.state.export.alarms == []


async def test_reregistration_alarm_follows_what_the_server_released(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    """Into a virtual account of the same name in another account: the server released the
    key, so the product raises the alarm (it compared names and raised none). Into the
    same virtual account: the key stays, no alarm."""
    await setup_acme(admin, keys=1)
    status, body = await admin.post(
        "/api/v1/accounts", {"name": "Beta", "exportControlledAllowed": True}
    )
    assert status == 200, body
    beta = "/api/v1/accounts/Beta/virtual-accounts"
    assert (await admin.post(beta, {"name": "Voice"}))[0] == 200
    alarms: list[Alarm] = []
    agent = await registered(admin, server, tmp_path, "EXPS01")
    agent = Agent(agent.dir.path, on_alarm=alarms.append)
    await ExportControl(agent).request(FEATURE)

    await agent.register(await new_token(admin))  # the same virtual account again
    assert alarms == []
    assert ExportControl(agent).features() == {FEATURE: "export key"}
    assert [s for _, s in await grants(db)] == ["granted"]

    status, body = await admin.post(beta + "/Voice/tokens", {})
    assert status == 200, body
    await agent.register(body["tokenInfo"]["token"])
    assert agent.state.virtual_account == "Voice"
    assert [s for _, s in await grants(db)] == ["released"]
    assert [a.features for a in alarms] == [[FEATURE]]
    assert ExportControl(agent).features() == {FEATURE: "export key (released: alarm)"}


async def test_export_history_stays_with_the_account_it_was_granted_in(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    """A product that registered again into another account keeps its id: the new
    account must not see the keys of its time in the old one."""
    await setup_acme(admin, keys=1)
    status, body = await admin.post(
        "/api/v1/accounts", {"name": "Beta", "exportControlledAllowed": True}
    )
    assert status == 200, body
    main = "/api/v1/accounts/Beta/virtual-accounts/Main"
    assert (await admin.post("/api/v1/accounts/Beta/virtual-accounts", {"name": "Main"}))[0] == 200
    agent = await registered(admin, server, tmp_path, "EXPX02")
    await ExportControl(agent).request(FEATURE)
    product = agent.state.product_instance_id
    status, body = await admin.post(main + "/tokens", {})
    assert status == 200, body
    await agent.register(body["tokenInfo"]["token"])
    assert agent.state.product_instance_id == product  # the same product, moved

    status, keys = await admin.get(f"{main}/devices/{product}/export-keys")
    assert status == 200, keys
    assert keys["exportKeys"] == []
    status, old = await admin.get(f"{VOICE}/export-keys?status=all")
    assert status == 200
    assert [k["productInstanceId"] for k in old["exportKeys"]] == [product]


async def test_export_cannot_be_disallowed_while_keys_are_held(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    await setup_acme(admin, keys=0)
    # A line not marked export-restricted, so that only the key held is left to count.
    status, body = await admin.post(
        VOICE + "/license-pool",
        {"entitlementTag": EXPORT_KEY, "quantity": 1, "exportRestricted": False},
    )
    assert status == 200, body
    agent = await registered(admin, server, tmp_path, "EXPH01")
    await ExportControl(agent).request(FEATURE)
    status, tokens = await admin.get(VOICE + "/tokens")
    status, body = await admin.post(
        VOICE + "/tokens/revoke", {"tokens": [t["token"] for t in tokens["tokens"]]}
    )
    assert status == 200, body

    status, body = await admin.post(ACCOUNT + "/update", {"exportControlledAllowed": False})
    assert status == 409, body
    assert body["field"] == "exportControlledAllowed"
    assert "1 export key(s) granted" in body["detail"]
    await ExportControl(agent).give_back(FEATURE)
    status, body = await admin.post(ACCOUNT + "/update", {"exportControlledAllowed": False})
    assert status == 200, body


async def test_a_line_backing_granted_keys_is_not_removed(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    """Removing (or lowering) a pool line is refused while the export keys granted of its
    tag would not be covered any more; another line of the tag may cover them."""
    await setup_acme(admin, keys=0)
    first = await add_keys(admin, 1)
    agent = await registered(admin, server, tmp_path, "EXPL01")
    await ExportControl(agent).request(FEATURE)

    status, body = await admin.post(f"{VOICE}/license-pool/{first}/delete", {})
    assert status == 409, body
    assert body["field"] == "lineId"
    assert "export key" in body["detail"]
    status, body = await admin.post(
        f"{VOICE}/license-pool/{first}/update", {"entitlementTag": EXPORT_KEY, "quantity": 0}
    )
    assert status in (409, 422), body
    assert await db.fetchval("SELECT count(*) FROM license_lines") == 1

    second = await add_keys(admin, 1)
    status, body = await admin.post(f"{VOICE}/license-pool/{first}/delete", {})
    assert status == 200, body
    status, body = await admin.post(f"{VOICE}/license-pool/{second}/delete", {})
    assert status == 409, body
    position = await export_position(admin)
    assert (position["exportKeys"], position["available"]) == (1, 0)


async def test_a_key_is_returned_after_its_feature_left_the_catalog(
    admin: Api, server: TestServer, tmp_path: Path, runtime: Runtime, db: asyncpg.Connection
) -> None:
    await setup_acme(admin, keys=1)
    agent = await registered(admin, server, tmp_path, "EXPC02")
    await ExportControl(agent).request(FEATURE)
    text = (config_dir() / "catalog.toml").read_text()
    assert f'export_feature = "{FEATURE}"\n' in text
    without = parse_catalog(text.replace(f'export_feature = "{FEATURE}"\n', "").encode(), "t")
    assert without.export_key(FEATURE) is None
    changed = TestServer(create_app(replace(runtime, catalog=without)), host="127.0.0.1")
    await changed.start_server()
    try:
        state = agent.state
        state.transport.url = str(changed.make_url("")).rstrip("/")
        agent.save(state)
        await ExportControl(agent).give_back(FEATURE)
        # Still refused for a feature that neither the catalog nor the product knows.
        with pytest.raises(RequestRefused) as unknown:
            await agent.signed_request(
                "export/return", wire.ExportRequest(feature="NoSuch"), wire.ExportReturned
            )
        assert unknown.value.problem["type"].endswith(":unknown-export-feature")
    finally:
        await changed.close()
    assert agent.state.export.keys == []
    assert [s for _, s in await grants(db)] == ["returned"]


class Gate:
    """An HTTP relay to the real server that holds every POST until released: a slow link,
    with the moment a request is on its way known exactly."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._relay)
        self.server = TestServer(app, host="127.0.0.1")

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    async def _relay(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.method == "POST":
            self.arrived.set()
            await self.release.wait()
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with (
            ClientSession() as session,
            session.request(
                request.method, self.target + request.path_qs, data=body, headers=headers
            ) as answer,
        ):
            skip = {"content-length", "transfer-encoding", "content-encoding"}
            return web.Response(
                status=answer.status,
                body=await answer.read(),
                headers={k: v for k, v in answer.headers.items() if k.lower() not in skip},
            )


async def test_cancel_is_not_undone_by_a_retry_on_its_way(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_acme(admin, keys=0)
    agent = await registered(admin, server, tmp_path, "EXPC01")
    with pytest.raises(AgentError):
        await ExportControl(agent).request(FEATURE)  # no key free: pending
    gate = Gate(base_url(server))
    await gate.server.start_server()
    try:
        state = agent.state
        state.transport.url = gate.url
        state.export.pending[0].next_attempt = state.export.pending[0].since
        agent.save(state)
        runner = asyncio.create_task(ExportControl(Agent(agent.dir.path)).retry_due())
        await asyncio.wait_for(gate.arrived.wait(), 10)
        cancelled = ExportControl(Agent(agent.dir.path)).cancel()  # the operator, meanwhile
        assert [p.feature for p in cancelled] == [FEATURE]
        gate.release.set()
        assert await asyncio.wait_for(runner, 10) == []  # refused again (409)
    finally:
        await gate.server.close()
    assert agent.state.export.pending == []  # the cancel stands


async def test_a_usage_report_on_its_way_keeps_a_key_installed_meanwhile(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    await setup_acme(admin, keys=1)
    agent = await registered(admin, server, tmp_path, "EXPC03")
    direct = base_url(server).rstrip("/")
    gate = Gate(direct)
    await gate.server.start_server()
    try:
        state = agent.state
        state.transport.url = gate.url
        agent.save(state)
        report = asyncio.create_task(Agent(agent.dir.path).report_usage({ENHANCED: 1}))
        await asyncio.wait_for(gate.arrived.wait(), 10)
        state = agent.state
        state.transport.url = direct
        agent.save(state)
        await ExportControl(Agent(agent.dir.path)).request(FEATURE)  # meanwhile, directly
        gate.release.set()
        await asyncio.wait_for(report, 10)
    finally:
        await gate.server.close()
    state = agent.state
    assert [k.feature for k in state.export.keys] == [FEATURE]  # not lost
    assert state.usage == {ENHANCED: 1}
    assert state.transport.url == direct


@contextlib.asynccontextmanager
async def black_hole() -> AsyncIterator[str]:
    """A server that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    listening = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        listening.close()
        await listening.wait_closed()


async def test_a_server_that_never_answers_is_unreachable_not_a_crash(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    await setup_acme(admin, keys=1)
    registered_once = await registered(admin, server, tmp_path, "EXPT01")
    agent = Agent(registered_once.dir.path, timeout=0.3)
    async with black_hole() as url:
        state = agent.state
        state.transport.url = url
        agent.save(state)
        with pytest.raises(ServerUnreachable, match="no answer in time"):
            await agent.renew_authorization()
        with pytest.raises(AgentError, match="retried automatically"):
            await ExportControl(agent).request(FEATURE)
        assert [p.feature for p in agent.state.export.pending] == [FEATURE]

        # The runner keeps going (it died of the TimeoutError).
        schedule = Schedule(
            first_retry=dt.timedelta(milliseconds=50),
            longest_retry=dt.timedelta(milliseconds=100),
            usage_every=dt.timedelta(milliseconds=50),
        )
        stop = asyncio.Event()
        with structlog.testing.capture_logs() as logs:
            running = asyncio.create_task(Runner(agent, dict, schedule).run(stop))
            await asyncio.sleep(1.5)
            assert not running.done()
            stop.set()
            await asyncio.wait_for(running, 5)
        assert sum(e["event"] == "agent.server_unreachable" for e in logs) >= 2


async def test_a_license_granted_as_an_export_key_is_not_free_to_transfer(
    admin: Api, server: TestServer, tmp_path: Path
) -> None:
    """Free to transfer is what no export key holds either: of two keys, one granted, one
    moves and the second is refused naming the line (nothing moves)."""
    await setup_acme(admin, keys=2)
    assert (await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Lab"}))[0] == 200
    agent = await registered(admin, server, tmp_path, "EXP001")
    await ExportControl(agent).request(FEATURE)
    transfer = ACCOUNT + "/licenses/transfer"
    two = {"license": EXPORT_KEY, "quantity": 2, "targetVirtualAccount": "lab"}
    status, problem = await admin.post(
        transfer, {"sourceVirtualAccount": "voice", "licenses": [two]}
    )
    assert status == 409, problem
    assert problem["field"] == "licenses[0]"
    assert "1 export key(s) granted" in problem["detail"]
    one = {**two, "quantity": 1}
    status, body = await admin.post(transfer, {"sourceVirtualAccount": "voice", "licenses": [one]})
    assert status == 200, body
    status, body = await admin.post(ACCOUNT + "/licenses", {"virtualAccounts": ["Voice", "Lab"]})
    assert status == 200, body
    got = {(p["virtualAccount"], p["entitlementTag"]): p for p in body["licenses"]}
    voice, lab = got[("Voice", EXPORT_KEY)], got[("Lab", EXPORT_KEY)]
    assert (voice["quantity"], voice["exportKeys"], voice["available"]) == (1, 1, 0)
    assert (lab["quantity"], lab["exportKeys"], lab["available"]) == (1, 0, 1)
