"""Connected mode: the satellite sends its sync request to the upstream and imports the
answer at once (``sync now``, the scheduled job); two real daemons, each with its own
database, and real agents as products."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from satellite.api.context import Services
from satellite.wiring import Runtime, create_app, open_services
from sync.transport import UpstreamUnreachable
from tests.conftest import (
    ENHANCED,
    FLEX_ENHANCED,
    Api,
    lock_waiters,
)
from tests.helpers.api import new_agent
from tests.helpers.sync import (
    OPERATOR,
    SITE,
    UP_ACCOUNT,
    Upstream,
    answer_file,
    buy,
    in_use,
    mirrored_products,
    ok,
    pool,
    register_online,
    satellite_products,
    setup_site,
    setup_upstream,
    site_token,
)


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
        await services.sync.write_request(OPERATOR, "Site", request)
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
