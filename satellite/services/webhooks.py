"""An account's webhooks: created with a secret shown once, changed, deleted, their
secret rotated, their deliveries listed, a test delivery sent.

The secret is generated here and stored encrypted with the server's token key (the
worker signs with it, so a hash would not do), bound to the webhook's public id; it is
returned by create and rotate only, and never logged. Alert deliveries are enqueued by a
trigger on alerts (sql/016); only the test delivery is enqueued here.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import msgspec

from satellite.config import SmtpSettings, WebhookSettings
from satellite.crypto.keys import ServerKeys
from satellite.crypto.secrets import encrypt
from satellite.crypto.webhooks import new_webhook_secret
from satellite.domain.access import Principal
from satellite.domain.clock import utc_now
from satellite.domain.models import Account
from satellite.domain.names import check_description
from satellite.domain.webhooks import (
    ALERT_EVENTS,
    MAX_WEBHOOKS_PER_ACCOUNT,
    TEST_EVENT,
    Attempt,
    Delivery,
    Webhook,
    address_allowed,
    address_literal,
    delivery_failed_key,
    destination,
    is_mail,
    networks,
)
from satellite.errors import Conflict, InvalidInput, NotFound
from satellite.services import audit, scope
from satellite.storage import alerts, webhooks
from satellite.storage.db import Connection, Database
from satellite_protocol import outbound

MAX_URL_CHARS = 2000
# One address, nothing a mail header would read as more: the local part a dot-atom of
# RFC 5321 (no ":" of a group, no "?" of headers or of an encoded word, no quotes, no
# spaces), the domain host names.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=^_`{|}~-]+"
_MAILTO = re.compile(
    rf"mailto:(?=[^@]{{1,64}}@){_ATOM}(?:\.{_ATOM})*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?"
)
# Below U+0020 and U+007F: an escape sequence or a line break printed by `webhook list`.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# What an update may change (the audit log names those it changed; never the secret).
_CHANGEABLE = ("url", "events", "alert_types", "enabled", "description")


@dataclass(frozen=True)
class NewSecret:
    """A webhook with its signing secret, in the clear: shown this once."""

    webhook: Webhook
    secret: str


@dataclass(frozen=True)
class WebhookChange:
    """What an update changes; None leaves a value as it is."""

    url: str | None = None
    events: list[str] | None = None
    alert_types: list[str] | None = None
    enabled: bool | None = None
    description: str | None = None


def secret_context(public_id: uuid.UUID) -> bytes:
    """What a webhook's encrypted secret is bound to (a secret copied to another webhook's
    row does not decrypt)."""
    return b"satellite webhook secret:" + public_id.bytes


async def _clear_delivery_failed(conn: Connection, account: Account, public_id: uuid.UUID) -> None:
    """Clear the webhook's "Webhook Delivery Failed" alert (it was deleted or disabled).
    The other webhooks hear of it (alert.cleared); this one, no longer enabled, does not."""
    await alerts.clear_alerts(conn, account.id, [delivery_failed_key(public_id)])


def _literal_allowed(url: str, settings: WebhookSettings) -> bool:
    """A URL naming an address outside ``webhooks.allowed_networks`` can never be
    delivered to: refused now (a name is checked as each delivery connects)."""
    address = address_literal(url)
    return address is None or address_allowed(address, networks(settings.allowed_networks))


def _events(events: list[str]) -> list[str]:
    chosen: list[str] = [e for e in ALERT_EVENTS if e in events]
    if not chosen:
        raise InvalidInput("choose at least one event", field="events")
    return chosen


class WebhookService:
    def __init__(
        self, db: Database, keys: ServerKeys, settings: WebhookSettings, smtp: SmtpSettings
    ) -> None:
        self._db = db
        self._keys = keys
        self._settings = settings
        self._smtp = smtp

    def use_settings(self, settings: WebhookSettings) -> None:
        """New settings (a reload): the next URL is checked against them."""
        self._settings = settings

    def _checked_url(self, url: str) -> str:
        control = _CONTROL.search(url)
        if control is not None:
            raise InvalidInput(
                f"the URL holds a control character (U+{ord(control.group()):04X} at "
                f"position {control.start() + 1})",
                field="url",
            )
        if is_mail(url):
            return self._checked_address(url)
        refusal = outbound.url_refusal(url)
        if refusal is None and len(url) > MAX_URL_CHARS:
            refusal = f"the URL is longer than {MAX_URL_CHARS} characters"
        if refusal is None:
            parts = urlsplit(url)
            if parts.username is not None or parts.password is not None:
                refusal = "the URL must hold no user name or password (the signature is the proof)"
            elif parts.scheme == "http" and not self._settings.allow_http:
                refusal = "the URL must be https:// (webhooks.allow_http allows http://)"
            elif not _literal_allowed(url, self._settings):
                refusal = "the URL's address is outside webhooks.allowed_networks"
        if refusal is not None:
            raise InvalidInput(refusal, field="url")
        return url

    def _checked_address(self, url: str) -> str:
        refusal = None
        if _MAILTO.fullmatch(url) is None:
            refusal = "a mailto: URL names one e-mail address (mailto:name@example.com)"
        elif self._smtp.host is None:
            refusal = "e-mail needs a mail server: set smtp.host (and smtp.from_address)"
        if refusal is not None:
            raise InvalidInput(refusal, field="url")
        return url

    async def _webhook(
        self, conn: Connection, account: Account, public_id: uuid.UUID, *, for_update: bool
    ) -> Webhook:
        found = await webhooks.get_webhook(conn, account.id, public_id, for_update=for_update)
        if found is None:
            raise NotFound(
                f"webhook {public_id} not found in account {account.name!r}", field="webhook"
            )
        return found

    async def create(
        self,
        principal: Principal,
        account: str,
        *,
        url: str,
        events: list[str],
        alert_types: list[str],
        enabled: bool,
        description: str,
    ) -> NewSecret:
        check_description(description)
        url = self._checked_url(url)
        chosen = _events(events)
        public_id = uuid.uuid4()
        secret = new_webhook_secret()
        async with self._db.transaction() as conn:
            # (Locked for update: two creations racing for the last place do not both win.)
            acc = await scope.writable_account(conn, principal, account, lock="update")
            if await webhooks.count_webhooks(conn, acc.id) >= MAX_WEBHOOKS_PER_ACCOUNT:
                raise Conflict(
                    f"account {account!r} has {MAX_WEBHOOKS_PER_ACCOUNT} webhooks, the most "
                    "it may have: delete one first"
                )
            webhook = await webhooks.insert_webhook(
                conn,
                public_id=public_id,
                account_id=acc.id,
                url=url,
                secret=encrypt(self._keys.token_key, secret, secret_context(public_id)),
                events=chosen,
                alert_types=sorted(set(alert_types)),
                enabled=enabled,
                description=description,
            )
            await audit.record(
                conn,
                principal,
                "webhook.created",
                f"{account}/webhooks/{public_id}",
                account_id=acc.id,
                host=destination(url),
                events=chosen,
            )
        return NewSecret(webhook, secret)

    async def list_webhooks(self, principal: Principal, account: str) -> list[Webhook]:
        async with self._db.connection() as conn:
            acc = await scope.writable_account(conn, principal, account, lock=None)
            return await webhooks.list_webhooks(conn, acc.id)

    async def get(self, principal: Principal, account: str, public_id: uuid.UUID) -> Webhook:
        async with self._db.connection() as conn:
            acc = await scope.writable_account(conn, principal, account, lock=None)
            return await self._webhook(conn, acc, public_id, for_update=False)

    async def update(
        self, principal: Principal, account: str, public_id: uuid.UUID, change: WebhookChange
    ) -> Webhook:
        if change.description is not None:
            check_description(change.description)
        url = None if change.url is None else self._checked_url(change.url)
        events = None if change.events is None else _events(change.events)
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account)
            old = await self._webhook(conn, acc, public_id, for_update=True)
            new = await webhooks.update_webhook(
                conn,
                old.id,
                url=url or old.url,
                events=events or old.events,
                alert_types=(
                    old.alert_types
                    if change.alert_types is None
                    else sorted(set(change.alert_types))
                ),
                enabled=old.enabled if change.enabled is None else change.enabled,
                description=old.description if change.description is None else change.description,
            )
            # A disabled webhook gets nothing more, not even what waited for it; so no
            # delivery would ever clear its "Webhook Delivery Failed" alert: cleared here.
            cancelled = 0
            if not new.enabled:
                cancelled = await webhooks.cancel_pending(conn, old.id)
                await _clear_delivery_failed(conn, acc, public_id)
            changed = [f for f in _CHANGEABLE if getattr(new, f) != getattr(old, f)]
            await audit.record(
                conn,
                principal,
                "webhook.updated",
                f"{account}/webhooks/{public_id}",
                account_id=acc.id,
                changed=changed,
                cancelled_deliveries=cancelled,
            )
        return new

    async def delete(self, principal: Principal, account: str, public_id: uuid.UUID) -> Webhook:
        """Delete the webhook and its deliveries; what it was."""
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account)
            old = await self._webhook(conn, acc, public_id, for_update=True)
            await webhooks.delete_webhook(conn, old.id)
            await _clear_delivery_failed(conn, acc, public_id)
            await audit.record(
                conn,
                principal,
                "webhook.deleted",
                f"{account}/webhooks/{public_id}",
                account_id=acc.id,
                host=destination(old.url),
            )
        return old

    async def rotate_secret(
        self, principal: Principal, account: str, public_id: uuid.UUID
    ) -> NewSecret:
        """A new secret; deliveries from now on (retries included) are signed with it."""
        secret = new_webhook_secret()
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account)
            old = await self._webhook(conn, acc, public_id, for_update=True)
            ciphertext = encrypt(self._keys.token_key, secret, secret_context(public_id))
            await webhooks.set_secret(conn, old.id, ciphertext)
            await audit.record(
                conn,
                principal,
                "webhook.secret_rotated",
                f"{account}/webhooks/{public_id}",
                account_id=acc.id,
            )
            webhook = await self._webhook(conn, acc, public_id, for_update=False)
        return NewSecret(webhook, secret)

    async def deliveries(
        self, principal: Principal, account: str, public_id: uuid.UUID, limit: int, offset: int
    ) -> tuple[int, list[tuple[Delivery, list[Attempt]]]]:
        """How many deliveries the webhook has had, and newest first ``limit`` of them."""
        async with self._db.snapshot() as conn:
            acc = await scope.writable_account(conn, principal, account, lock=None)
            webhook = await self._webhook(conn, acc, public_id, for_update=False)
            total = await webhooks.count_deliveries(conn, webhook.id)
            return total, await webhooks.list_deliveries(conn, webhook.id, limit, offset)

    async def send_test(self, principal: Principal, account: str, public_id: uuid.UUID) -> int:
        """Enqueue a ``webhook.test`` delivery; its id (the log shows how it went)."""
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account)
            # (Locked: two requests at once do not both find no test waiting.)
            webhook = await self._webhook(conn, acc, public_id, for_update=True)
            if not webhook.enabled:
                raise Conflict(f"webhook {public_id} is disabled: enable it to send to it")
            waiting = await webhooks.waiting_delivery(conn, webhook.id, TEST_EVENT)
            if waiting is not None:
                # One at a time: test requests cannot fill the queue.
                raise Conflict(
                    f"test delivery {waiting} of webhook {public_id} still waits to be "
                    "delivered: its outcome is in the webhook's deliveries; send another "
                    "once it is delivered or given up"
                )
            payload = msgspec.json.encode(
                {
                    "event": TEST_EVENT,
                    "account": acc.name,
                    "webhook": str(public_id),
                    "message": "a test delivery, sent on request",
                    "sentBy": principal.actor,
                    "requestedAt": utc_now().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                }
            ).decode()
            delivery = await webhooks.enqueue(conn, webhook.id, TEST_EVENT, payload)
            await audit.record(
                conn,
                principal,
                "webhook.test",
                f"{account}/webhooks/{public_id}",
                account_id=acc.id,
                delivery=delivery,
            )
        return delivery
