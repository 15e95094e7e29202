"""Several nodes on one queue: each delivery is tried by one node at a time (``FOR UPDATE
SKIP LOCKED`` and a lease), and one whose node died mid-attempt is tried again once its
lease is over."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import msgspec

from satellite.api.context import Services
from satellite.config import Settings
from satellite.domain.access import host_operator
from satellite.scheduler.deliveries import DeliveryWorker
from satellite.storage import webhooks as queue
from satellite.wiring import open_services
from tests.helpers.webhooks import FAST, Receiver, alert_webhook, runtime_with, verify

OPERATOR = host_operator("pytest")


async def test_two_nodes_deliver_each_delivery_once(
    settings: Settings, db_dsn: str, receiver: Receiver
) -> None:
    hooks = msgspec.structs.replace(FAST, batch=3)
    node_a = msgspec.structs.replace(settings, node_name="node-a")
    node_b = msgspec.structs.replace(settings, node_name="node-b")
    async with (
        open_services(runtime_with(node_a, db_dsn, hooks)) as a,
        open_services(runtime_with(node_b, db_dsn, hooks)) as b,
    ):
        await a.accounts.create_account(OPERATOR, "Acme", "", False)
        new = await alert_webhook(a, OPERATOR, receiver.url())
        # (Six alerts' deliveries: a webhook has one test delivery waiting at most.)
        async with a.db.transaction() as conn:
            queued = [
                await queue.enqueue(conn, new.webhook.id, "alert.raised", f'{{"n": {n}}}')
                for n in range(6)
            ]
        # Both nodes pass over the queue at once, then again until it is empty (bounded).
        for _ in range(10):
            claimed = await asyncio.gather(a.deliveries.deliver_due(), b.deliveries.deliver_due())
            if sum(claimed) == 0:
                break
        ids = sorted(int(r.headers["Satellite-Delivery"]) for r in receiver.got)
        assert ids == sorted(queued)  # each once, none twice
        for received in receiver.got:
            verify(new.secret, received, time.time())
        total, log = await a.webhooks.deliveries(OPERATOR, "Acme", new.webhook.public_id, -1, 0)
        assert total == 6
        assert {d.state for d, _ in log} == {"delivered"}
        assert all(len(attempts) == 1 for _, attempts in log)
        assert {attempts[0].node for _, attempts in log} == {"node-a", "node-b"}


async def test_a_delivery_leased_by_a_dead_node_waits_for_its_lease(
    settings: Settings, db_dsn: str, receiver: Receiver
) -> None:
    async with open_services(runtime_with(settings, db_dsn, FAST)) as services:
        delivery = await _queued_test(services, receiver)
        # A node claims it and dies before it records anything (its lease: 1 s).
        async with services.db.transaction() as conn:
            [claimed] = await queue.claim_due(conn, 10, 10, 1.0)
        assert claimed.id == delivery
        assert await services.deliveries.deliver_due() == 0  # leased: left alone
        assert receiver.got == []
        deadline = time.monotonic() + 20
        while await services.deliveries.deliver_due() == 0:
            assert time.monotonic() < deadline, "the lease never ended"
            await asyncio.sleep(0.1)
        [received] = receiver.got
        assert received.headers["Satellite-Delivery"] == str(delivery)
        [(logged, attempts)] = (
            await services.webhooks.deliveries(OPERATOR, "Acme", claimed.webhook, -1, 0)
        )[1]
        assert logged.state == "delivered"
        assert logged.attempts == 2  # the dead node's claim counts as an attempt made
        assert len(attempts) == 1  # ... but only the one that came to something is logged


async def _queued_test(services: Services, receiver: Receiver) -> int:
    await services.accounts.create_account(OPERATOR, "Acme", "", False)
    new = await alert_webhook(services, OPERATOR, receiver.url())
    return await services.webhooks.send_test(OPERATOR, "Acme", new.webhook.public_id)


async def test_the_worker_forgets_deliveries_finished_longer_ago_than_the_log_keeps(
    settings: Settings, db_dsn: str, db: asyncpg.Connection, receiver: Receiver
) -> None:
    async with open_services(runtime_with(settings, db_dsn, FAST)) as services:
        first = await _queued_test(services, receiver)
        [hook] = await services.webhooks.list_webhooks(OPERATOR, "Acme")
        async with services.db.transaction() as conn:
            others = [await queue.enqueue(conn, hook.id, "alert.raised", "{}")]
        assert await services.deliveries.deliver_due() == 2
        waiting = await services.webhooks.send_test(OPERATOR, "Acme", hook.public_id)
        # The first finished 31 days ago (the log keeps 30); the waiting one is as old.
        await db.execute(
            "UPDATE webhook_deliveries SET finished_at = now() - interval '31 days', "
            "created_at = now() - interval '31 days' WHERE id = $1",
            first,
        )
        await db.execute(
            "UPDATE webhook_deliveries SET created_at = now() - interval '31 days', "
            "next_attempt_at = now() + interval '1 hour' WHERE id = $1",
            waiting,
        )
        worker = DeliveryWorker(services.deliveries)
        worker.start()  # (it forgets at start)
        try:
            deadline = time.monotonic() + 20
            while await db.fetchval("SELECT count(*) FROM webhook_deliveries WHERE id = $1", first):
                assert time.monotonic() < deadline, "the old delivery was not forgotten"
                await asyncio.sleep(0.05)
        finally:
            await worker.stop()
        _, log = await services.webhooks.deliveries(OPERATOR, "Acme", hook.public_id, -1, 0)
        assert sorted(d.id for d, _ in log) == sorted([*others, waiting])
        assert await db.fetchval("SELECT count(*) FROM webhook_attempts") == 1  # the other's
        assert await services.deliveries.forget_finished() == 0
