"""The delivery queue's work: claim due deliveries, send each once, record the attempt, and
then mark it delivered, schedule its retry (exponential backoff with jitter) or give it up.

Deliveries are claimed with ``FOR UPDATE SKIP LOCKED`` and a lease (``claim_due``), so on
several nodes each is tried by one node at a time, and one whose node died mid-attempt is
tried again once the lease is over. A delivery still failing ``give_up_after_hours`` after
its event is given up, which raises a "Webhook Delivery Failed" alert on the account (open
until a later delivery to that webhook succeeds).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Literal

import structlog

from satellite.config import SmtpSettings, SyncSettings, WebhookSettings
from satellite.crypto.keys import ServerKeys
from satellite.crypto.secrets import decrypt
from satellite.domain.alerts import detail_text
from satellite.domain.clock import utc_now
from satellite.domain.webhooks import (
    DELIVERY_FAILED,
    DueDelivery,
    Outcome,
    delivery_failed_key,
    destination,
    is_mail,
)
from satellite.errors import SatelliteError
from satellite.services.mail_sender import MailSender
from satellite.services.webhook_sender import WebhookSender
from satellite.services.webhooks import secret_context
from satellite.storage import alerts, webhooks
from satellite.storage.db import Database
from satellite_protocol.backoff import Backoff

log = structlog.get_logger("satellite.webhooks")

LEASE_MARGIN_SECONDS = 60.0
FORGOTTEN_PER_CALL = 10_000  # (one transaction stays short; the next call takes the rest)

# What one recorded attempt came to (the metrics count them): delivered, failed and to be
# retried, or failed and its delivery given up.
AttemptOutcome = Literal["delivered", "failed", "given_up"]
ATTEMPT_OUTCOMES: tuple[AttemptOutcome, ...] = ("delivered", "failed", "given_up")


class WebhookDeliveries:
    def __init__(
        self,
        db: Database,
        keys: ServerKeys,
        settings: WebhookSettings,
        proxy: SyncSettings,
        smtp: SmtpSettings,
        node: str,
    ) -> None:
        self._db = db
        self._keys = keys
        self._settings = settings
        self._proxy = proxy
        self._smtp = smtp
        self._mail = MailSender(smtp)
        self._node = node
        self._on_attempt: Callable[[AttemptOutcome], None] | None = None

    def observe(self, on_attempt: Callable[[AttemptOutcome], None] | None) -> None:
        """Tell ``on_attempt`` how each attempt this node records came out (once it is
        committed; an outcome dropped because its webhook went meanwhile is not told)."""
        self._on_attempt = on_attempt

    @property
    def settings(self) -> WebhookSettings:
        return self._settings

    @property
    def longest_attempt_seconds(self) -> float:
        """The longest one attempt may take (a POST or an e-mail)."""
        return max(self._settings.timeout_seconds, self._smtp.timeout_seconds)

    def use_settings(self, settings: WebhookSettings) -> None:
        """New settings (a reload): the next pass, and the next attempt's retry, use them
        (the proxy is the ``[sync]`` one the daemon started with)."""
        self._settings = settings

    async def deliver_due(self) -> int:
        """One pass: drop what waits beyond ``webhooks.max_pending_per_webhook``, then send up
        to ``webhooks.batch`` due deliveries (at most ``webhooks.batch_per_account`` of one
        account) at once, each bounded by its timeout; how many were claimed."""
        settings = self._settings
        sender = WebhookSender(settings, self._proxy)  # (a CA file it cannot use: no claim)
        await self._drop_over_cap(settings.max_pending_per_webhook)
        async with self._db.transaction() as conn:
            # (The lease outlasts the longest attempt: no other node tries it meanwhile.)
            lease = self.longest_attempt_seconds + LEASE_MARGIN_SECONDS
            due = await webhooks.claim_due(conn, settings.batch, settings.batch_per_account, lease)
        if not due:
            return 0
        async with sender.open():
            # Every attempt runs to its end (none is cut short by another's failure); one
            # that failed unexpectedly is logged and left to its lease.
            outcomes = await asyncio.gather(
                *(self._deliver(sender, delivery) for delivery in due), return_exceptions=True
            )
        for delivery, outcome in zip(due, outcomes, strict=True):
            if isinstance(outcome, Exception):
                log.error("webhook.attempt_crashed", delivery=delivery.id, exc_info=outcome)
        return len(due)

    async def _drop_over_cap(self, most: int) -> None:
        """Of each webhook's waiting deliveries, keep the newest ``most``; the older ones are
        dropped, each with a note in its log. (Here, not when an alert queues its delivery:
        the alert's transaction does no more work and waits for no lock of the queue.)"""
        note = (
            f"dropped: more than {most} deliveries waited for this webhook "
            "(webhooks.max_pending_per_webhook); the newest are kept"
        )
        async with self._db.transaction() as conn:
            dropped = await webhooks.drop_over_cap(conn, most, self._node, note)
        for webhook, count in dropped:
            log.warning(
                "webhook.deliveries_dropped", webhook=str(webhook), dropped=count, kept=most
            )

    async def forget_finished(self) -> int:
        """Forget deliveries finished more than ``webhooks.log_days`` ago (a bounded number
        per call); how many."""
        before = utc_now() - dt.timedelta(days=self._settings.log_days)
        async with self._db.transaction() as conn:
            forgotten = await webhooks.forget_finished(conn, before, FORGOTTEN_PER_CALL)
        if forgotten:
            log.info("webhooks.deliveries_forgotten", forgotten=forgotten)
        return forgotten

    async def _deliver(self, sender: WebhookSender, delivery: DueDelivery) -> None:
        if is_mail(delivery.url):
            outcome = await self._mail.send(delivery)
        else:
            try:
                context = secret_context(delivery.webhook)
                secret = decrypt(self._keys.token_key, delivery.secret, context)
            except ValueError:
                error = "the secret does not decrypt with this server's key"
                outcome = Outcome(False, utc_now(), None, error, 0, "")
            else:
                outcome = await sender.send(delivery, secret)
        try:
            recorded = await self._record(delivery, outcome)
        except SatelliteError as exc:
            # (The lease runs out and the delivery is tried again.)
            log.warning("webhook.not_recorded", delivery=delivery.id, error=str(exc))
            return
        if recorded is not None and self._on_attempt is not None:
            self._on_attempt(recorded)

    async def _record(self, delivery: DueDelivery, outcome: Outcome) -> AttemptOutcome | None:
        """Record the attempt and what follows from it; how it came out (None: dropped)."""
        settings = self._settings
        now = utc_now()
        deadline = delivery.created_at + dt.timedelta(hours=settings.give_up_after_hours)
        where = {
            "delivery": delivery.id,
            "webhook": str(delivery.webhook),
            "kind": delivery.event,
            "host": destination(delivery.url),
            "attempt": delivery.attempts,
            "status": outcome.status_code,
        }
        async with self._db.transaction() as conn:
            if not await webhooks.lock_pending(conn, delivery.id):
                # (Deleted or disabled meanwhile: nothing waits for this outcome.)
                log.info("webhook.dropped", **where)
                return None
            await webhooks.record_attempt(conn, delivery.id, self._node, outcome)
            if outcome.delivered:
                await webhooks.finish(conn, delivery.id, "delivered")
                await alerts.clear_alerts(
                    conn, delivery.account_id, [delivery_failed_key(delivery.webhook)]
                )
                log.info("webhook.delivered", **where, duration_ms=outcome.duration_ms)
                return "delivered"
            elif now >= deadline:
                await webhooks.finish(conn, delivery.id, "failed")
                await alerts.raise_alert(
                    conn,
                    account_id=delivery.account_id,
                    virtual_account_id=None,
                    dedupe_key=delivery_failed_key(delivery.webhook),
                    message_type=DELIVERY_FAILED,
                    severity="Major",
                    source=f"webhook {delivery.webhook}",
                    message=(
                        f"a {delivery.event} delivery to {where['host']} was given up after "
                        f"{delivery.attempts} attempt(s); the last: "
                        f"{outcome.error or f'HTTP {outcome.status_code}'}"
                    ),
                    details={
                        "event": delivery.event,
                        "host": destination(delivery.url) or "",
                        "attempts": delivery.attempts,
                        "error": detail_text(outcome.error or f"HTTP {outcome.status_code}"),
                    },
                )
                log.warning("webhook.given_up", **where, error=outcome.error)
                return "given_up"
            else:
                backoff = Backoff(settings.backoff_first_seconds, settings.backoff_longest_seconds)
                wait = dt.timedelta(seconds=backoff.wait(delivery.attempts))
                # (The last attempt is made at the deadline, not skipped past it.)
                await webhooks.retry_at(conn, delivery.id, min(now + wait, deadline))
                log.info("webhook.attempt_failed", **where, error=outcome.error)
                return "failed"
