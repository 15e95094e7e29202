"""Export-controlled features end to end: the real agent against the real daemon (grant,
every refusal, retry and cancel, return, the deregistration alarm), and the signed export key
checked by the agent."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from pathlib import Path

import asyncpg
import msgspec
import pytest
import structlog
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import ec

from satellite.crypto.keys import KeyPaths, load_server_keys
from satellite_agent.client import Agent, AgentError, RequestRefused
from satellite_agent.export import ExportControl, ExportUnavailable
from satellite_agent.runner import Runner, Schedule
from satellite_agent.state import Alarm
from satellite_protocol import device as wire
from satellite_protocol.crypto import jose
from tests.conftest import ENHANCED, Api
from tests.helpers.api import (
    ACCOUNT,
    EXPORT_KEY,
    FEATURE,
    VOICE,
    new_agent,
    new_token,
)
from tests.helpers.export import (
    add_keys,
    closed_port_url,
    export_position,
    grants,
    refusal,
    registered,
    setup_acme,
)

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
