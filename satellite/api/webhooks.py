"""An account's webhooks: where its alerts are delivered (docs/webhooks.md).

Only the account's admins (and system admins) see or change them: a webhook's URL says
where the account's alerts go. The signing secret is in the answers of create and rotate
only.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

import msgspec

from satellite.api.context import Services
from satellite.api.operation import WRITE, operation
from satellite.api.paths import ACCOUNT
from satellite.api.scopes import InAccount
from satellite.api.types import Description, Name, Offset, Response
from satellite.domain.access import Principal
from satellite.domain.webhooks import (
    ALERT_EVENTS,
    AlertEvent,
    Attempt,
    Delivery,
    DeliveryState,
    Webhook,
    error_kind,
)
from satellite.services.webhooks import MAX_URL_CHARS, WebhookChange

WEBHOOK = ACCOUNT + "/webhooks/{webhook}"

Url = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_URL_CHARS)]
Events = Annotated[list[AlertEvent], msgspec.Meta(min_length=1, max_length=2)]
AlertTypes = Annotated[list[Name], msgspec.Meta(max_length=50)]
# A page of the delivery log (each delivery with all its attempts): never "all" (-1).
MAX_DELIVERIES_PAGE = 200
DeliveriesLimit = Annotated[int, msgspec.Meta(ge=1, le=MAX_DELIVERIES_PAGE)]


class WebhookCreate(InAccount):
    url: Url
    events: Events = msgspec.field(default_factory=lambda: list(ALERT_EVENTS))
    # Alert types (as alerts name them, e.g. "Insufficient Licenses"); empty: every type.
    alert_types: AlertTypes = msgspec.field(default_factory=list)
    enabled: bool = True
    description: Description = ""


class WebhooksQuery(InAccount):
    pass


class InWebhook(InAccount):
    webhook: uuid.UUID


class WebhookUpdate(InWebhook):
    url: Url | None = None
    events: Events | None = None
    alert_types: AlertTypes | None = None
    enabled: bool | None = None
    description: Description | None = None


class DeliveriesQuery(InWebhook):
    limit: DeliveriesLimit = 50
    offset: Offset = 0


class WebhookOut(Response):
    id: uuid.UUID
    url: str
    events: list[str]
    alert_types: list[str]
    enabled: bool
    description: str
    created_at: dt.datetime
    updated_at: dt.datetime


class WebhookOne(Response):
    webhook: WebhookOut


class WebhookWithSecret(Response):
    webhook: WebhookOut
    # Shown this once: the receiver verifies signatures with it.
    secret: str


class WebhookList(Response):
    webhooks: list[WebhookOut]


class AttemptOut(Response):
    attempted_at: dt.datetime
    node: str
    status_code: int | None
    # Why it failed; for others than system admins only the kind ("cannot reach the
    # receiver"), not the detail, which may quote the receiver.
    error: str | None
    duration_ms: int
    # The start of the receiver's answer: for system admins only (null for others: an
    # account admin's webhook may point at an internal address, whose answer is not theirs).
    response_excerpt: str | None


class DeliveryOut(Response):
    id: int
    event: str
    state: DeliveryState
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None
    finished_at: dt.datetime | None
    attempts: list[AttemptOut]


class DeliveryList(Response):
    total_records: int
    deliveries: list[DeliveryOut]


class TestQueued(Response):
    delivery_id: int
    message: str


@operation(
    "POST",
    ACCOUNT + "/webhooks",
    "Create a webhook (the answer holds its secret, shown once)",
    tag="webhooks",
    access=WRITE,
    no_store=True,
)
async def create_webhook(
    services: Services, caller: Principal, request: WebhookCreate
) -> WebhookWithSecret:
    new = await services.webhooks.create(
        caller,
        request.account,
        url=request.url,
        events=list(request.events),
        alert_types=request.alert_types,
        enabled=request.enabled,
        description=request.description,
    )
    return WebhookWithSecret(webhook=webhook_out(new.webhook), secret=new.secret)


@operation("GET", ACCOUNT + "/webhooks", "Webhooks of an account", tag="webhooks", access=WRITE)
async def list_webhooks(
    services: Services, caller: Principal, request: WebhooksQuery
) -> WebhookList:
    found = await services.webhooks.list_webhooks(caller, request.account)
    return WebhookList(webhooks=[webhook_out(w) for w in found])


@operation("GET", WEBHOOK, "A webhook", tag="webhooks", access=WRITE)
async def get_webhook(services: Services, caller: Principal, request: InWebhook) -> WebhookOne:
    found = await services.webhooks.get(caller, request.account, request.webhook)
    return WebhookOne(webhook=webhook_out(found))


@operation(
    "POST",
    WEBHOOK + "/update",
    "Change a webhook's URL, events, alert types, description or enabled flag",
    tag="webhooks",
    access=WRITE,
)
async def update_webhook(
    services: Services, caller: Principal, request: WebhookUpdate
) -> WebhookOne:
    change = WebhookChange(
        url=request.url,
        events=None if request.events is None else list(request.events),
        alert_types=request.alert_types,
        enabled=request.enabled,
        description=request.description,
    )
    updated = await services.webhooks.update(caller, request.account, request.webhook, change)
    return WebhookOne(webhook=webhook_out(updated))


@operation("POST", WEBHOOK + "/delete", "Delete a webhook", tag="webhooks", access=WRITE)
async def delete_webhook(services: Services, caller: Principal, request: InWebhook) -> WebhookOne:
    deleted = await services.webhooks.delete(caller, request.account, request.webhook)
    return WebhookOne(webhook=webhook_out(deleted))


@operation(
    "POST",
    WEBHOOK + "/rotate-secret",
    "Give a webhook a new secret (the answer holds it, shown once)",
    tag="webhooks",
    access=WRITE,
    no_store=True,
)
async def rotate_webhook_secret(
    services: Services, caller: Principal, request: InWebhook
) -> WebhookWithSecret:
    new = await services.webhooks.rotate_secret(caller, request.account, request.webhook)
    return WebhookWithSecret(webhook=webhook_out(new.webhook), secret=new.secret)


@operation(
    "GET",
    WEBHOOK + "/deliveries",
    "A webhook's deliveries, newest first, each with its attempts",
    tag="webhooks",
    access=WRITE,
)
async def list_webhook_deliveries(
    services: Services, caller: Principal, request: DeliveriesQuery
) -> DeliveryList:
    total, found = await services.webhooks.deliveries(
        caller, request.account, request.webhook, request.limit, request.offset
    )
    return DeliveryList(
        total_records=total,
        deliveries=[
            delivery_out(d, attempts, excerpts=caller.is_system_admin) for d, attempts in found
        ],
    )


@operation(
    "POST",
    WEBHOOK + "/test",
    "Send a webhook.test delivery (its outcome is in the deliveries)",
    tag="webhooks",
    access=WRITE,
)
async def send_test_delivery(
    services: Services, caller: Principal, request: InWebhook
) -> TestQueued:
    delivery = await services.webhooks.send_test(caller, request.account, request.webhook)
    return TestQueued(
        delivery_id=delivery,
        message=f"test delivery {delivery} queued; the webhook's deliveries show its outcome",
    )


OPERATIONS = (
    create_webhook,
    list_webhooks,
    get_webhook,
    update_webhook,
    delete_webhook,
    rotate_webhook_secret,
    list_webhook_deliveries,
    send_test_delivery,
)


def webhook_out(webhook: Webhook) -> WebhookOut:
    return WebhookOut(
        id=webhook.public_id,
        url=webhook.url,
        events=webhook.events,
        alert_types=webhook.alert_types,
        enabled=webhook.enabled,
        description=webhook.description,
        created_at=webhook.created_at,
        updated_at=webhook.updated_at,
    )


def delivery_out(delivery: Delivery, attempts: list[Attempt], *, excerpts: bool) -> DeliveryOut:
    """``excerpts``: with what the receiver answered (the excerpt, the errors' details)."""
    return DeliveryOut(
        id=delivery.id,
        event=delivery.event,
        state=delivery.state,
        created_at=delivery.created_at,
        next_attempt_at=delivery.next_attempt_at if delivery.state == "pending" else None,
        finished_at=delivery.finished_at,
        attempts=[
            AttemptOut(
                attempted_at=a.attempted_at,
                node=a.node,
                status_code=a.status_code,
                error=a.error if excerpts else error_kind(a.error),
                duration_ms=a.duration_ms,
                response_excerpt=a.response_excerpt if excerpts else None,
            )
            for a in attempts
        ],
    )
