"""The authorization horizon: a satellite that has not synced for too long warns, then
grants no new authorizations or reservations until it syncs again."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from satellite.api.context import Services
from satellite.wiring import Runtime, open_services
from satellite_agent.client import RequestRefused
from tests.conftest import (
    ENHANCED,
    Api,
)
from tests.helpers.api import new_agent, new_product
from tests.helpers.sync import (
    OPERATOR,
    SITE,
    Upstream,
    ok,
    register_online,
    setup_site,
    setup_upstream,
    site_token,
)


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
