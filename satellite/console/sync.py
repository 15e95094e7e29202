"""An account's sync with its upstream, the satellite's side: status and history,
registering (connected mode) and unlinking, "sync now", and in disconnected mode the sync
request downloaded and the upstream's answer uploaded, each through an operation of
``satellite.api.sync`` with the session's principal."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from satellite.api import sync as api_sync
from satellite.api.scopes import InAccount
from satellite.console import files, i18n
from satellite.console.guard import (
    Visit,
    form_field,
    render_page,
    secured,
    see_other,
    services,
    signed_in,
)
from satellite.errors import Conflict, InvalidInput, PayloadTooLarge, SatelliteError, UpstreamError

# The refusals a sync page shows with the operation's words, and their status (as the
# API's problem documents have it); access refusals are the guard's.
REFUSALS: tuple[tuple[type[SatelliteError], int], ...] = (
    (PayloadTooLarge, 413),
    (InvalidInput, 400),
    (Conflict, 409),
    (UpstreamError, 502),
)
SHOWN = tuple(kind for kind, _ in REFUSALS)
MAX_NUMBER = 18  # digits of an offset: within the API's Offset range


def refusal_status(exc: SatelliteError) -> int:
    return next(status for kind, status in REFUSALS if isinstance(exc, kind))


def sync_path(account: str) -> str:
    return f"/accounts/{quote(account, safe='')}/sync"


def offset_field(language: i18n.Language, text: str, field: str) -> int:
    """A paging offset of a query string: empty is 0; anything but digits is refused."""
    text = text.strip()
    if not text:
        return 0
    if not text.isdigit() or len(text) > MAX_NUMBER:
        raise InvalidInput(i18n.gettext(language, "The offset is a whole number."), field=field)
    return int(text)


async def _sync_page(
    request: web.Request,
    visit: Visit,
    status: int = 200,
    *,
    error: str | None = None,
    result: api_sync.SyncResultOut | None = None,
    history_offset: int = 0,
) -> web.Response:
    account = request.match_info["account"]
    answer = await api_sync.sync_status(
        services(request),
        visit.principal,
        api_sync.SyncStatusQuery(account=account, history_offset=history_offset),
    )
    path = sync_path(account)
    shown = history_offset + len(answer.history)
    back = max(history_offset - api_sync.HISTORY_PAGE, 0)
    context: dict[str, Any] = {
        "account": account,
        "path": path,
        "sync": answer,
        "previous": f"{path}?{urlencode({'history_offset': back})}" if history_offset > 0 else None,
        "next": f"{path}?{urlencode({'history_offset': shown})}"
        if shown < answer.history_total
        else None,
        # Every write of this page is one of an account admin (WRITE): one check for all.
        "may_write": api_sync.sync_now.access.allows(visit.principal.role),
        "error": error,
        "result": result,
    }
    return render_page("sync.html", request, visit.language, visit, status, **context)


@signed_in
async def sync_page(request: web.Request, visit: Visit) -> web.StreamResponse:
    try:
        offset = offset_field(
            visit.language, request.query.get("history_offset", ""), "history_offset"
        )
    except InvalidInput as exc:
        return await _sync_page(request, visit, 400, error=exc.detail)
    return await _sync_page(request, visit, history_offset=offset)


@signed_in
async def register(request: web.Request, visit: Visit) -> web.StreamResponse:
    account = request.match_info["account"]
    name = (await form_field(request, "name")).strip()
    fingerprint = (await form_field(request, "upstream_fingerprint")).strip()
    try:
        await api_sync.sync_register(
            services(request),
            visit.principal,
            api_sync.SyncRegister(
                account=account,
                upstream=(await form_field(request, "upstream")).strip(),
                token=(await form_field(request, "token")).strip(),
                name=name or None,
                upstream_fingerprint=fingerprint or None,
            ),
        )
    except SHOWN as exc:
        # The services' words are English, as the API's problem documents are.
        return await _sync_page(request, visit, refusal_status(exc), error=exc.detail)
    return see_other(sync_path(account))


@signed_in
async def unregister(request: web.Request, visit: Visit) -> web.StreamResponse:
    account = request.match_info["account"]
    try:
        await api_sync.sync_unregister(
            services(request), visit.principal, InAccount(account=account)
        )
    except SHOWN as exc:
        return await _sync_page(request, visit, refusal_status(exc), error=exc.detail)
    return see_other(sync_path(account))


@signed_in
async def sync_now(request: web.Request, visit: Visit) -> web.StreamResponse:
    account = request.match_info["account"]
    try:
        result = await api_sync.sync_now(
            services(request), visit.principal, InAccount(account=account)
        )
    except SHOWN as exc:
        return await _sync_page(request, visit, refusal_status(exc), error=exc.detail)
    return await _sync_page(request, visit, result=result)


@signed_in
async def download_request(request: web.Request, visit: Visit) -> web.StreamResponse:
    """A POST (with the form's CSRF token), not a link: writing a request takes the next
    sequence number."""
    account = request.match_info["account"]
    spooled = await api_sync.download_request(
        services(request), visit.principal, api_sync.SyncRequestQuery(account=account)
    )
    try:
        return await files.send_spooled(request, spooled)
    except SHOWN as exc:  # (raised by writing it, before anything is sent)
        return await _sync_page(request, visit, refusal_status(exc), error=exc.detail)


@signed_in
async def upload_answer(request: web.Request, visit: Visit) -> web.StreamResponse:
    account = request.match_info["account"]
    upload = await files.file_part(request, visit.language, "answer")
    if upload is None:
        no_file = i18n.gettext(visit.language, "Choose the file to upload.")
        return await _sync_page(request, visit, 400, error=no_file)
    try:
        result = await api_sync.upload_answer(
            services(request),
            visit.principal,
            api_sync.SyncAnswerUpload(account=account, answer=upload),
        )
    except SHOWN as exc:
        return await _sync_page(request, visit, refusal_status(exc), error=exc.detail)
    return await _sync_page(request, visit, result=result)


def routes() -> list[web.RouteDef]:
    base = "/accounts/{account}/sync"
    return [
        web.get(base, secured(sync_page)),
        web.post(base + "/register", secured(register)),
        web.post(base + "/unregister", secured(unregister)),
        web.post(base + "/now", secured(sync_now)),
        web.post(base + "/request", secured(download_request)),
        web.post(base + "/answer", secured(upload_answer)),
    ]
