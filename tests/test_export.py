"""Export-controlled features end to end: the real agent against the real daemon (grant,
every refusal, retry and cancel, return, the deregistration alarm, evaluation), the signed
export key checked by the agent, the race for the last key, and the SLR path."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
import structlog
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import ec

from satellite.api.context import Services
from satellite.crypto.keys import KeyPaths, load_server_keys
from satellite.resources import config_dir
from satellite.wiring import Runtime, create_app
from satellite_agent.client import Agent, AgentError, RequestRefused, ServerUnreachable
from satellite_agent.export import ExportControl, ExportUnavailable
from satellite_agent.runner import Runner, Schedule
from satellite_agent.state import Alarm
from satellite_protocol import device as wire
from satellite_protocol.catalog import parse_catalog
from satellite_protocol.crypto import jose
from tests.conftest import ENHANCED, Api
from tests.test_agent_cli import AgentCli
from tests.test_cli import Cli, _toml_config
from tests.test_device import base_url, new_agent, new_token
from tests.test_reservation import new_product

ACCOUNT = "/api/v1/accounts/Acme"
VOICE = ACCOUNT + "/virtual-accounts/Voice"
EXPORT_KEY = "regid.2019-03.com.cisco.UCM_ExportKey_12.0_d1e6b8a3-4f2c-4b7d-9e31-6a5c0f7b2d48"
FEATURE = "UCM_Encryption"


async def setup_acme(admin: Api, keys: int = 1, *, allowed: bool = True) -> None:
    status, body = await admin.post(
        "/api/v1/accounts", {"name": "Acme", "exportControlledAllowed": allowed}
    )
    assert status == 200, body
    assert (await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Voice"}))[0] == 200
    if keys:
        await add_keys(admin, keys)


async def add_keys(admin: Api, quantity: int) -> int:
    status, body = await admin.post(
        VOICE + "/license-pool", {"entitlementTag": EXPORT_KEY, "quantity": quantity}
    )
    assert status == 200, body
    line: int = body["license"]["id"]
    return line


async def registered(
    admin: Api, server: TestServer, tmp_path: Path, serial: str, **token: Any
) -> Agent:
    agent = new_agent(tmp_path, server, serial)
    await agent.register(await new_token(admin, **token))
    return agent


async def export_position(admin: Api) -> dict[str, Any]:
    status, body = await admin.post(ACCOUNT + "/licenses", {})
    assert status == 200, body
    found = {line["entitlementTag"]: line for line in body["licenses"]}
    position: dict[str, Any] = found.get(EXPORT_KEY, {})
    return position


async def grants(db: asyncpg.Connection) -> list[tuple[str, str]]:
    """(product id, status) of every export key row."""
    rows = await db.fetch("SELECT product_id::text, status FROM export_keys ORDER BY granted_at")
    return [(r["product_id"], r["status"]) for r in rows]


def refusal(exc: pytest.ExceptionInfo[AgentError]) -> str:
    """The server's reason: of the refusal itself, or of the one behind a retried request."""
    refused = exc.value if isinstance(exc.value, RequestRefused) else exc.value.__cause__
    assert isinstance(refused, RequestRefused), exc.value
    return str(refused.problem["type"]).rsplit(":", 1)[1]


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


# --- grant --------------------------------------------------------------------------------


async def test_grant_enables_the_feature_and_takes_one_key_from_the_pool(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_acme(admin, keys=2)
    agent = await registered(admin, server, tmp_path, "EXP001")
    assert agent.state.export_controlled  # the product knows its kind of registration
    exports = ExportControl(agent)
    assert not exports.enabled(FEATURE)

    key = await exports.request(FEATURE)
    assert key.feature == FEATURE
    assert key.tag == EXPORT_KEY
    assert exports.features() == {FEATURE: "export key"}
    product_id = agent.state.product_instance_id
    assert await grants(db) == [(product_id, "granted")]
    position = await export_position(admin)
    assert (position["exportKeys"], position["inUse"], position["available"]) == (1, 1, 1)

    # Asked again (an answer lost on the way): the same key, no second license.
    again = await exports.request(FEATURE)
    assert again.key_id == key.key_id
    assert (await export_position(admin))["exportKeys"] == 1

    status, listing = await admin.get(VOICE + "/export-keys")
    assert status == 200, listing
    [shown] = listing["exportKeys"]
    assert shown["keyId"] == key.key_id
    assert shown["productInstanceId"] == product_id
    assert (shown["feature"], shown["status"], shown["sudi"]["udiSerialNumber"]) == (
        FEATURE,
        "Granted",
        "EXP001",
    )
    status, per_product = await admin.get(f"{VOICE}/devices/{product_id}/export-keys")
    assert status == 200
    assert per_product["exportKeys"] == listing["exportKeys"]
    status, catalog = await admin.get("/api/v1/license-catalog")
    assert {e["exportFeature"] for e in catalog["licenses"]} == {None, FEATURE}
    actions = [r["action"] for r in await db.fetch("SELECT action FROM events ORDER BY id")]
    assert actions.count("export.granted") == 1


async def test_two_products_race_for_the_last_keys(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    """Grants are counted with the virtual account locked: 2 keys, 6 products asking at
    once, exactly 2 win."""
    await setup_acme(admin, keys=2)
    agents = [await registered(admin, server, tmp_path, f"RACE0{n}") for n in range(6)]

    async def ask(agent: Agent) -> str:
        with contextlib.suppress(AgentError):
            await ExportControl(agent).request(FEATURE)
            return "granted"
        return "refused"

    outcome = await asyncio.gather(*(ask(agent) for agent in agents))
    assert sorted(outcome) == ["granted"] * 2 + ["refused"] * 4
    assert [s for _, s in await grants(db)] == ["granted", "granted"]
    position = await export_position(admin)
    assert (position["exportKeys"], position["available"]) == (2, 0)


# --- refusals -----------------------------------------------------------------------------


async def test_each_refusal_names_its_reason_and_grants_nothing(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_acme(admin, keys=0)
    agent = await registered(admin, server, tmp_path, "EXP002")
    exports = ExportControl(agent)

    # Unknown feature: a 422 naming the field; never retried.
    with pytest.raises(AgentError) as unknown:
        await exports.request("NoSuchFeature")
    assert refusal(unknown) == "unknown-export-feature"
    assert isinstance(unknown.value, RequestRefused)
    assert unknown.value.problem["field"] == "feature"
    assert FEATURE in unknown.value.problem["detail"]
    assert agent.state.export.pending == []

    # No key in the pool (there is none; a higher tier is never borrowed): retried.
    status, body = await admin.post(
        VOICE + "/license-pool", {"entitlementTag": ENHANCED, "quantity": 50}
    )
    assert status == 200, body
    with pytest.raises(AgentError) as unavailable:
        await exports.request(FEATURE)
    assert "retried automatically" in str(unavailable.value)
    assert refusal(unavailable) == "export-key-unavailable"
    assert [p.feature for p in agent.state.export.pending] == [FEATURE]

    # A registration with a token that does not allow export: never, and not retried.
    plain = await registered(
        admin, server, tmp_path, "EXP003", exportControlled="Not Allowed", description="plain"
    )
    assert not plain.state.export_controlled
    await add_keys(admin, 1)
    with pytest.raises(AgentError) as not_allowed:
        await ExportControl(plain).request(FEATURE)
    assert refusal(not_allowed) == "export-registration-not-allowed"
    assert plain.state.export.pending == []

    # Removed by an admin: not registered any more.
    status, body = await admin.post(
        VOICE + "/devices/remove",
        {
            "productInstacesRemoveRequests": [
                {"sudi": {"udiPid": "UCM", "udiSerialNumber": "EXP003"}}
            ]
        },
    )
    assert status == 200, body
    with pytest.raises(AgentError) as ended:
        await ExportControl(plain).request(FEATURE)
    assert refusal(ended) == "product-ended"
    assert await grants(db) == []


async def test_account_not_allowed_is_refused(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    """A product registered while the account was allowed; the account no longer is."""
    await setup_acme(admin, keys=1)
    agent = await registered(admin, server, tmp_path, "EXP004")
    status, tokens = await admin.get(VOICE + "/tokens")
    assert status == 200
    status, body = await admin.post(
        VOICE + "/tokens/revoke", {"tokens": [t["token"] for t in tokens["tokens"]]}
    )
    assert status == 200, body
    status, pool = await admin.get(VOICE + "/license-pool")
    for line in pool["licenses"]:
        assert (await admin.post(f"{VOICE}/license-pool/{line['id']}/delete", {}))[0] == 200
    status, body = await admin.post(ACCOUNT + "/update", {"exportControlledAllowed": False})
    assert status == 200, body
    with pytest.raises(AgentError) as refused:
        await ExportControl(agent).request(FEATURE)
    assert refusal(refused) == "export-account-not-allowed"
    assert await grants(db) == []


async def test_evaluation_mode_refuses_without_asking_the_server(
    server: TestServer, tmp_path: Path
) -> None:
    agent = new_agent(tmp_path, server, "EVAL01")
    state = agent.state
    state.transport.url = closed_port_url()  # any network call would fail differently
    agent.save(state)
    exports = ExportControl(agent)
    with pytest.raises(ExportUnavailable, match="evaluation mode"):
        await exports.request(FEATURE)
    assert "evaluation" in (exports.availability() or "")
    assert exports.features() == {}
    assert agent.state.export.pending == []


# --- retry and cancel ---------------------------------------------------------------------


async def test_failed_request_backs_off_then_cancel_stops_it(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_acme(admin, keys=0)
    token = await new_token(admin)
    now = [dt.datetime.now(dt.UTC)]
    agent = Agent(tmp_path / "agent-EXP005", clock=lambda: now[0])
    new_agent(tmp_path, server, "EXP005")  # the same directory, initialized
    await agent.register(token)
    exports = ExportControl(agent, jitter=lambda: 1.0)  # no jitter: exact waits

    with pytest.raises(AgentError):
        await exports.request(FEATURE)
    [pending] = agent.state.export.pending
    assert (pending.attempts, pending.next_attempt) == (1, now[0] + dt.timedelta(seconds=30))
    assert await exports.retry_due() == []  # not due yet
    now[0] += dt.timedelta(seconds=30)
    assert await exports.retry_due() == []  # due, refused again: the wait doubles
    [pending] = agent.state.export.pending
    assert (pending.attempts, pending.next_attempt) == (2, now[0] + dt.timedelta(seconds=60))
    assert "(409)" in (pending.last_error or "")

    assert [p.feature for p in exports.cancel()] == [FEATURE]
    assert agent.state.export.pending == []
    await add_keys(admin, 1)
    now[0] += dt.timedelta(hours=2)
    assert await exports.retry_due() == []  # cancelled: nothing is asked any more
    assert await grants(db) == []
    with pytest.raises(AgentError, match="no export request or return is pending"):
        exports.cancel()


async def test_the_runner_retries_until_the_key_is_granted(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_acme(admin, keys=0)
    agent = await registered(admin, server, tmp_path, "EXP007")
    with pytest.raises(AgentError):
        await ExportControl(agent, first_retry=dt.timedelta(milliseconds=50)).request(FEATURE)
    await add_keys(admin, 1)
    schedule = Schedule(
        first_retry=dt.timedelta(milliseconds=50),
        longest_retry=dt.timedelta(milliseconds=200),
        usage_every=dt.timedelta(hours=1),
    )
    stop = asyncio.Event()
    running = asyncio.create_task(Runner(agent, dict, schedule).run(stop))
    try:
        for _ in range(200):
            if ExportControl(agent).enabled(FEATURE):
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
    assert ExportControl(agent).features() == {FEATURE: "export key"}
    assert agent.state.export.pending == []
    assert [s for _, s in await grants(db)] == ["granted"]


# --- return -------------------------------------------------------------------------------


async def test_return_gives_the_license_back_and_removes_the_key(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_acme(admin, keys=1)
    agent = await registered(admin, server, tmp_path, "EXP008")
    exports = ExportControl(agent)
    await exports.request(FEATURE)
    await exports.give_back(FEATURE)
    assert exports.features() == {}
    assert agent.state.export.keys == []
    assert [s for _, s in await grants(db)] == ["returned"]
    assert (await export_position(admin))["exportKeys"] == 0
    with pytest.raises(AgentError, match="holds no export key"):
        await exports.give_back(FEATURE)

    # A return that cannot reach the server stays pending; cancel ends it (the key stays,
    # and so does the license on the server).
    await exports.request(FEATURE)
    state = agent.state
    url, state.transport.url = state.transport.url, closed_port_url()
    agent.save(state)
    with pytest.raises(AgentError, match="retried automatically"):
        await exports.give_back(FEATURE)
    assert [(p.action, p.feature) for p in agent.state.export.pending] == [("return", FEATURE)]
    assert [(p.action, p.feature) for p in exports.cancel()] == [("return", FEATURE)]
    assert exports.enabled(FEATURE)
    assert [s for _, s in await grants(db)] == ["returned", "granted"]
    state = agent.state
    state.transport.url = url
    agent.save(state)
    await exports.give_back(FEATURE)
    assert [s for _, s in await grants(db)] == ["returned", "returned"]


# --- the export key as the agent checks it ------------------------------------------------


async def test_forged_export_keys_are_refused_and_change_nothing(
    admin: Api, server: TestServer, tmp_path: Path, state_dir: Path
) -> None:
    await setup_acme(admin, keys=1)
    agent = await registered(admin, server, tmp_path, "EXP009")
    exports = ExportControl(agent)
    state = agent.state
    server_key = load_server_keys(KeyPaths(state_dir)).signing_key

    def granted(
        signer: ec.EllipticCurvePrivateKey = server_key,
        product: str | None = state.product_instance_id,
        serial: str = "EXP009",
        feature: str = FEATURE,
        typ: str = wire.EXPORT_KEY_TYPE,
    ) -> wire.ExportGranted:
        claims = wire.ExportKeyClaims(
            key_id="k1",
            product_instance_id=product or "",
            udi=wire.Udi(udi_pid="UCM", udi_serial=serial, udi_uuid=state.identity.uuid),
            feature=feature,
            tag=EXPORT_KEY,
            issued_at=dt.datetime.now(dt.UTC),
        )
        key = jose.sign(signer, msgspec.json.encode(claims), {"typ": typ})
        return wire.ExportGranted(
            feature=feature, tag=EXPORT_KEY, display_name="", key=key, granted_at=claims.issued_at
        )

    before = agent.dir.state_file.read_bytes()
    for forged, reason in (
        (granted(signer=ec.generate_private_key(ec.SECP256R1())), "signature does not verify"),
        (granted(product="00000000-0000-4000-8000-000000000000"), "another product"),
        (granted(serial="OTHER1"), "another product"),
        (granted(feature="OtherFeature"), "enables 'OtherFeature'"),
        (granted(typ="JWT"), "not an export key"),
    ):
        with pytest.raises(AgentError, match=reason):
            exports.install_key(FEATURE, forged)
        assert agent.dir.state_file.read_bytes() == before
    tampered = granted()
    tampered.key["payload"] = tampered.key["payload"][:-4] + "AAAA"
    with pytest.raises(AgentError, match="signature"):
        exports.install_key(FEATURE, tampered)
    assert agent.dir.state_file.read_bytes() == before
    # The genuine key of the same shape is accepted.
    exports.install_key(FEATURE, granted())
    assert exports.enabled(FEATURE)


# --- deregistration -----------------------------------------------------------------------


async def test_deregistration_releases_keys_and_raises_the_alarm(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_acme(admin, keys=2)
    alarms: list[Alarm] = []
    agent = Agent(tmp_path / "agent-EXP010", on_alarm=alarms.append)
    new_agent(tmp_path, server, "EXP010")
    await agent.register(await new_token(admin))
    exports = ExportControl(agent)
    await exports.request(FEATURE)

    with structlog.testing.capture_logs() as logs:
        await agent.deregister()
    # The product: alarm in its state, in its log, through the callback; feature on.
    [alarm] = alarms
    assert alarm.name == "SmartLicenseExportControlNotAllowed"
    assert alarm.features == [FEATURE]
    assert agent.state.export.alarms == [alarm]
    assert any(e["event"] == "agent.alarm" and e["features"] == [FEATURE] for e in logs)
    assert exports.features() == {FEATURE: "export key (released: alarm)"}
    # The server: the license is back, the account has an alert.
    assert [s for _, s in await grants(db)] == ["released"]
    assert (await export_position(admin))["exportKeys"] == 0
    status, body = await admin.post(ACCOUNT + "/alerts", {})
    assert status == 200, body
    [alert] = [a for a in body["alerts"] if a["messageType"] == "Export Control Not Allowed"]
    assert "EXP010" in alert["message"]
    assert FEATURE in alert["message"]
    reasons = await db.fetch("SELECT end_reason FROM export_keys")
    assert [r["end_reason"] for r in reasons] == ["deregistered"]

    # Returning the released key only removes it here; the alarm goes with it.
    await exports.give_back(FEATURE)
    assert exports.features() == {}
    assert agent.state.export.alarms == []


async def test_removal_reregistration_and_transfer_with_keys(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_acme(admin, keys=3)
    assert (await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Other"}))[0] == 200
    moved = await registered(admin, server, tmp_path, "EXP011")
    await ExportControl(moved).request(FEATURE)
    sudi = {"udiPid": "UCM", "udiSerialNumber": "EXP011"}
    status, body = await admin.post(
        VOICE + "/devices/transfer",
        {"productInstances": [{"sudi": sudi, "targetVirtualAccount": "Other"}]},
    )
    assert status == 409, body
    assert "export keys" in body["detail"]
    assert body["field"] == "productInstances[0]"

    # Registered again with a token that does not allow export: released, alarm.
    alarms: list[Alarm] = []
    again = Agent(moved.dir.path, on_alarm=alarms.append)
    await again.register(await new_token(admin, exportControlled="Not Allowed"))
    assert [a.features for a in alarms] == [[FEATURE]]
    assert [s for _, s in await grants(db)] == ["released"]

    removed = await registered(admin, server, tmp_path, "EXP012")
    await ExportControl(removed).request(FEATURE)
    status, body = await admin.post(
        VOICE + "/devices/remove",
        {
            "productInstacesRemoveRequests": [
                {"sudi": {"udiPid": "UCM", "udiSerialNumber": "EXP012"}}
            ]
        },
    )
    assert status == 200, body
    rows = await db.fetch("SELECT status, end_reason FROM export_keys ORDER BY granted_at")
    assert [(r["status"], r["end_reason"]) for r in rows] == [
        ("released", "re-registered"),
        ("released", "removed"),
    ]
    assert (await export_position(admin))["exportKeys"] == 0
    status, history = await admin.get(VOICE + "/export-keys?status=all")
    assert status == 200
    assert history["totalRecords"] == 2
    status, live = await admin.get(VOICE + "/export-keys")
    assert status == 200
    assert live["totalRecords"] == 0
    status, bad = await admin.get(VOICE + "/export-keys?status=gone")
    assert status == 422
    assert bad["field"] == "status"


# --- specific license reservation ---------------------------------------------------------


async def reserve_export_key(admin: Api, request_code: str) -> tuple[int, Any]:
    return await admin.post(
        VOICE + "/reserve-licenses",
        {
            "reservationRequests": [
                {
                    "reservationCode": request_code,
                    "licenses": [{"entitlementTag": EXPORT_KEY, "quantity": 1}],
                }
            ]
        },
    )


async def test_reservation_with_the_export_key_enables_the_feature(
    admin: Api, server: TestServer, tmp_path: Path, state_dir: Path
) -> None:
    await setup_acme(admin, keys=1)
    product = new_product(tmp_path, state_dir, "SLREXP1")
    product.enable()
    agent = Agent(product.dir.path)
    exports = ExportControl(agent)
    with pytest.raises(ExportUnavailable, match="specific license reservation"):
        await exports.request(FEATURE)
    status, body = await reserve_export_key(admin, product.request())
    assert status == 200, body
    product.install(body["authorizationCodes"][0]["authorizationCode"])
    assert exports.features() == {FEATURE: "reservation"}
    assert (await export_position(admin))["reserved"] == 1
    product.give_back()
    assert exports.features() == {}


async def test_an_account_not_allowed_cannot_reserve_an_export_key(
    admin: Api, tmp_path: Path, state_dir: Path
) -> None:
    await setup_acme(admin, keys=0, allowed=False)
    product = new_product(tmp_path, state_dir, "SLREXP2")
    product.enable()
    status, body = await reserve_export_key(admin, product.request())
    assert status == 403, body
    assert body["type"].endswith(":export-account-not-allowed")
    assert body["field"] == "reservationRequests[0].licenses[0].entitlementTag"


# --- the command lines --------------------------------------------------------------------


async def test_agent_and_host_command_lines(
    admin: Api, server: TestServer, tmp_path: Path, db_dsn: str, state_dir: Path
) -> None:
    await setup_acme(admin, keys=1)
    token = await new_token(admin)
    agent = AgentCli(tmp_path / "product")
    url = str(server.make_url("")).rstrip("/")
    await agent.ok("init", "--pid", "UCM", "--serial", "CLIEXP1", "--url", url)
    code, out, err = await agent("license", "smart", "export", "request", "local", FEATURE)
    assert code != 0
    assert err.startswith("error: export-controlled features are not available in evaluation")
    assert err.count("\n") == 1

    await agent.ok("register", token)
    out = await agent.ok("license", "smart", "export", "request", "local", FEATURE)
    assert f"export authorization key for {FEATURE} installed" in out
    status = json.loads(await agent.ok("status", "--json"))
    assert status["exportControlled"] is True
    assert status["exportControl"]["features"] == {FEATURE: "export key"}

    cli = Cli(_toml_config(tmp_path / "satellite.toml", state_dir, db_dsn), tmp_path)
    listed, positions, missing = cli.many(
        ["export", "list", "Acme", "Voice", "--json"],
        ["license", "list", "Acme", "--json"],
        ["export", "list", "Acme", "NoSuchVa"],
    )
    [key] = listed.json()["exportKeys"]
    assert (key["feature"], key["status"], key["sudi"]["udiSerialNumber"]) == (
        FEATURE,
        "Granted",
        "CLIEXP1",
    )
    [position] = [p for p in positions.json()["licenses"] if p["entitlementTag"] == EXPORT_KEY]
    assert (position["exportKeys"], position["inUse"], position["available"]) == (1, 1, 0)
    assert "NoSuchVa" in missing.one_error_line()

    code, _, err = await agent("license", "smart", "export", "cancel")
    assert code != 0
    assert "no export request or return is pending" in err
    await agent.ok("deregister")
    out = await agent.ok("status")
    assert f"export-controlled features: {FEATURE} (export key (released: alarm))" in out
    assert "alarm SmartLicenseExportControlNotAllowed: deregistered" in out
    out = await agent.ok("license", "smart", "export", "return", "local", FEATURE)
    assert "returned and removed" in out
    history = cli("export", "list", "Acme", "Voice", "--all").ok().out.splitlines()
    assert len(history) == 2
    assert "released" in history[1]
    assert "deregistered" in history[1]


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
