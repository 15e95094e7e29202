"""An account's sync with its upstream, the satellite's side: status and history,
registering (online, or by files: the registration request downloaded and the upstream's
registration answer uploaded), switching the mode, unlinking, "sync now", and in
disconnected mode the sync request downloaded and the upstream's answer uploaded, each
through an operation of ``satellite.api.sync`` with the session's principal."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from satellite.api import sync as api_sync
from satellite.api.scopes import InAccount
from satellite.console import files, forms, i18n
from satellite.console.guard import (
    Visit,
    form_field,
    render_page,
    secured,
    see_other,
    services,
    signed_in,
)
from satellite.console.paging import page
from satellite.console.paths import account_path
from satellite.console.refusals import SHOWN, refusal_status
from satellite.errors import InvalidInput

# The refusals a sync page shows with the operation's words, and their status (as the
# API's problem documents have it); access refusals are the guard's.
MAX_FIELD_BYTES = 1024  # of a text field of an upload form (the operation allows less)


def sync_path(account: str) -> str:
    return account_path(account, "sync")


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
    context: dict[str, Any] = {
        "account": account,
        "path": path,
        "sync": answer,
        **page(
            path,
            {},
            offset=history_offset,
            size=api_sync.HISTORY_PAGE,
            shown=len(answer.history),
            more=history_offset + len(answer.history) < answer.history_total,
            key="history_offset",
        ),
        # Each form is shown to those its own operation allows.
        "may": {
            op.name: op.access.allows(visit.principal.role)
            for op in (
                api_sync.sync_register,
                api_sync.request_registration,
                api_sync.complete_registration,
                api_sync.sync_connect,
                api_sync.sync_unregister,
                api_sync.sync_now,
                api_sync.download_request,
                api_sync.upload_answer,
            )
        },
        "error": error,
        "result": result,
    }
    return render_page("sync.html", request, visit.language, visit, status, **context)


@signed_in
async def sync_page(request: web.Request, visit: Visit) -> web.StreamResponse:
    try:
        offset = forms.offset(
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
async def request_registration(request: web.Request, visit: Visit) -> web.StreamResponse:
    """Registration by files, first step: the request file, to carry to the upstream."""
    account = request.match_info["account"]
    name = (await form_field(request, "name")).strip()
    upstream = (await form_field(request, "upstream")).strip()
    try:
        answer = await api_sync.request_registration(
            services(request),
            visit.principal,
            api_sync.RegistrationRequestIn(
                account=account,
                token=(await form_field(request, "token")).strip(),
                name=name or None,
                upstream=upstream or None,
            ),
        )
    except SHOWN as exc:
        return await _sync_page(request, visit, refusal_status(exc), error=exc.detail)
    return files.download(answer)


@signed_in
async def complete_registration(request: web.Request, visit: Visit) -> web.StreamResponse:
    """Registration by files, last step: the upstream's answer (multipart: the CSRF part,
    the fingerprint, then the file)."""
    account = request.match_info["account"]
    fingerprint = await files.text_part(request, "upstream_fingerprint", MAX_FIELD_BYTES)
    upload = (
        await files.file_part(request, visit.language, "answer")
        if fingerprint is not None
        else None
    )
    if fingerprint is None or upload is None:
        no_file = i18n.gettext(visit.language, "Choose the file to upload.")
        return await _sync_page(request, visit, 400, error=no_file)
    try:
        await api_sync.complete_registration(
            services(request),
            visit.principal,
            api_sync.RegistrationAnswerUpload(
                account=account, answer=upload, upstream_fingerprint=fingerprint.strip() or None
            ),
        )
    except SHOWN as exc:
        return await _sync_page(request, visit, refusal_status(exc), error=exc.detail)
    return see_other(sync_path(account))


@signed_in
async def connect(request: web.Request, visit: Visit) -> web.StreamResponse:
    """Connected mode (the form's upstream URL) or disconnected (an empty one)."""
    account = request.match_info["account"]
    upstream = (await form_field(request, "upstream")).strip()
    try:
        await api_sync.sync_connect(
            services(request),
            visit.principal,
            api_sync.SyncConnect(account=account, upstream=upstream or None),
        )
    except SHOWN as exc:
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
        web.post(base + "/registration-request", secured(request_registration)),
        web.post(base + "/registration-answer", secured(complete_registration)),
        web.post(base + "/connect", secured(connect)),
        web.post(base + "/unregister", secured(unregister)),
        web.post(base + "/now", secured(sync_now)),
        web.post(base + "/request", secured(download_request)),
        web.post(base + "/answer", secured(upload_answer)),
    ]
