"""Sync between a satellite and its upstream: two real daemons, each with its own database.

The upstream runs on a real TCP port of 127.0.0.1 with role "upstream"; the satellite is
the usual test daemon. The satellite's side is driven through its services (what the CLI
does) and its admin API; products are real agents.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from aiohttp.test_utils import TestServer

from satellite.agent.client import RequestRefused
from satellite.agent.export import ExportControl
from satellite.api.context import Services
from satellite.config import DatabaseSettings, Settings, SyncSettings
from satellite.domain.access import Principal, host_operator
from satellite.errors import Conflict, NotFound, PayloadTooLarge
from satellite.wiring import Runtime, create_app, load_runtime, open_services
from sync.bundle import BundleError, RegistrationRequest, SyncRequest
from sync.satellite import SatelliteSync
from sync.transport import UpstreamRefused, UpstreamUnreachable
from sync.upstream import Answered
from tests.conftest import (
    ENHANCED,
    FLEX_ENHANCED,
    AiohttpClient,
    Api,
    Credentials,
    clone_database,
    lock_waiters,
    login,
    new_client,
)
from tests.helpers.api import base_url, new_agent, new_product

OPERATOR = host_operator("pytest")
UP_ACCOUNT = "/api/v1/accounts/Acme"
SITE = "/api/v1/accounts/Site"


# --- two daemons ---------------------------------------------------------------------------


def sync_settings(tmp_path: Path, **changes: Any) -> SyncSettings:
    values: dict[str, Any] = {
        "attempts": 2,
        "retry_backoff_seconds": 0.0,
        "timeout_seconds": 30.0,
        "connect_timeout_seconds": 5.0,
        "spool_dir": str(tmp_path / "spool"),
        **changes,
    }
    return SyncSettings(**values)


@pytest.fixture
def settings(state_dir: Path, db_dsn: str, tmp_path: Path) -> Settings:
    """The satellite's settings: retries without waiting, bundles in the test's directory."""
    return Settings(
        state_dir=str(state_dir),
        listen=["127.0.0.1:0"],
        database=DatabaseSettings(dsn=db_dsn, pool_min_size=1, pool_max_size=5),
        sync=sync_settings(tmp_path),
    )


@pytest.fixture
def other_dsn(pg_server: str, template_db: str) -> Iterator[str]:
    """A second satellite's database."""
    yield from clone_database(pg_server, template_db)


@dataclass
class Upstream:
    runtime: Runtime
    services: Services
    server: TestServer
    admin: Api
    db: asyncpg.Connection

    @property
    def url(self) -> str:
        return base_url(self.server)


@pytest.fixture
async def upstream(
    upstream_state_dir: Path, upstream_dsn: str, tmp_path: Path, aiohttp_client: AiohttpClient
) -> AsyncIterator[Upstream]:
    settings = Settings(
        role="upstream",
        state_dir=str(upstream_state_dir),
        listen=["127.0.0.1:0"],
        database=DatabaseSettings(dsn=upstream_dsn, pool_min_size=1, pool_max_size=5),
        sync=sync_settings(tmp_path / "upstream"),
    )
    runtime = load_runtime(settings, upstream_dsn)
    server = TestServer(create_app(runtime), host="127.0.0.1")
    await server.start_server()
    async with open_services(runtime) as services:
        first = await services.principals.bootstrap_client(OPERATOR)
        assert first is not None
        api = await login(
            Api(await aiohttp_client(server)), Credentials(first.client_id, first.client_secret)
        )
        conn = await asyncpg.connect(upstream_dsn)
        up = Upstream(runtime, services, server, api, conn)
        try:
            yield up
        finally:
            await conn.close()
    await up.server.close()  # (a test may have restarted it)


async def ok(call: Any, expected: int = 200) -> Any:
    status, body = await call
    assert status == expected, body
    return body


async def setup_upstream(up: Upstream, enhanced: int = 10, export: bool = False) -> None:
    await ok(
        up.admin.post("/api/v1/accounts", {"name": "Acme", "exportControlledAllowed": export}), 200
    )
    await ok(up.admin.post(UP_ACCOUNT + "/virtual-accounts", {"name": "Voice"}), 200)
    if enhanced:
        await buy(up, enhanced)


async def buy(up: Upstream, quantity: int, va: str = "Voice") -> int:
    line = await ok(
        up.admin.post(
            f"{UP_ACCOUNT}/virtual-accounts/{va}/license-pool",
            {"entitlementTag": ENHANCED, "quantity": quantity},
        ),
        200,
    )
    return int(line["license"]["id"])


async def setup_site(admin: Api) -> None:
    await ok(admin.post("/api/v1/accounts", {"name": "Site"}), 200)
    await ok(admin.post(SITE + "/virtual-accounts", {"name": "Voice"}), 200)


async def satellite_token(up: Upstream) -> str:
    return (await up.services.upstream.create_token(OPERATOR, "Acme", "site", None)).secret


async def register_online(up: Upstream, services: Services) -> str:
    link = await services.sync.register_online(
        OPERATOR, "Site", upstream_url=up.url, token=await satellite_token(up), name="site-1"
    )
    return link.satellite_id


async def pool(admin: Api, base: str, va: str = "Voice") -> list[dict[str, Any]]:
    body = await ok(admin.get(f"{base}/virtual-accounts/{va}/license-pool"))
    lines: list[dict[str, Any]] = body["licenses"]
    return lines


async def in_use(admin: Api, base: str) -> dict[tuple[str, str], int]:
    body = await ok(admin.post(base + "/licenses", {}))
    return {
        (line["virtualAccount"], line["entitlementTag"]): line["inUse"]
        for line in body["licenses"]
        if line["inUse"]
    }


async def satellite_products(db: asyncpg.Connection, account: str = "Site") -> set[tuple[Any, ...]]:
    rows = await db.fetch(
        "SELECT p.id::text, va.name, p.udi_pid, p.udi_serial, p.status, p.export_controlled "
        "FROM product_instances p JOIN virtual_accounts va ON va.id = p.virtual_account_id "
        "WHERE va.account_id = (SELECT id FROM accounts WHERE name = $1)",
        account,
    )
    return {tuple(r) for r in rows}


async def mirrored_products(up: Upstream, satellite_id: str) -> set[tuple[Any, ...]]:
    rows = await up.db.fetch(
        "SELECT p.product_id::text, va.name, p.udi_pid, p.udi_serial, p.status, "
        "p.export_controlled FROM satellite_products p "
        "JOIN virtual_accounts va ON va.id = p.virtual_account_id WHERE p.satellite_id = $1",
        satellite_id,
    )
    return {tuple(r) for r in rows}


async def answer_file(
    up: Upstream, request: Path, out: Path, principal: Principal | None
) -> Answered:
    """What ``satellite sync answer --in REQUEST --out ANSWER`` does at the upstream."""
    answered, data = await up.services.upstream.answer(request, principal)
    await asyncio.to_thread(out.write_bytes, data)
    return answered


async def site_token(admin: Api) -> str:
    body = await ok(admin.post(SITE + "/virtual-accounts/Voice/tokens", {}), 200)
    token: str = body["tokenInfo"]["token"]
    return token


# --- connected mode ------------------------------------------------------------------------


async def test_connected_cycle_brings_pools_down_and_products_up(
    upstream: Upstream,
    admin: Api,
    services: Services,
    server: TestServer,
    db: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    await setup_upstream(upstream, enhanced=10)
    await setup_site(admin)
    added = await ok(
        admin.post(
            SITE + "/virtual-accounts/Voice/license-pool",
            {"entitlementTag": ENHANCED, "quantity": 2},
        ),
        200,
    )
    local_line = added["license"]
    satellite_id = await register_online(upstream, services)

    # Products register and report at the satellite.
    token = await site_token(admin)
    agents = [new_agent(tmp_path, server, f"FCH{n:04d}") for n in range(3)]
    for n, agent in enumerate(agents):
        await agent.register(token)
        await agent.report_usage({ENHANCED: n + 1})

    result = await services.sync.sync_now(OPERATOR, "Site")
    assert not result.repeated
    assert result.counts["added"] == 1

    # Pools: the upstream's line arrived, read-only; the local line is still there.
    lines = {line["id"]: line for line in await pool(admin, SITE)}
    upstream_lines = [line for line in lines.values() if line["source"] == "upstream"]
    assert [line["quantity"] for line in upstream_lines] == [10]
    assert lines[local_line["id"]]["quantity"] == 2
    status, problem = await admin.post(
        f"{SITE}/virtual-accounts/Voice/license-pool/{upstream_lines[0]['id']}/update",
        {"entitlementTag": ENHANCED, "quantity": 99},
    )
    assert status == 409
    assert "upstream" in problem["detail"]
    await ok(
        admin.post(
            f"{SITE}/virtual-accounts/Voice/license-pool/{local_line['id']}/update",
            {"entitlementTag": ENHANCED, "quantity": 3},
        )
    )

    # Products and usage: the upstream's view equals the satellite's.
    assert await mirrored_products(upstream, satellite_id) == await satellite_products(db)
    assert (
        await in_use(upstream.admin, UP_ACCOUNT)
        == await in_use(admin, SITE)
        == {("Voice", ENHANCED): 6}
    )

    # A change at each end: the next sync carries it.
    await agents[0].deregister()
    await buy(upstream, 5)
    result = await services.sync.sync_now(OPERATOR, "Site")
    assert result.counts["added"] == 1
    assert sorted(x["quantity"] for x in await pool(admin, SITE)) == [3, 5, 10]
    assert await mirrored_products(upstream, satellite_id) == await satellite_products(db)
    assert await in_use(upstream.admin, UP_ACCOUNT) == {("Voice", ENHANCED): 5}

    # Only what changed travels: nothing changed, no product is sent.
    assert (await services.sync.sync_now(OPERATOR, "Site")).counts == {
        "added": 0,
        "changed": 0,
        "removed": 0,
        "virtualAccountsCreated": 0,
    }
    answered = await upstream.db.fetchval(
        "SELECT details->>'products' FROM events WHERE action = 'satellite.synced' "
        "ORDER BY id DESC LIMIT 1"
    )
    assert answered == "0"

    status_body = await ok(admin.get(SITE + "/sync"))
    assert status_body["registered"]
    assert status_body["mode"] == "connected"
    assert status_body["appliedSequence"] == status_body["requestSequence"] == 3
    assert status_body["lastError"] is None
    assert [h["outcome"] for h in status_body["history"]] == ["success"] * 3


async def test_a_purchase_at_the_upstream_reaches_a_products_authorization(
    upstream: Upstream, admin: Api, services: Services, server: TestServer, tmp_path: Path
) -> None:
    await setup_upstream(upstream, enhanced=0)
    await setup_site(admin)
    await register_online(upstream, services)
    agent = new_agent(tmp_path, server)
    await agent.register(await site_token(admin))
    state = await agent.report_usage({ENHANCED: 4})
    assert state.authorization is not None
    assert state.authorization["state"] == "OUT_OF_COMPLIANCE"

    await buy(upstream, 4)
    await ok(admin.post(SITE + "/sync/now", {}))
    state = await agent.report_usage({ENHANCED: 4})
    assert state.authorization is not None
    assert state.authorization["state"] == "AUTHORIZED"


async def test_the_sync_carries_version_independent_subscription_lines(
    upstream: Upstream, admin: Api, services: Services, server: TestServer, tmp_path: Path
) -> None:
    """A Flex subscription bought at the upstream reaches the satellite with its term and
    covers a product's version-specific tag there."""
    today = dt.datetime.now(dt.UTC).date()
    start, end = today - dt.timedelta(days=5), today + dt.timedelta(days=360)
    await setup_upstream(upstream, enhanced=1)
    await ok(
        upstream.admin.post(
            UP_ACCOUNT + "/virtual-accounts/Voice/license-pool",
            {
                "entitlementTag": FLEX_ENHANCED,
                "quantity": 3,
                "licenseType": "SUBSCRIPTION",
                "startDate": start.isoformat(),
                "endDate": end.isoformat(),
                "subscriptionId": "Flex-NU-1",
            },
        ),
        200,
    )
    await setup_site(admin)
    await register_online(upstream, services)
    await ok(admin.post(SITE + "/sync/now", {}))
    carried = [line for line in await pool(admin, SITE) if line["entitlementTag"] == FLEX_ENHANCED]
    assert [
        (x["licenseType"], x["startDate"], x["endDate"], x["subscriptionId"], x["source"])
        for x in carried
    ] == [("SUBSCRIPTION", start.isoformat(), end.isoformat(), "Flex-NU-1", "upstream")]

    agent = new_agent(tmp_path, server)
    await agent.register(await site_token(admin))
    state = await agent.report_usage({ENHANCED: 3})
    assert state.authorization is not None
    assert state.authorization["state"] == "AUTHORIZED"
    view = await ok(admin.post(SITE + "/licenses", {}))
    by_tag = {line["entitlementTag"]: line for line in view["licenses"]}
    assert [
        (x["entitlementTag"], x["quantity"], x["direction"])
        for x in by_tag[ENHANCED]["licenseSubstitutions"]
    ] == [(FLEX_ENHANCED, 2, "borrowed")]
    assert by_tag[FLEX_ENHANCED]["available"] == 1


async def test_the_same_request_twice_gets_the_same_answer_and_changes_nothing(
    upstream: Upstream, admin: Api, services: Services, tmp_path: Path
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    await register_online(upstream, services)
    request = tmp_path / "request.bundle"
    await services.sync.export_request(OPERATOR, "Site", request)
    first, again = tmp_path / "a1.bundle", tmp_path / "a2.bundle"
    answered = await answer_file(upstream, request, first, OPERATOR)
    assert not answered.repeated
    before = await upstream.db.fetch("SELECT * FROM satellites")
    events = await upstream.db.fetchval("SELECT count(*) FROM events")
    answered = await answer_file(upstream, request, again, OPERATOR)
    assert answered.repeated
    assert first.read_bytes() == again.read_bytes()
    assert await upstream.db.fetch("SELECT * FROM satellites") == before
    assert await upstream.db.fetchval("SELECT count(*) FROM events") == events

    # And at the satellite: the same answer imported twice applies once.
    assert not (await services.sync.import_answer(OPERATOR, first)).repeated
    lines = await pool(admin, SITE)
    assert (await services.sync.import_answer(OPERATOR, again)).repeated
    assert await pool(admin, SITE) == lines


async def test_replayed_old_bundles_are_refused_at_both_ends(
    upstream: Upstream, admin: Api, services: Services, tmp_path: Path
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    await register_online(upstream, services)
    old_request, old_answer = tmp_path / "r1", tmp_path / "a1"
    await services.sync.export_request(OPERATOR, "Site", old_request)
    await answer_file(upstream, old_request, old_answer, OPERATOR)
    await services.sync.import_answer(OPERATOR, old_answer)
    await services.sync.sync_now(OPERATOR, "Site")  # request 2, answered and applied

    with pytest.raises(Conflict, match="stale request: this is request 1"):
        await answer_file(upstream, old_request, tmp_path / "x", OPERATOR)
    await buy(upstream, 7)
    await services.sync.sync_now(OPERATOR, "Site")
    lines = await pool(admin, SITE)
    with pytest.raises(Conflict, match="stale answer: it answers request 1"):
        await services.sync.import_answer(OPERATOR, old_answer)
    assert await pool(admin, SITE) == lines  # the purchase stays


async def test_a_bundle_for_another_satellite_is_refused(
    upstream: Upstream,
    admin: Api,
    services: Services,
    tmp_path: Path,
    other_dsn: str,
    state_dir: Path,
) -> None:
    """Two satellites of one upstream: neither can apply what is meant for the other."""
    await setup_upstream(upstream)
    await setup_site(admin)
    await register_online(upstream, services)
    other = load_runtime(
        Settings(
            state_dir=str(state_dir),
            database=DatabaseSettings(dsn=other_dsn, pool_min_size=1, pool_max_size=2),
            sync=sync_settings(tmp_path / "other"),
        ),
        other_dsn,
    )
    async with open_services(other) as other_services:
        await other_services.accounts.create_account(OPERATOR, "Site", "", False)
        await other_services.sync.register_online(
            OPERATOR,
            "Site",
            upstream_url=upstream.url,
            token=await satellite_token(upstream),
            name="site-2",
        )
        theirs_request, theirs_answer = tmp_path / "r-other", tmp_path / "a-other"
        await other_services.sync.export_request(OPERATOR, "Site", theirs_request)
        await answer_file(upstream, theirs_request, theirs_answer, OPERATOR)
    with pytest.raises(BundleError, match="not for this satellite"):
        await services.sync.import_answer(OPERATOR, theirs_answer)

    # A request signed by the other satellite, claiming to be this one: altered.
    ours = tmp_path / "r-ours"
    await services.sync.export_request(OPERATOR, "Site", ours)
    our_id = (await services.sync.status(OPERATOR, "Site")).link.satellite_id  # type: ignore[union-attr]
    forged = theirs_request.read_bytes().replace(
        theirs_request.read_bytes().split(b'"satelliteId":"')[1].split(b'"')[0],
        our_id.encode(),
        1,
    )
    forged_path = tmp_path / "forged"
    forged_path.write_bytes(forged)
    with pytest.raises(BundleError, match="signature does not verify"):
        await answer_file(upstream, forged_path, tmp_path / "x", None)


@pytest.mark.parametrize("where", ["request", "answer"])
async def test_a_flipped_byte_is_refused_and_changes_nothing(
    upstream: Upstream, admin: Api, services: Services, tmp_path: Path, where: str
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    satellite_id = await register_online(upstream, services)
    request, answer = tmp_path / "request", tmp_path / "answer"
    await services.sync.export_request(OPERATOR, "Site", request)
    target = request
    if where == "answer":
        await answer_file(upstream, request, answer, OPERATOR)
        target = answer
    data = bytearray(target.read_bytes())
    position = data.index(b'"Voice"') + 2  # a byte in a record, not the header
    data[position] ^= 0x01
    target.write_bytes(bytes(data))
    before = await pool(admin, SITE)
    mirror = await upstream.db.fetchval(
        "SELECT last_sequence FROM satellites WHERE id = $1", satellite_id
    )
    refused = (
        answer_file(upstream, request, answer, OPERATOR)
        if where == "request"
        else services.sync.import_answer(OPERATOR, answer)
    )
    with pytest.raises(BundleError, match="signature does not verify"):
        await refused
    assert await pool(admin, SITE) == before == []
    assert (
        await upstream.db.fetchval(
            "SELECT last_sequence FROM satellites WHERE id = $1", satellite_id
        )
        == mirror
    )


async def test_upstream_down_shows_the_error_and_the_next_run_succeeds(
    upstream: Upstream, admin: Api, services: Services
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    await register_online(upstream, services)
    port = upstream.server.port
    await upstream.server.close()

    with pytest.raises(UpstreamUnreachable, match="cannot reach the upstream"):
        await services.sync.sync_now(OPERATOR, "Site")
    status = await ok(admin.get(SITE + "/sync"))
    assert "cannot reach the upstream" in status["lastError"]
    assert status["appliedSequence"] == 0
    assert status["lastSuccess"] is None
    assert status["history"][0]["outcome"] == "failure"
    assert await pool(admin, SITE) == []
    alerts = await ok(admin.post(SITE + "/alerts", {}))
    assert [a["messageType"] for a in alerts["alerts"]] == ["SyncFailed"]

    # Back on the same port.
    upstream.server = TestServer(create_app(upstream.runtime), host="127.0.0.1", port=port)
    await upstream.server.start_server()
    report = await services.sync.run_scheduled()
    assert report.counts == {"synced": 1, "failed": 0, "skipped": 0}
    status = await ok(admin.get(SITE + "/sync"))
    assert status["lastError"] is None
    assert status["lastSuccess"] is not None
    assert status["nextRun"] is not None
    assert [x["quantity"] for x in await pool(admin, SITE)] == [10]
    alerts = await ok(admin.post(SITE + "/alerts", {}))
    assert alerts["alerts"] == []


async def test_one_sync_of_an_account_at_a_time_across_nodes(
    upstream: Upstream, admin: Api, services: Services, runtime: Runtime
) -> None:
    """Two nodes on one database: their scheduled runs sync the account once an interval,
    whether they fire at once or one after the other."""
    await setup_upstream(upstream)
    await setup_site(admin)
    await register_online(upstream, services)
    async with open_services(runtime) as second_node:
        reports = await asyncio.gather(
            services.sync.run_scheduled(), second_node.sync.run_scheduled()
        )
        later = await second_node.sync.run_scheduled()  # this interval's run is done
    counts = sorted((r.counts["synced"], r.counts["skipped"]) for r in reports)
    assert counts == [(0, 1), (1, 0)]
    assert later.counts == {"synced": 0, "failed": 0, "skipped": 1}
    assert await upstream.db.fetchval("SELECT last_sequence FROM satellites") == 1


# --- disconnected mode ---------------------------------------------------------------------


async def test_registration_and_sync_by_files(
    upstream: Upstream, admin: Api, services: Services, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_upstream(upstream, enhanced=3, export=True)
    await setup_site(admin)
    token = await satellite_token(upstream)
    request, answer = tmp_path / "reg-request", tmp_path / "reg-answer"
    await services.sync.request_registration(
        OPERATOR, "Site", token=token, name="dark-site", upstream_url=None, out=request
    )
    status = await services.sync.status(OPERATOR, "Site")
    assert status.link is None
    assert status.pending_registration
    answered = await answer_file(upstream, request, answer, OPERATOR)
    assert answered.kind == "registration"
    # The same registration request again: the same answer (the token was spent once).
    again = tmp_path / "reg-answer-2"
    assert (await answer_file(upstream, request, again, OPERATOR)).repeated
    link = await services.sync.complete_registration(OPERATOR, "Site", answer)
    assert link.mode == "disconnected"
    assert link.upstream_account == "Acme"
    with pytest.raises(Conflict, match="disconnected mode"):
        await services.sync.sync_now(OPERATOR, "Site")

    # The cycle through the admin APIs, as the web console would do it.
    async with admin.client.get(SITE + "/sync/request", headers=admin._headers()) as response:
        assert response.status == 200, await response.text()
        assert "attachment" in response.headers["Content-Disposition"]
        request_bytes = await response.read()
    async with upstream.admin.client.post(
        "/api/v1/sync/answer", data=request_bytes, headers=upstream.admin._headers()
    ) as response:
        assert response.status == 200, await response.text()
        answer_bytes = await response.read()
    result = await ok(admin.post(SITE + "/sync/answer", raw=answer_bytes))
    assert result["counts"]["added"] == 1
    assert result["counts"]["flagsChanged"] == 1
    assert [x["quantity"] for x in await pool(admin, SITE)] == [3]
    assert await db.fetchval("SELECT export_controlled_allowed FROM accounts WHERE name = 'Site'")
    status_body = await ok(admin.get(SITE + "/sync"))
    assert status_body["mode"] == "disconnected"
    assert [h["operation"] for h in status_body["history"]] == ["import", "export"]


async def test_an_answer_to_another_registration_request_is_refused(
    upstream: Upstream, admin: Api, services: Services, tmp_path: Path
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    first, answer = tmp_path / "first", tmp_path / "answer"
    await services.sync.request_registration(
        OPERATOR,
        "Site",
        token=await satellite_token(upstream),
        name="a",
        upstream_url=None,
        out=first,
    )
    await answer_file(upstream, first, answer, OPERATOR)
    await services.sync.request_registration(  # a newer request replaces the first
        OPERATOR,
        "Site",
        token=await satellite_token(upstream),
        name="a",
        upstream_url=None,
        out=tmp_path / "second",
    )
    with pytest.raises(BundleError, match="another registration request"):
        await services.sync.complete_registration(OPERATOR, "Site", answer)
    assert (await services.sync.status(OPERATOR, "Site")).link is None


async def test_a_spent_or_unknown_satellite_token_is_refused(
    upstream: Upstream, admin: Api, services: Services
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    with pytest.raises(UpstreamRefused, match="satellite token is not known here"):
        await services.sync.register_online(
            OPERATOR, "Site", upstream_url=upstream.url, token="sat-nonsense", name="x"
        )
    assert (await services.sync.status(OPERATOR, "Site")).link is None


# --- the authorization horizon -------------------------------------------------------------


async def test_no_new_authorizations_beyond_the_horizon(
    upstream: Upstream,
    admin: Api,
    services: Services,
    server: TestServer,
    tmp_path: Path,
    db: asyncpg.Connection,
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    await register_online(upstream, services)
    await services.sync.sync_now(OPERATOR, "Site")
    agent = new_agent(tmp_path, server)
    await agent.register(await site_token(admin))

    # 80 days without a sync: a warning, authorizations still granted.
    await db.execute("UPDATE sync_links SET last_success_at = now() - interval '80 days'")
    report = await services.sync.horizon_alerts(dt.datetime.now(dt.UTC))
    assert report is not None
    assert report.counts["raised"] == 1
    alerts = await ok(admin.post(SITE + "/alerts", {}))
    assert [a["messageType"] for a in alerts["alerts"]] == ["SyncOverdue"]
    await agent.renew_authorization()

    # 91 days: refused, and the answer says why.
    await db.execute("UPDATE sync_links SET last_success_at = now() - interval '91 days'")
    with pytest.raises(RequestRefused, match="has not synced with its upstream since"):
        await agent.renew_authorization()
    other = new_agent(tmp_path, server, "FCH0099")
    with pytest.raises(RequestRefused, match="grants no new authorizations"):
        await other.register(await site_token(admin))
    await services.sync.horizon_alerts(dt.datetime.now(dt.UTC))
    alerts = await ok(admin.post(SITE + "/alerts", {}))
    assert [a["messageType"] for a in alerts["alerts"]] == ["SyncHorizonPassed"]

    # A sync puts it back in step.
    await services.sync.sync_now(OPERATOR, "Site")
    await agent.renew_authorization()
    await services.sync.horizon_alerts(dt.datetime.now(dt.UTC))
    assert (await ok(admin.post(SITE + "/alerts", {})))["alerts"] == []


# --- through a proxy -----------------------------------------------------------------------


def proxied(services: Services, runtime: Runtime, tmp_path: Path, **proxy: Any) -> SatelliteSync:
    """The satellite's sync service as a daemon configured with ``[sync] proxy_*`` has it."""
    settings = msgspec.structs.replace(
        runtime.settings, sync=sync_settings(tmp_path, attempts=1, **proxy)
    )
    return SatelliteSync(services.db, runtime.keys, services.licenses, settings)


async def test_sync_through_a_proxy_without_credentials(
    upstream: Upstream,
    admin: Api,
    services: Services,
    runtime: Runtime,
    tmp_path: Path,
    open_proxy: int,
) -> None:
    await setup_upstream(upstream, enhanced=6)
    await setup_site(admin)
    sync = proxied(services, runtime, tmp_path, proxy_url=f"http://127.0.0.1:{open_proxy}")
    await sync.register_online(
        OPERATOR, "Site", upstream_url=upstream.url, token=await satellite_token(upstream), name="p"
    )
    await sync.sync_now(OPERATOR, "Site")
    assert [x["quantity"] for x in await pool(admin, SITE)] == [6]
    # (The setting is used: with no proxy where it points, there is no way through.)
    nowhere = proxied(services, runtime, tmp_path, proxy_url="http://127.0.0.1:9")
    with pytest.raises(UpstreamUnreachable):
        await nowhere.sync_now(OPERATOR, "Site")


async def test_sync_through_a_proxy_with_basic_credentials(
    upstream: Upstream,
    admin: Api,
    services: Services,
    runtime: Runtime,
    tmp_path: Path,
    auth_proxy: int,
) -> None:
    await setup_upstream(upstream, enhanced=6)
    await setup_site(admin)
    await register_online(upstream, services)  # directly
    proxy_url = f"http://127.0.0.1:{auth_proxy}"

    # Without credentials, and with a wrong password: the proxy says no, the status says why.
    for credentials in ({}, {"proxy_username": "product", "proxy_password_file": "wrong"}):
        if credentials:
            (tmp_path / "wrong").write_text("guess\n")
            credentials["proxy_password_file"] = str(tmp_path / "wrong")
        sync = proxied(services, runtime, tmp_path, proxy_url=proxy_url, **credentials)
        with pytest.raises(UpstreamRefused, match="407"):
            await sync.sync_now(OPERATOR, "Site")
    status = await ok(admin.get(SITE + "/sync"))
    assert "407" in status["lastError"]
    assert status["appliedSequence"] == 0
    assert await pool(admin, SITE) == []

    (tmp_path / "password").write_text("s3cret\n")
    sync = proxied(
        services,
        runtime,
        tmp_path,
        proxy_url=proxy_url,
        proxy_username="product",
        proxy_password_file=str(tmp_path / "password"),
    )
    await sync.sync_now(OPERATOR, "Site")
    assert [x["quantity"] for x in await pool(admin, SITE)] == [6]
    assert (await ok(admin.get(SITE + "/sync")))["lastError"] is None


async def test_sync_through_an_https_proxy(
    upstream: Upstream,
    admin: Api,
    services: Services,
    runtime: Runtime,
    tmp_path: Path,
    tls_proxy: tuple[int, Path],
) -> None:
    """The proxy speaks TLS; its certificate is checked against sync.ca_file."""
    port, ca = tls_proxy
    await setup_upstream(upstream, enhanced=6)
    await setup_site(admin)
    await register_online(upstream, services)
    (tmp_path / "password").write_text("s3cret\n")
    proxy = {
        "proxy_url": f"https://127.0.0.1:{port}",
        "proxy_username": "product",
        "proxy_password_file": str(tmp_path / "password"),
    }
    untrusted = proxied(services, runtime, tmp_path, **proxy)
    with pytest.raises(UpstreamUnreachable, match="certificate"):
        await untrusted.sync_now(OPERATOR, "Site")
    trusted = proxied(services, runtime, tmp_path, ca_file=str(ca), **proxy)
    await trusted.sync_now(OPERATOR, "Site")
    assert [x["quantity"] for x in await pool(admin, SITE)] == [6]


async def test_the_upstream_serves_products_directly_and_counts_its_satellites_too(
    upstream: Upstream, admin: Api, services: Services, server: TestServer, tmp_path: Path
) -> None:
    """ "Direct" transport: a product registers with the upstream itself; the upstream's pool
    then counts its own products and what its satellites report."""
    await setup_upstream(upstream, enhanced=10)
    await setup_site(admin)
    await register_online(upstream, services)
    at_site = new_agent(tmp_path / "site", server)
    await at_site.register(await site_token(admin))
    await at_site.report_usage({ENHANCED: 3})
    await services.sync.sync_now(OPERATOR, "Site")

    body = await ok(upstream.admin.post(UP_ACCOUNT + "/virtual-accounts/Voice/tokens", {}), 200)
    direct = new_agent(tmp_path / "direct", upstream.server, "FCH0042")
    await direct.register(body["tokenInfo"]["token"])
    state = await direct.report_usage({ENHANCED: 8})
    assert state.authorization is not None
    assert state.authorization["state"] == "OUT_OF_COMPLIANCE"  # 3 + 8 > 10
    licenses = await ok(upstream.admin.post(UP_ACCOUNT + "/licenses", {}))
    [line] = licenses["licenses"]
    assert (line["inUse"], line["status"]) == (11, "Out Of Compliance")


async def test_a_license_transfer_at_the_upstream_reaches_the_satellite_with_the_next_sync(
    upstream: Upstream, admin: Api, services: Services, server: TestServer, tmp_path: Path
) -> None:
    await setup_upstream(upstream, enhanced=0)
    await ok(upstream.admin.post(UP_ACCOUNT + "/virtual-accounts", {"name": "Lab"}), 200)
    end = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=300)).isoformat()
    term = {"licenseType": "TERM", "endDate": end, "subscriptionId": "Sub-9"}
    await ok(
        upstream.admin.post(
            UP_ACCOUNT + "/virtual-accounts/Voice/license-pool",
            {"entitlementTag": ENHANCED, "quantity": 10, **term},
        ),
        200,
    )
    await setup_site(admin)
    await register_online(upstream, services)
    agent = new_agent(tmp_path, server)
    await agent.register(await site_token(admin))
    await agent.report_usage({ENHANCED: 7})
    await services.sync.sync_now(OPERATOR, "Site")

    def transfer(quantity: int) -> dict[str, Any]:
        line = {"license": ENHANCED, "quantity": quantity, "targetVirtualAccount": "Lab"}
        return {"sourceVirtualAccount": "Voice", "licenses": [line]}

    # The satellite's lines are the upstream's: moved there, not here.
    status, problem = await admin.post(SITE + "/licenses/transfer", transfer(1))
    assert status == 409, problem
    assert "upstream" in problem["detail"]
    # At the upstream, what the satellite's products use is not free.
    status, problem = await upstream.admin.post(UP_ACCOUNT + "/licenses/transfer", transfer(4))
    assert status == 409, problem
    assert "4 asked, 3 free" in problem["detail"]
    await ok(upstream.admin.post(UP_ACCOUNT + "/licenses/transfer", transfer(3)))

    result = await services.sync.sync_now(OPERATOR, "Site")
    assert (result.counts["added"], result.counts["changed"]) == (1, 1)

    def lines(got: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [
            (x["quantity"], x["licenseType"], x["endDate"], x["subscriptionId"], x["source"])
            for x in got
        ]

    assert lines(await pool(admin, SITE)) == [(7, "TERM", end, "Sub-9", "upstream")]
    assert lines(await pool(admin, SITE, "Lab")) == [(3, "TERM", end, "Sub-9", "upstream")]
    state = await agent.report_usage({ENHANCED: 7})
    assert state.authorization is not None
    assert state.authorization["state"] == "AUTHORIZED"


async def test_horizon_alerts_from_two_nodes_are_raised_once(
    upstream: Upstream, admin: Api, services: Services, runtime: Runtime, db: asyncpg.Connection
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    await register_online(upstream, services)
    await db.execute("UPDATE sync_links SET registered_at = now() - interval '100 days'")
    async with open_services(runtime) as second_node:
        reports = await asyncio.gather(
            *(
                node.sync.horizon_alerts(dt.datetime.now(dt.UTC))
                for node in (services, second_node, services, second_node)
            )
        )
    assert sum(r.counts["raised"] for r in reports if r is not None) == 1
    assert await db.fetchval("SELECT count(*) FROM alerts WHERE source = 'sync'") == 1


# --- export keys and reservations travel too ------------------------------------------------

EXPORT_KEY = "regid.2019-03.com.cisco.UCM_ExportKey_12.0_d1e6b8a3-4f2c-4b7d-9e31-6a5c0f7b2d48"


async def test_export_keys_and_reservations_reach_the_upstream(
    upstream: Upstream,
    admin: Api,
    services: Services,
    server: TestServer,
    state_dir: Path,
    tmp_path: Path,
    db: asyncpg.Connection,
) -> None:
    await setup_upstream(upstream, enhanced=10, export=True)
    keys_line = await ok(
        upstream.admin.post(
            UP_ACCOUNT + "/virtual-accounts/Voice/license-pool",
            {"entitlementTag": EXPORT_KEY, "quantity": 2},
        ),
        200,
    )
    await setup_site(admin)
    satellite_id = await register_online(upstream, services)
    await services.sync.sync_now(OPERATOR, "Site")  # the flag and the keys' pool arrive
    assert await db.fetchval("SELECT export_controlled_allowed FROM accounts WHERE name = 'Site'")

    agent = new_agent(tmp_path, server)
    await agent.register(await site_token(admin))  # an export-allowed token by default
    await agent.report_usage({ENHANCED: 2})
    await ExportControl(agent).request("UCM_Encryption")
    reserved = new_product(tmp_path, state_dir, "SLR-1")
    reserved.enable()
    await ok(
        admin.post(
            SITE + "/virtual-accounts/Voice/reserve-licenses",
            {
                "reservationRequests": [
                    {
                        "reservationCode": reserved.request(),
                        "licenses": [{"entitlementTag": ENHANCED, "quantity": 3}],
                    }
                ]
            },
        )
    )
    await services.sync.sync_now(OPERATOR, "Site")

    mirror = await ok(
        upstream.admin.get(f"{UP_ACCOUNT}/satellites/{satellite_id}/products?limit=100")
    )
    by_serial = {p["sudi"]["udiSerialNumber"]: p for p in mirror["products"]}
    assert by_serial["FCH0001"]["exportKeys"] == ["UCM_Encryption"]
    assert by_serial["SLR-1"]["reservation"]["reserved"] == [
        {
            "tag": ENHANCED,
            "quantity": 3,
            "licenseType": "PERPETUAL",
            "endDate": None,
            "stage": "pending",  # until the product's confirmation code is entered
        }
    ]
    usage = {
        (u["entitlementTag"], u["inUse"], u["reserved"], u["exportKeys"]) for u in mirror["usage"]
    }
    assert usage == {(ENHANCED, 2, 3, 0), (EXPORT_KEY, 0, 0, 1)}
    # The upstream counts all the satellite takes of its pool.
    up = {k: v for k, v in (await in_use(upstream.admin, UP_ACCOUNT)).items()}
    assert up == {("Voice", ENHANCED): 5, ("Voice", EXPORT_KEY): 1}

    # The key given back: the next sync says so.
    await ExportControl(agent).give_back("UCM_Encryption")
    await services.sync.sync_now(OPERATOR, "Site")
    mirror = await ok(
        upstream.admin.get(f"{UP_ACCOUNT}/satellites/{satellite_id}/products?limit=100")
    )
    assert {p["sudi"]["udiSerialNumber"]: p["exportKeys"] for p in mirror["products"]} == {
        "FCH0001": [],
        "SLR-1": [],
    }
    assert await in_use(upstream.admin, UP_ACCOUNT) == {("Voice", ENHANCED): 5}

    # The upstream withdraws export-controlled functionality: the flag follows, and the
    # account is told what it still holds.
    line_id = keys_line["license"]["id"]
    await ok(
        upstream.admin.post(
            f"{UP_ACCOUNT}/virtual-accounts/Voice/license-pool/{line_id}/delete", {}
        )
    )
    await ok(upstream.admin.post(UP_ACCOUNT + "/update", {"exportControlledAllowed": False}))
    await services.sync.sync_now(OPERATOR, "Site")
    assert not await db.fetchval(
        "SELECT export_controlled_allowed FROM accounts WHERE name = 'Site'"
    )
    alerts = await ok(admin.post(SITE + "/alerts", {}))
    assert "ExportControlWithdrawn" in [a["messageType"] for a in alerts["alerts"]]


# --- what leaves the account ---------------------------------------------------------------


async def test_products_that_leave_and_a_deleted_virtual_account_leave_the_upstream(
    upstream: Upstream,
    admin: Api,
    services: Services,
    server: TestServer,
    tmp_path: Path,
    db: asyncpg.Connection,
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    await ok(admin.post(SITE + "/virtual-accounts", {"name": "Lab"}), 200)
    satellite_id = await register_online(upstream, services)
    moving = new_agent(tmp_path, server, "FCH0001")
    await moving.register(await site_token(admin))
    body = await ok(admin.post(SITE + "/virtual-accounts/Lab/tokens", {}), 200)
    lab_token = body["tokenInfo"]
    in_lab = new_agent(tmp_path, server, "FCH0002")
    await in_lab.register(lab_token["token"])
    await services.sync.sync_now(OPERATOR, "Site")
    assert len(await mirrored_products(upstream, satellite_id)) == 2
    assert "Lab" in {
        v["name"]
        for v in (await ok(upstream.admin.get(UP_ACCOUNT + "/virtual-accounts")))["virtualAccounts"]
    }

    # One product moves to another (unlinked) account; the other leaves Lab, and Lab goes.
    await ok(admin.post("/api/v1/accounts", {"name": "Other"}), 200)
    await ok(admin.post("/api/v1/accounts/Other/virtual-accounts", {"name": "Main"}), 200)
    other = await ok(admin.post("/api/v1/accounts/Other/virtual-accounts/Main/tokens", {}), 200)
    await moving.register(other["tokenInfo"]["token"])
    await in_lab.deregister()
    await ok(
        admin.post(SITE + "/virtual-accounts/Lab/tokens/revoke", {"tokens": [lab_token["token"]]})
    )
    await ok(admin.post(SITE + "/virtual-accounts/Lab/delete", {}))

    result = await services.sync.sync_now(OPERATOR, "Site")
    assert result.counts["virtualAccountsCreated"] == 0  # Lab does not come back
    assert (
        await mirrored_products(upstream, satellite_id)
        == await satellite_products(db, "Site")
        == set()
    )
    names = {
        v["name"]
        for v in (await ok(upstream.admin.get(UP_ACCOUNT + "/virtual-accounts")))["virtualAccounts"]
    }
    assert "Lab" not in names
    assert await db.fetchval("SELECT count(*) FROM sync_departures") == 0  # acknowledged


async def test_a_bundle_is_taken_in_only_once_its_header_says_it_may_be(
    upstream: Upstream, admin: Api, services: Services, tmp_path: Path
) -> None:
    """Nothing but the first line of a request from an unknown satellite is read; a
    registration request is small or refused."""
    await setup_upstream(upstream)
    consumed = 0

    async def body(first: bytes, size: int) -> AsyncIterator[bytes]:
        nonlocal consumed
        yield first
        for _ in range(size // 65536):  # (bounded: the size asked for)
            consumed += 65536
            yield b"x" * 65536

    header = SyncRequest(
        satellite_id="5a7e0000-0000-4000-8000-000000000000",
        sequence=1,
        local_account="Site",
        since=0,
        through=1,
        created_at=dt.datetime.now(dt.UTC),
    )
    first = msgspec.json.encode(header) + b"\n"
    with pytest.raises(NotFound, match="not registered here"):
        await upstream.services.upstream.answer_stream(body(first, 50 * 2**20), None)
    assert consumed == 0

    registration = RegistrationRequest(
        name="x", local_account="Site", token="sat-x", public_key="-", created_at=header.created_at
    )
    first = msgspec.json.encode(registration) + b"\n"
    with pytest.raises(PayloadTooLarge):
        await upstream.services.upstream.answer_stream(body(first, 2**20), None)
    assert consumed <= 128 * 1024
    assert list(upstream.services.upstream.spool.path.iterdir()) == []  # nothing left behind


async def test_no_reservation_beyond_the_horizon(
    upstream: Upstream,
    admin: Api,
    services: Services,
    state_dir: Path,
    tmp_path: Path,
    db: asyncpg.Connection,
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    await register_online(upstream, services)
    await services.sync.sync_now(OPERATOR, "Site")
    await db.execute("UPDATE sync_links SET last_success_at = now() - interval '91 days'")
    product = new_product(tmp_path, state_dir, "SLR-9")
    product.enable()
    status, problem = await admin.post(
        SITE + "/virtual-accounts/Voice/reserve-licenses",
        {
            "reservationRequests": [
                {
                    "reservationCode": product.request(),
                    "licenses": [{"entitlementTag": ENHANCED, "quantity": 1}],
                }
            ]
        },
    )
    assert status == 403, problem
    assert problem["type"].endswith(":sync-horizon-passed")
    assert await db.fetchval("SELECT count(*) FROM reservations") == 0


async def test_a_registration_answer_with_another_upstream_key_is_refused(
    upstream: Upstream, admin: Api, services: Services
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    right = upstream.services.upstream.fingerprint()
    with pytest.raises(BundleError, match="does not come from that upstream"):
        await services.sync.register_online(
            OPERATOR,
            "Site",
            upstream_url=upstream.url,
            token=await satellite_token(upstream),
            name="s",
            expected_fingerprint="A" + right[1:] if right[0] != "A" else "B" + right[1:],
        )
    assert (await services.sync.status(OPERATOR, "Site")).link is None
    link = await services.sync.register_online(
        OPERATOR,
        "Site",
        upstream_url=upstream.url,
        token=await satellite_token(upstream),
        name="s",
        expected_fingerprint=right,
    )
    assert (await services.sync.status(OPERATOR, "Site")).upstream_fingerprint == right
    assert link.upstream_account == "Acme"


async def test_another_account_at_the_upstream_sees_nothing_of_its_satellites(
    upstream: Upstream, admin: Api, services: Services
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    satellite_id = await register_online(upstream, services)
    await services.sync.sync_now(OPERATOR, "Site")
    await ok(upstream.admin.post("/api/v1/accounts", {"name": "Beta"}), 200)
    beta = await new_client(upstream.admin, "account-admin", ["Beta"])
    for path in (
        f"{UP_ACCOUNT}/satellites",
        f"{UP_ACCOUNT}/satellites/{satellite_id}/products",
        f"{UP_ACCOUNT}/satellite-tokens",
        f"/api/v1/accounts/Beta/satellites/{satellite_id}/products",
    ):
        status, problem = await beta.get(path)
        assert status == 404, (path, problem)
    status, problem = await beta.post(f"{UP_ACCOUNT}/satellite-tokens", {})
    assert status == 404, problem
    assert (await ok(beta.get("/api/v1/accounts/Beta/satellites")))["satellites"] == []
    # An operator of Beta cannot carry in Acme's satellite's request either.
    request = Path(upstream.services.upstream.spool.path) / "acme.request"
    await services.sync.export_request(OPERATOR, "Site", request)
    async with beta.client.post(
        "/api/v1/sync/answer", data=request.read_bytes(), headers=beta._headers()
    ) as response:
        assert response.status == 404, await response.text()
    request.unlink()


async def test_a_change_committed_while_a_request_is_exported_travels_in_the_next(
    upstream: Upstream,
    admin: Api,
    services: Services,
    server: TestServer,
    tmp_path: Path,
    db_dsn: str,
) -> None:
    """The watermark: a transaction still open when the export takes its snapshot commits
    later; its change is not in this request, and the acknowledgement of this request
    must not skip it (the next request carries it)."""
    await setup_upstream(upstream)
    await setup_site(admin)
    satellite_id = await register_online(upstream, services)
    agent = new_agent(tmp_path, server)
    await agent.register(await site_token(admin))
    await services.sync.sync_now(OPERATOR, "Site")

    slow = await asyncpg.connect(db_dsn)
    try:
        transaction = slow.transaction()
        await transaction.start()
        await slow.execute("UPDATE product_instances SET hostname = 'renamed.example'")
        request, answer = tmp_path / "r", tmp_path / "a"
        await services.sync.export_request(OPERATOR, "Site", request)
        await transaction.commit()
    finally:
        await slow.close()
    await answer_file(upstream, request, answer, OPERATOR)
    await services.sync.import_answer(OPERATOR, answer)

    async def hostname() -> str | None:
        value: str | None = await upstream.db.fetchval(
            "SELECT hostname FROM satellite_products WHERE satellite_id = $1", satellite_id
        )
        return value

    assert await hostname() != "renamed.example"  # not committed at the snapshot
    await services.sync.sync_now(OPERATOR, "Site")
    assert await hostname() == "renamed.example"


async def test_an_answer_to_an_older_request_after_a_newer_one_was_applied_is_stale(
    upstream: Upstream, admin: Api, services: Services, tmp_path: Path
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    await register_online(upstream, services)
    first, second = tmp_path / "r1", tmp_path / "r2"
    await services.sync.export_request(OPERATOR, "Site", first)
    await services.sync.export_request(OPERATOR, "Site", second)  # exported again meanwhile
    # The newer request is answered and applied first; the older one's answer then is stale.
    await answer_file(upstream, second, tmp_path / "a2", OPERATOR)
    assert not (await services.sync.import_answer(OPERATOR, tmp_path / "a2")).repeated
    with pytest.raises(Conflict, match="stale request: this is request 1"):
        await answer_file(upstream, first, tmp_path / "a1", OPERATOR)


async def test_a_lost_registration_answer_is_fetched_again_with_the_same_token(
    upstream: Upstream, admin: Api, services: Services, tmp_path: Path
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    token = await satellite_token(upstream)
    request = tmp_path / "request"
    await services.sync.request_registration(
        OPERATOR, "Site", token=token, name="s", upstream_url=upstream.url, out=request
    )
    await answer_file(upstream, request, tmp_path / "lost", OPERATOR)  # token spent; answer lost
    link = await services.sync.register_online(
        OPERATOR, "Site", upstream_url=upstream.url, token=token, name="s"
    )
    satellites = await ok(upstream.admin.get(UP_ACCOUNT + "/satellites"))
    assert [s["satelliteId"] for s in satellites["satellites"]] == [link.satellite_id]
    await services.sync.sync_now(OPERATOR, "Site")


async def test_a_revoked_satellite_is_refused_until_it_registers_again(
    upstream: Upstream,
    admin: Api,
    services: Services,
    server: TestServer,
    tmp_path: Path,
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    satellite_id = await register_online(upstream, services)
    agent = new_agent(tmp_path, server)
    await agent.register(await site_token(admin))
    await agent.report_usage({ENHANCED: 3})
    await services.sync.sync_now(OPERATOR, "Site")
    assert await in_use(upstream.admin, UP_ACCOUNT) == {("Voice", ENHANCED): 3}

    await ok(upstream.admin.post(f"{UP_ACCOUNT}/satellites/{satellite_id}/revoke", {}))
    assert await in_use(upstream.admin, UP_ACCOUNT) == {}  # what it reported is gone
    assert await mirrored_products(upstream, satellite_id) == set()
    with pytest.raises(UpstreamRefused, match="was revoked at the upstream"):
        await services.sync.sync_now(OPERATOR, "Site")
    status, _ = await upstream.admin.post(f"{UP_ACCOUNT}/satellites/{satellite_id}/revoke", {})
    assert status == 404  # (revoked already)

    await ok(admin.post(SITE + "/sync/unregister", {}))
    assert not (await ok(admin.get(SITE + "/sync")))["registered"]
    new_id = await register_online(upstream, services)
    assert new_id != satellite_id
    await services.sync.sync_now(OPERATOR, "Site")
    assert await in_use(upstream.admin, UP_ACCOUNT) == {("Voice", ENHANCED): 3}
    listed = await ok(upstream.admin.get(UP_ACCOUNT + "/satellites"))
    assert [(s["satelliteId"], s["revokedAt"] is None) for s in listed["satellites"]] == [
        (satellite_id, False),
        (new_id, True),
    ]


async def test_a_sync_and_a_license_transfer_crossing_do_not_deadlock(
    upstream: Upstream, admin: Api, services: Services, db_dsn: str
) -> None:
    """The sync refreshes the alerts of the virtual accounts it changes in the order of
    their ids, as a license transfer does. Here Voice is older than Lab (id order Voice,
    Lab; name order Lab, Voice), both have an open alert, and the upstream moved licenses
    between them: a transfer here between the two and the sync meeting on the alert rows
    deadlocked when the sync went by name (one of them failed)."""
    await setup_upstream(upstream, enhanced=10)
    await ok(upstream.admin.post(UP_ACCOUNT + "/virtual-accounts", {"name": "Lab"}), 200)
    await setup_site(admin)
    await ok(admin.post(SITE + "/virtual-accounts", {"name": "Lab"}), 200)
    soon = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=10)).isoformat()
    for va in ("Voice", "Lab"):  # a line about to end: an open "Licenses Expiring" alert
        await ok(
            admin.post(
                f"{SITE}/virtual-accounts/{va}/license-pool",
                {"entitlementTag": ENHANCED, "quantity": 2, "licenseType": "TERM", "endDate": soon},
            )
        )
    await register_online(upstream, services)
    await services.sync.sync_now(OPERATOR, "Site")
    moved = {"license": ENHANCED, "quantity": 4, "targetVirtualAccount": "Lab"}
    await ok(
        upstream.admin.post(
            UP_ACCOUNT + "/licenses/transfer",
            {"sourceVirtualAccount": "Voice", "licenses": [moved]},
        )
    )

    blocker = await asyncpg.connect(db_dsn)
    watcher = await asyncpg.connect(db_dsn)
    try:
        # Hold Voice's alert, so that both come to wait at it: the transfer first, holding
        # its virtual accounts; then the sync.
        held = blocker.transaction()
        await held.start()
        await blocker.execute(
            "SELECT al.id FROM alerts al JOIN virtual_accounts va ON va.id = al.virtual_account_id "
            "WHERE va.name = 'Voice' AND al.cleared_at IS NULL FOR UPDATE OF al"
        )
        local = {"license": ENHANCED, "quantity": 1, "targetVirtualAccount": "Lab"}
        transfer = asyncio.create_task(
            admin.post(
                SITE + "/licenses/transfer",
                {"sourceVirtualAccount": "Voice", "licenses": [local]},
            )
        )
        await lock_waiters(watcher, 1)
        sync = asyncio.create_task(services.sync.sync_now(OPERATOR, "Site"))
        await lock_waiters(watcher, 2)
        await held.commit()
        status, answer = await asyncio.wait_for(transfer, 30)
        result = await asyncio.wait_for(sync, 30)
    finally:
        await blocker.close()
        await watcher.close()
    assert status == 200, answer
    assert (result.counts["added"], result.counts["changed"]) == (1, 1)
