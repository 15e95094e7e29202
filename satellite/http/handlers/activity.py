"""Alerts of an account and the audit log."""

from __future__ import annotations

from aiohttp import web

from satellite.http.auth import caller
from satellite.http.body import read_json, read_query, render
from satellite.http.keys import SERVICES
from satellite.http.views import alert_out, event_out
from satellite.http.wire import (
    AlertList,
    AlertsQuery,
    EventList,
    EventsQuery,
)
from satellite.services.events import EventFilter


async def list_alerts(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request, AlertsQuery)
    alerts = await request.app[SERVICES].alerts.list_alerts(
        principal,
        request.match_info["account"],
        body.limit,
        body.include_cleared,
        offset=body.offset,
    )
    return render(AlertList(alerts=[alert_out(a) for a in alerts]))


async def list_events(request: web.Request) -> web.Response:
    principal = await caller(request)
    if request.method == "GET":
        query = read_query(request, EventsQuery)
    else:
        query = await read_json(request, EventsQuery)
    total, events = await request.app[SERVICES].events.list_events(
        principal,
        EventFilter(
            account=query.account,
            action=query.action,
            actor=query.actor,
            since=query.since,
            until=query.until,
            limit=query.limit,
            offset=query.offset,
        ),
    )
    return render(EventList(total_records=total, events=[event_out(e) for e in events]))
