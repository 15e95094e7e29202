"""The upstream's side of sync: an account's satellites and what they reported, its
satellite registration tokens (create, copy, revoke), revoking a satellite, and answering
a sync request an operator carried in as a file, each through an operation of
``satellite.api.upstream`` with the session's principal."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from satellite.api import upstream as api_upstream
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
from satellite.console.paths import account_path, item_path
from satellite.console.refusals import SHOWN, refusal_status
from satellite.errors import Forbidden, InvalidInput, NotFound

PAGE_SIZE = 50  # products of a satellite, a page


def satellites_path(account: str) -> str:
    return account_path(account, "satellites")


async def _satellites_page(
    request: web.Request,
    visit: Visit,
    status: int = 200,
    *,
    error: str | None = None,
    created: api_upstream.SatelliteTokenOut | None = None,
) -> web.Response:
    account = request.match_info["account"]
    listed = await api_upstream.list_satellites(
        services(request), visit.principal, api_upstream.SatellitesQuery(account=account)
    )
    tokens = await api_upstream.list_satellite_tokens(
        services(request), visit.principal, api_upstream.SatelliteTokensQuery(account=account)
    )
    key = await api_upstream.upstream_fingerprint(
        services(request), visit.principal, api_upstream.FingerprintQuery()
    )
    context: dict[str, Any] = {
        "account": account,
        "path": satellites_path(account),
        "fingerprint": key.fingerprint,
        "satellites": listed.satellites,
        "tokens": tokens.satellite_tokens,
        "may_create": api_upstream.create_satellite_token.access.allows(visit.principal.role),
        "may_revoke_token": api_upstream.revoke_satellite_token.access.allows(visit.principal.role),
        "may_revoke": api_upstream.revoke_satellite.access.allows(visit.principal.role),
        "error": error,
        "created": created,
    }
    return render_page("satellites.html", request, visit.language, visit, status, **context)


@signed_in
async def satellites(request: web.Request, visit: Visit) -> web.StreamResponse:
    return await _satellites_page(request, visit)


def _days(language: i18n.Language, text: str) -> int | None:
    refusal = i18n.gettext(language, "The expiry is a whole number of days.")
    return forms.whole_number(text, "expires_days", refusal)


@signed_in
async def create_token(request: web.Request, visit: Visit) -> web.StreamResponse:
    account = request.match_info["account"]
    try:
        created = await api_upstream.create_satellite_token(
            services(request),
            visit.principal,
            api_upstream.SatelliteTokenCreate(
                account=account,
                description=await form_field(request, "description"),
                expires_days=_days(visit.language, await form_field(request, "expires_days")),
            ),
        )
    except SHOWN as exc:
        # The services' words are English, as the API's problem documents are.
        return await _satellites_page(request, visit, refusal_status(exc), error=exc.detail)
    return await _satellites_page(request, visit, created=created)


@signed_in
async def revoke_token(request: web.Request, visit: Visit) -> web.StreamResponse:
    account = request.match_info["account"]
    try:
        await api_upstream.revoke_satellite_token(
            services(request),
            visit.principal,
            api_upstream.SatelliteTokenRevoke(
                account=account, token=await form_field(request, "token")
            ),
        )
    except SHOWN as exc:
        return await _satellites_page(request, visit, refusal_status(exc), error=exc.detail)
    except NotFound as exc:
        # The account exists (else the list below is a 404 too): the token is not its.
        return await _satellites_page(request, visit, 404, error=exc.detail)
    return see_other(satellites_path(account))


@signed_in
async def revoke_satellite(request: web.Request, visit: Visit) -> web.StreamResponse:
    account, satellite = request.match_info["account"], request.match_info["satellite"]
    try:
        await api_upstream.revoke_satellite(
            services(request),
            visit.principal,
            api_upstream.SatelliteIn(account=account, satellite=satellite),
        )
    except SHOWN as exc:
        return await _satellites_page(request, visit, refusal_status(exc), error=exc.detail)
    except NotFound as exc:
        return await _satellites_page(request, visit, 404, error=exc.detail)
    return see_other(satellites_path(account))


@signed_in
async def satellite(request: web.Request, visit: Visit) -> web.StreamResponse:
    account, satellite_id = request.match_info["account"], request.match_info["satellite"]
    try:
        offset = forms.offset(visit.language, request.query.get("offset", ""))
    except InvalidInput as exc:
        return render_page("error.html", request, visit.language, visit, 400, message=exc.detail)
    mirror = await api_upstream.satellite_products(
        services(request),
        visit.principal,
        api_upstream.SatelliteProductsQuery(
            account=account, satellite=satellite_id, limit=PAGE_SIZE + 1, offset=offset
        ),
    )
    here = item_path(satellites_path(account), satellite_id)
    products = mirror.products[:PAGE_SIZE]
    context: dict[str, Any] = {
        "account": account,
        "path": satellites_path(account),
        "mirror": mirror,
        "products": products,
        **page(
            here,
            {},
            offset=offset,
            size=PAGE_SIZE,
            shown=len(products),
            more=len(mirror.products) > PAGE_SIZE,
        ),
    }
    return render_page("satellite.html", request, visit.language, visit, **context)


def _answer_page(
    request: web.Request, visit: Visit, status: int = 200, error: str | None = None
) -> web.Response:
    # Whose account a request is, only its file says (the operation checks that the user
    # may change it); a viewer may change none: no form to fill in for nothing.
    may_answer = api_upstream.ANSWERED_BY.allows(visit.principal.role)
    return render_page(
        "sync_answer.html",
        request,
        visit.language,
        visit,
        status,
        error=error,
        may_answer=may_answer,
    )


@signed_in
async def answer_form(request: web.Request, visit: Visit) -> web.StreamResponse:
    return _answer_page(request, visit)


@signed_in
async def answer(request: web.Request, visit: Visit) -> web.StreamResponse:
    """The satellite's request in, the answer out as a download; a refusal is the form
    again with the operation's words (the account is known from the file alone, so a
    file of an account the user may not change is refused in those words too)."""
    upload = await files.file_part(request, visit.language, "bundle")
    error: str
    status: int
    if upload is None:
        error, status = i18n.gettext(visit.language, "Choose the file to upload."), 400
    else:
        try:
            answered = await api_upstream.answer_upload(
                services(request), visit.principal, api_upstream.SyncRequestUpload(bundle=upload)
            )
            return files.download(answered)
        except SHOWN as exc:
            error, status = exc.detail, refusal_status(exc)
        except (Forbidden, NotFound) as exc:
            error, status = exc.detail, 403 if isinstance(exc, Forbidden) else 404
    return _answer_page(request, visit, status, error)


def routes() -> list[web.RouteDef]:
    base = "/accounts/{account}/satellites"
    return [
        web.get(base, secured(satellites)),
        web.post(base + "/tokens", secured(create_token)),
        web.post(base + "/tokens/revoke", secured(revoke_token)),
        web.get(base + "/{satellite}", secured(satellite)),
        web.post(base + "/{satellite}/revoke", secured(revoke_satellite)),
        web.get("/sync-answer", secured(answer_form)),
        web.post("/sync-answer", secured(answer)),
    ]
