"""The daemon's webhook worker: passes over the delivery queue while the daemon runs.

A pass that found a full batch (or one account's full share of it,
``webhooks.batch_per_account``) is followed by the next at once; otherwise the worker waits
``webhooks.poll_interval_seconds``. A pass that fails (the database is down) is logged and
the worker goes on (it logs the first failure and the recovery, not each failed pass
between): the deliveries wait in the database. Stopping lets the pass in flight
finish (its attempts recorded), so an orderly stop leaves no delivery to its lease. Once
an hour (and at start) it forgets the deliveries finished more than ``webhooks.log_days``
ago.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from satellite.errors import SatelliteError
from satellite.services.webhook_deliveries import WebhookDeliveries

log = structlog.get_logger("satellite.webhooks")

# How often the log's old deliveries are forgotten (webhooks.log_days), at start and then.
FORGET_EVERY_SECONDS = 3600.0
# Past the longest attempt, the pass in flight is cancelled (its deliveries wait for their
# lease).
_STOP_MARGIN_SECONDS = 5.0


class DeliveryWorker:
    def __init__(self, deliveries: WebhookDeliveries) -> None:
        self._deliveries = deliveries
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="webhook-deliveries")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stopping.set()
        grace = self._deliveries.longest_attempt_seconds + _STOP_MARGIN_SECONDS
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _run(self) -> None:
        failing = False  # (passes that keep failing are logged once, not each of them)
        forget_at = time.monotonic()
        while not self._stopping.is_set():
            settings = self._deliveries.settings
            try:
                if time.monotonic() >= forget_at:
                    await self._deliveries.forget_finished()
                    forget_at = time.monotonic() + FORGET_EVERY_SECONDS
                claimed = await self._deliveries.deliver_due()
            except SatelliteError as exc:
                if not failing:
                    log.warning("webhooks.pass_failed", error=str(exc))
                failing, claimed = True, 0
            except Exception:
                if not failing:
                    log.exception("webhooks.pass_crashed")
                failing, claimed = True, 0
            else:
                if failing:
                    log.info("webhooks.pass_recovered")
                failing = False
            # (A pass that took a full batch, or one account's full share of it, may have
            # left more due.)
            if claimed >= min(settings.batch, settings.batch_per_account):
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), settings.poll_interval_seconds)
