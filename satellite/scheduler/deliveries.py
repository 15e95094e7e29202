"""The daemon's webhook worker: passes over the delivery queue while the daemon runs.

A pass that found a full batch is followed by the next at once; otherwise the worker waits
``webhooks.poll_interval_seconds``. A pass that fails (the database
is down) is logged and the worker goes on: the deliveries wait in the database.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from satellite.errors import SatelliteError
from satellite.services.webhook_deliveries import WebhookDeliveries

log = structlog.get_logger("satellite.webhooks")


class DeliveryWorker:
    def __init__(self, deliveries: WebhookDeliveries) -> None:
        self._deliveries = deliveries
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-deliveries")

    async def stop(self) -> None:
        """Stop; a delivery in flight is left to its lease (tried again after it)."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            settings = self._deliveries.settings
            try:
                claimed = await self._deliveries.deliver_due()
            except SatelliteError as exc:
                log.warning("webhooks.pass_failed", error=str(exc))
                claimed = 0
            except Exception:
                log.exception("webhooks.pass_crashed")
                claimed = 0
            if claimed >= settings.batch:
                continue
            await asyncio.sleep(settings.poll_interval_seconds)
