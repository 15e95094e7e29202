"""A webhook deleted or disabled takes its "Webhook Delivery Failed" alert with it: no
delivery to it can succeed any more, so nothing else would ever clear the alert."""

from __future__ import annotations

import asyncio
import time
import uuid

import msgspec
import pytest

from satellite.api.context import Services
from satellite.config import Settings
from satellite.domain.access import host_operator
from satellite.domain.webhooks import DELIVERY_FAILED
from satellite.services.webhooks import WebhookChange
from satellite.wiring import open_services
from tests.helpers.webhooks import FAST, WAIT_SECONDS, Receiver, alert_webhook, runtime_with

OPERATOR = host_operator("pytest")


async def open_failed_alerts(services: Services) -> list[str]:
    _, found = await services.alerts.list_alerts(OPERATOR, "Acme", -1)
    return [a.source for a in found if a.message_type == DELIVERY_FAILED]


async def give_up_once(services: Services, url: str) -> uuid.UUID:
    """A webhook at ``url`` whose test delivery was given up; its id."""
    new = await alert_webhook(services, OPERATOR, url)
    hook = new.webhook.public_id
    await services.webhooks.send_test(OPERATOR, "Acme", hook)
    deadline = time.monotonic() + WAIT_SECONDS
    for _ in range(1000):
        await services.deliveries.deliver_due()
        if f"webhook {hook}" in await open_failed_alerts(services):
            return hook
        assert time.monotonic() < deadline, "the delivery was not given up"
        await asyncio.sleep(0.05)
    raise AssertionError("the delivery was not given up")


@pytest.mark.parametrize("how", ["delete", "disable"])
async def test_deleting_or_disabling_a_webhook_clears_its_failed_alert(
    settings: Settings, db_dsn: str, receiver: Receiver, how: str
) -> None:
    soon = msgspec.structs.replace(FAST, give_up_after_hours=0.3 / 3600)
    receiver.answers = [503] * 1000
    async with open_services(runtime_with(settings, db_dsn, soon)) as services:
        await services.accounts.create_account(OPERATOR, "Acme", "", False)
        gone = await give_up_once(services, receiver.url())
        kept = await give_up_once(services, receiver.url("/hostile"))
        assert sorted(await open_failed_alerts(services)) == sorted(
            [f"webhook {gone}", f"webhook {kept}"]
        )
        if how == "delete":
            await services.webhooks.delete(OPERATOR, "Acme", gone)
        else:
            await services.webhooks.update(OPERATOR, "Acme", gone, WebhookChange(enabled=False))
        # Only the removed webhook's alert is cleared; the other's stays open.
        assert await open_failed_alerts(services) == [f"webhook {kept}"]
