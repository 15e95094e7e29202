"""The daemon's webhook worker while its database refuses it and then takes it again: it
goes on, logging the failure once (not each pass), then the recovery, and delivers what
waited."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import asyncpg
import structlog

from satellite.config import Settings
from satellite.domain.access import host_operator
from satellite.scheduler.deliveries import DeliveryWorker
from satellite.wiring import open_services
from tests.conftest import dsn_for
from tests.helpers.webhooks import FAST, Receiver, alert_webhook, runtime_with

WAIT_SECONDS = 20.0


async def _refuse_connections(pg_server: str, db_dsn: str, refuse: bool) -> None:
    """The test's database refuses new connections (and its open ones end), or takes them."""
    name = urlsplit(db_dsn).path.lstrip("/")
    admin = await asyncpg.connect(dsn_for(pg_server, "postgres"))
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(not refuse).lower()}')
        if refuse:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
    finally:
        await admin.close()


async def test_a_database_outage_is_logged_once_and_deliveries_wait(
    settings: Settings, db_dsn: str, pg_server: str, receiver: Receiver
) -> None:
    operator = host_operator("pytest")
    async with open_services(runtime_with(settings, db_dsn, FAST)) as services:
        await services.accounts.create_account(operator, "Acme", "", False)
        new = await alert_webhook(services, operator, receiver.url())
        worker = DeliveryWorker(services.deliveries)
        with structlog.testing.capture_logs() as logs:
            await _refuse_connections(pg_server, db_dsn, True)
            worker.start()
            try:
                # Many passes (one each 0.05 s) fail while the database refuses.
                await asyncio.sleep(1.0)
                failed = [e for e in logs if e["event"].startswith("webhooks.pass_")]
                await _refuse_connections(pg_server, db_dsn, False)
                await services.webhooks.send_test(operator, "Acme", new.webhook.public_id)
                deadline = time.monotonic() + WAIT_SECONDS
                while not receiver.got:
                    assert time.monotonic() < deadline, "nothing was delivered"
                    await asyncio.sleep(0.05)
            finally:
                await worker.stop()
    assert len(failed) == 1, [e["event"] for e in logs]
    assert [e["event"] for e in logs].count("webhooks.pass_recovered") == 1
    assert receiver.got[0].headers["Satellite-Event"] == "webhook.test"
