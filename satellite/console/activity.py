"""What happened, read-only: an account's alerts and the audit log, each through an
operation of ``satellite.api.activity`` with the session's principal (the operation
decides which accounts' alerts and events the caller sees)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from satellite.api import activity as api_activity
from satellite.console import forms, i18n
from satellite.console.guard import Visit, render_page, secured, services, signed_in
from satellite.errors import InvalidInput

# One page of the audit log; the form's filters are kept on the next/previous links.
PAGE_SIZE = 25
FILTERS = ("account", "action", "actor", "since", "until")


@signed_in
async def alerts(request: web.Request, visit: Visit) -> web.StreamResponse:
    account = request.match_info["account"]
    answer = await api_activity.list_alerts(
        services(request), visit.principal, api_activity.AlertsQuery(account=account)
    )
    return render_page(
        "alerts.html", request, visit.language, visit, account=account, alerts=answer.alerts
    )


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
        first=offset + 1,
        last=offset + len(answer.events),
        previous=_page_link(kept, max(offset - PAGE_SIZE, 0)) if offset > 0 else None,
        next=_page_link(kept, offset + PAGE_SIZE)
        if offset + PAGE_SIZE < answer.total_records
        else None,
    )
    return render_page("events.html", request, visit.language, visit, **context)


def _page_link(kept: dict[str, str], offset: int) -> str:
    return "/events?" + urlencode({**kept, "offset": str(offset)})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/accounts/{account}/alerts", secured(alerts)),
        web.get("/events", secured(events)),
    ]
