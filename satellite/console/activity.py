"""What happened, read-only: an account's alerts and the audit log, each through an
operation of ``satellite.api.activity`` with the session's principal (the operation
decides which accounts' alerts and events the caller sees)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from satellite.api import activity as api_activity
from satellite.api import licenses as api_licenses
from satellite.console import forms, i18n
from satellite.console.alert_text import alert_text, alert_type
from satellite.console.guard import Visit, render_page, secured, services, signed_in
from satellite.console.paging import page
from satellite.console.paths import account_path
from satellite.errors import InvalidInput

# One page of the audit log or alerts; the filters are kept on the next/previous links.
PAGE_SIZE = 25
FILTERS = ("account", "action", "actor", "since", "until")


@dataclass(frozen=True)
class AlertRow:
    """An alert as its page's row says it: its type and text in the page's language."""

    alert: api_activity.AlertOut
    type: str
    text: str


@signed_in
async def alerts(request: web.Request, visit: Visit) -> web.StreamResponse:
    """The account's open alerts (``?cleared=yes``: the cleared ones too), a page at a time
    as ``list_alerts`` counts and pages them, each said in the page's language."""
    account = request.match_info["account"]
    cleared = request.query.get("cleared", "") == "yes"
    path = account_path(account, "alerts")
    context: dict[str, Any] = {"account": account, "path": path, "cleared": cleared}
    try:
        offset = forms.offset(visit.language, request.query.get("offset", ""))
    except InvalidInput as exc:
        context.update(error=exc.detail, alerts=[])
        return render_page("alerts.html", request, visit.language, visit, 400, **context)
    answer = await api_activity.list_alerts(
        services(request),
        visit.principal,
        api_activity.AlertsQuery(
            account=account, include_cleared=cleared, limit=PAGE_SIZE, offset=offset
        ),
    )
    catalog = await api_licenses.catalog(
        services(request), visit.principal, api_licenses.CatalogQuery()
    )
    names = {entry.entitlement_tag: entry.display_name for entry in catalog.licenses}
    rows = [
        AlertRow(
            alert,
            alert_type(visit.language, alert.message_type),
            alert_text(visit.language, alert, names),
        )
        for alert in answer.alerts
    ]
    kept = {"cleared": "yes"} if cleared else {}
    context.update(
        error=None,
        alerts=rows,
        total=answer.total_records,
        **page(
            path,
            kept,
            offset=offset,
            size=PAGE_SIZE,
            shown=len(answer.alerts),
            more=offset + PAGE_SIZE < answer.total_records,
        ),
    )
    return render_page("alerts.html", request, visit.language, visit, **context)


def _moment(language: i18n.Language, text: str, field: str) -> dt.datetime | None:
    refusal = i18n.gettext(language, "Since and until are dates (YYYY-MM-DD).")
    return forms.moment(text, field, refusal)


@signed_in
async def events(request: web.Request, visit: Visit) -> web.StreamResponse:
    form = {name: request.query.get(name, "") for name in FILTERS}
    context: dict[str, Any] = {"form": form, "error": None}
    try:
        offset = forms.offset(visit.language, request.query.get("offset", ""))
        answer = await api_activity.list_events(
            services(request),
            visit.principal,
            api_activity.EventsQuery(
                account=form["account"].strip() or None,
                action=form["action"].strip() or None,
                actor=form["actor"].strip() or None,
                since=_moment(visit.language, form["since"], "since"),
                until=_moment(visit.language, form["until"], "until"),
                limit=PAGE_SIZE,
                offset=offset,
            ),
        )
    except InvalidInput as exc:
        # The services' words are English, as the API's problem documents are.
        context["error"] = exc.detail
        return render_page("events.html", request, visit.language, visit, 400, **context)
    kept = {name: value for name, value in form.items() if value}
    context.update(
        events=answer.events,
        total=answer.total_records,
        **page(
            "/events",
            kept,
            offset=offset,
            size=PAGE_SIZE,
            shown=len(answer.events),
            more=offset + PAGE_SIZE < answer.total_records,
        ),
    )
    return render_page("events.html", request, visit.language, visit, **context)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/accounts/{account}/alerts", secured(alerts)),
        web.get("/events", secured(events)),
    ]
