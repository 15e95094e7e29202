"""What happened: an account's alerts and the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec

from satellite.api.context import Services
from satellite.api.operation import ANYONE, READ, operation
from satellite.api.paths import ACCOUNT
from satellite.api.scopes import InAccount
from satellite.api.types import Limit, Name, Offset, Request, Response
from satellite.domain.access import Principal
from satellite.domain.alerts import ALERT_DETAILS, AlertDetails
from satellite.domain.models import Alert, Event, Severity
from satellite.services.events import EventFilter


class AlertsQuery(InAccount):
    limit: Limit = 100
    offset: Offset = 0
    include_cleared: bool = False


class AlertOut(Response):
    message_type: str
    severity: Severity
    source: str
    message: str
    details: AlertDetails | None
    virtual_account: str | None
    created_at: dt.datetime
    cleared_at: dt.datetime | None


class AlertList(Response):
    total_records: int
    alerts: list[AlertOut]


class EventsQuery(Request):
    # A filter, not a scope: without it the caller gets the events of every account it sees.
    account: Name | None = None
    action: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    actor: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: Limit = 100
    offset: Offset = 0


class EventOut(Response):
    id: int
    occurred_at: dt.datetime
    account: str | None
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    request_id: str | None


class EventList(Response):
    total_records: int
    events: list[EventOut]


ALERTS_DESCRIPTION = (
    "Each alert has its `message` in English and its `details`: the values the message is "
    "made of (text or integers; dates as YYYY-MM-DD, `tag` an entitlement tag), so that a "
    "reader can say it in another language. `details` is null for an alert raised before "
    "alerts kept them. The keys of each `messageType`: "
    + "; ".join(f"{kind}: {', '.join(sorted(keys))}" for kind, keys in ALERT_DETAILS.items())
    + "."
)


@operation(
    "POST",
    ACCOUNT + "/alerts",
    "Alerts of an account",
    tag="alerts",
    access=READ,
    description=ALERTS_DESCRIPTION,
)
async def list_alerts(services: Services, caller: Principal, request: AlertsQuery) -> AlertList:
    total, alerts = await services.alerts.list_alerts(
        caller, request.account, request.limit, request.include_cleared, offset=request.offset
    )
    return AlertList(total_records=total, alerts=[alert_out(a) for a in alerts])


async def _events(services: Services, caller: Principal, request: EventsQuery) -> EventList:
    total, events = await services.events.list_events(
        caller,
        EventFilter(
            account=request.account,
            action=request.action,
            actor=request.actor,
            since=request.since,
            until=request.until,
            limit=request.limit,
            offset=request.offset,
        ),
    )
    return EventList(total_records=total, events=[event_out(e) for e in events])


# The service shows each caller the events of the accounts it sees (a named account it
# does not see is missing), so the operation is open to any caller.
@operation("GET", "/events", "Audit log (query parameters filter)", tag="events", access=ANYONE)
async def list_events(services: Services, caller: Principal, request: EventsQuery) -> EventList:
    return await _events(services, caller, request)


@operation("POST", "/events", "Audit log (body filters)", tag="events", access=ANYONE)
async def search_events(services: Services, caller: Principal, request: EventsQuery) -> EventList:
    return await _events(services, caller, request)


OPERATIONS = (list_alerts, list_events, search_events)


def alert_out(alert: Alert) -> AlertOut:
    return AlertOut(
        message_type=alert.message_type,
        severity=alert.severity,
        source=alert.source,
        message=alert.message,
        details=alert.details,
        virtual_account=alert.virtual_account,
        created_at=alert.created_at,
        cleared_at=alert.cleared_at,
    )


def event_out(event: Event) -> EventOut:
    return EventOut(
        id=event.id,
        occurred_at=event.occurred_at,
        account=event.account,
        actor=event.actor,
        action=event.action,
        target=event.target,
        details=event.details,
        request_id=event.request_id,
    )
