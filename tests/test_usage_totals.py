"""The running usage totals stay equal to the usage counted from scratch, through every
change that moves a product's usage: reports (concurrent ones too), transfers, moves by
re-registration, deregistration, removal, authorization lapse and renewal, and the
registration's expiry. And what is in use is exact at every moment, before the jobs run."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from pathlib import Path

import asyncpg
from aiohttp.test_utils import TestServer

from satellite.api.context import Services
from satellite.scheduler import jobs
from satellite_agent.client import Agent
from tests.conftest import BASIC, ENHANCED, Api
from tests.test_device import ACCOUNT, new_agent, new_token, setup_voice

# From scratch: usage of registered products whose authorization and certificate hold.
COUNTED = (
    "SELECT va.name AS va, u.tag, sum(u.count)::bigint AS total "
    "FROM product_usage u JOIN product_instances p ON p.id = u.product_id "
    "JOIN virtual_accounts va ON va.id = p.virtual_account_id "
    "WHERE p.status = 'registered' AND p.authorization_expires_at > now() "
    "AND p.certificate_expires_at > now() GROUP BY va.name, u.tag HAVING sum(u.count) <> 0"
)
TOTALS = (
    "SELECT va.name AS va, t.tag, sum(t.in_use)::bigint AS total "
    "FROM virtual_account_usage t JOIN virtual_accounts va ON va.id = t.virtual_account_id "
    "GROUP BY va.name, t.tag HAVING sum(t.in_use) <> 0"
)
# Products whose usage should be in the totals but is not, or the other way round.
MISCOUNTED = (
    "SELECT count(*) FROM product_instances WHERE counted_in IS DISTINCT FROM "
    "(CASE WHEN status = 'registered' AND authorization_expires_at > now() "
    "AND certificate_expires_at > now() THEN virtual_account_id END)"
)


async def counted(db: asyncpg.Connection, query: str) -> dict[tuple[str, str], int]:
    return {(r["va"], r["tag"]): int(r["total"]) for r in await db.fetch(query)}


async def in_use(admin: Api) -> dict[tuple[str, str], int]:
    status, body = await admin.post(ACCOUNT + "/licenses", {})
    assert status == 200, body
    return {
        (line["virtualAccount"], line["entitlementTag"]): line["inUse"]
        for line in body["licenses"]
        if line["inUse"]
    }


async def assert_books_balance(admin: Api, db: asyncpg.Connection) -> dict[tuple[str, str], int]:
    scratch = await counted(db, COUNTED)
    assert await counted(db, TOTALS) == scratch
    assert await db.fetchval(MISCOUNTED) == 0
    assert await in_use(admin) == scratch
    return scratch


async def test_concurrent_churn_keeps_the_totals_exact(
    admin: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, enhanced=40, basic=40)
    status, body = await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Lab"})
    assert status == 200, body
    token = await new_token(admin, numberOfUses=20)
    agents = [new_agent(tmp_path, server, f"FCH{n:04d}") for n in range(10)]
    await asyncio.gather(*(a.register(token) for a in agents))
    rng = random.Random(7)  # noqa: S311 - test data, not secrets

    async def report(agent: Agent) -> None:
        for _ in range(4):
            usage = {ENHANCED: rng.randrange(0, 9)}
            if rng.random() < 0.5:
                usage[BASIC] = rng.randrange(1, 5)
            await agent.report_usage(usage)

    async def transfer(agent: Agent, source: str, target: str) -> None:
        state = agent.state
        status, body = await admin.post(
            f"{ACCOUNT}/virtual-accounts/{source}/devices/transfer",
            {
                "productInstances": [
                    {
                        "sudi": {
                            "udiPid": state.identity.pid,
                            "udiSerialNumber": state.identity.serial_number,
                        },
                        "productTagName": "UCM",
                        "targetVirtualAccount": target,
                    }
                ]
            },
        )
        assert status == 200, body

    for _ in range(3):  # bounded: three rounds of churn
        await asyncio.gather(
            *(report(a) for a in agents),
            transfer(agents[0], "Voice", "Lab"),
            agents[1].renew_authorization(),
        )
        books = await assert_books_balance(admin, db)
        assert agents[0].state.usage.get(ENHANCED, 0) == 0 or ("Lab", ENHANCED) in books
        await transfer(agents[0], "Lab", "Voice")
        await assert_books_balance(admin, db)

    # Moves: re-registration into Lab while others report; deregistration; removal.
    await asyncio.gather(
        agents[2].register(await new_token(admin, va="Lab")),
        *(report(a) for a in agents[3:]),
    )
    await agents[3].deregister()
    state = agents[4].state
    status, body = await admin.post(
        f"{ACCOUNT}/virtual-accounts/Voice/devices/remove",
        {
            "productInstacesRemoveRequests": [
                {"sudi": {"udiPid": "UCM", "udiSerialNumber": "FCH0004"}, "productTagName": "UCM"}
            ]
        },
    )
    assert status == 200, body
    books = await assert_books_balance(admin, db)
    expected: dict[tuple[str, str], int] = {}
    for agent in agents:
        state = agent.state
        if state.registration == "registered" and agent not in (agents[3], agents[4]):
            for tag, count in state.usage.items():
                key = (str(state.virtual_account), tag)
                expected[key] = expected.get(key, 0) + count
    assert books == {key: total for key, total in expected.items() if total}


async def test_lapsed_authorization_stops_counting_at_once_and_renewal_restores_it(
    admin: Api,
    server: TestServer,
    tmp_path: Path,
    db: asyncpg.Connection,
    services: Services,
) -> None:
    await setup_voice(admin, enhanced=10)
    token = await new_token(admin, numberOfUses=2)
    lapsing, staying = (
        new_agent(tmp_path, server, "FCH0001"),
        new_agent(tmp_path, server, "FCH0002"),
    )
    for agent, count in ((lapsing, 4), (staying, 3)):
        await agent.register(token)
        await agent.report_usage({ENHANCED: count})
    assert await in_use(admin) == {("Voice", ENHANCED): 7}

    # Its authorization runs out: its usage stops counting at once, before any job runs,
    # in the licenses view and in the answers to other products.
    product = lapsing.state.product_instance_id
    await db.execute(
        "UPDATE product_instances SET authorization_expires_at = now() - interval '1 second' "
        "WHERE id = $1::uuid",
        product,
    )
    assert await in_use(admin) == {("Voice", ENHANCED): 3}
    state = await staying.report_usage({ENHANCED: 5})
    assert state.authorization is not None
    assert state.authorization["state"] == "AUTHORIZED"
    # A report from the lapsed product itself changes nothing that counts.
    await lapsing.report_usage({ENHANCED: 6})
    assert await in_use(admin) == {("Voice", ENHANCED): 5}

    # The job takes it out of the totals; nothing changes in what is in use.
    report = await jobs.expire_authorizations(services, lambda: dt.datetime.now(dt.UTC))
    assert report is not None
    assert report.counts["expired"] == 1
    assert await assert_books_balance(admin, db) == {("Voice", ENHANCED): 5}

    # Renewed, it counts again with what it last reported.
    await lapsing.renew_authorization()
    assert await assert_books_balance(admin, db) == {("Voice", ENHANCED): 11}

    # Its certificate runs out: it stops counting at once; the job ends the registration.
    await db.execute(
        "UPDATE product_instances SET certificate_expires_at = now() - interval '1 second' "
        "WHERE id = $1::uuid",
        product,
    )
    assert await in_use(admin) == {("Voice", ENHANCED): 5}
    report = await jobs.expire_registrations(services, lambda: dt.datetime.now(dt.UTC))
    assert report is not None
    assert report.counts == {"expired": 1, "export_keys_released": 0}
    assert await assert_books_balance(admin, db) == {("Voice", ENHANCED): 5}
