"""What every console answer gets: the security headers, the session of signed-in pages,
the CSRF check of every POST, and domain errors shown as a page (not a problem document:
a browser shows this to a person)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp_jinja2
import structlog
from aiohttp import web
from aiohttp.web_urldispatcher import AbstractResource
from yarl import URL

from satellite.api.context import Services
from satellite.console import files, forms, i18n
from satellite.console.headers import SECURITY_HEADERS
from satellite.crypto.secrets import digests_equal, random_secret
from satellite.domain.access import Principal
from satellite.errors import (
    UNAVAILABLE_RETRY_AFTER,
    DatabaseBusy,
    DatabaseUnavailable,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
)

log = structlog.get_logger(__name__)

SESSION_COOKIE = "satellite_session"
# Before sign-in there is no session to hold the CSRF secret: the sign-in form's token is
# also in this cookie, and the two must match (a cross-site page can set neither).
SIGN_IN_CSRF_COOKIE = "satellite_csrf"
SERVICES = web.AppKey("console_services", Services)
# The console's own routes' resources (``refusals_as_pages`` answers for these alone).
PAGES = web.AppKey("console_pages", frozenset[AbstractResource])

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Visit:
    """A signed-in request: who, with which session and CSRF token, in which language."""

    principal: Principal
    session_id: str
    csrf_token: str
    language: i18n.Language


SignedInHandler = Callable[[web.Request, Visit], Awaitable[web.StreamResponse]]


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str) -> None:
    response.set_cookie(
        name, value, path="/", httponly=True, samesite="Strict", secure=request.secure
    )


def secured(handler: Handler) -> Handler:
    """The headers every console answer carries, the language cookie when ``?lang=``
    chose it, and a page (503, Retry-After) when the database cannot be reached."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            response = await handler(request)
        except (DatabaseUnavailable, DatabaseBusy):
            # A page for a person, not the API's problem document: nothing was done.
            log.warning("console.database_unavailable", method=request.method)
            message = i18n.gettext(
                i18n.choose(request)[0],
                "The database is not available at the moment; nothing was changed. "
                "Try again in a few seconds.",
            )
            response = error_page(request, None, 503, message)
            response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
            response.headers["Cache-Control"] = "no-store"
        return _with_headers(request, response)

    return wrapped


def _with_headers(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    language, chosen = i18n.choose(request)
    if chosen:
        set_cookie(request, response, i18n.LANG_COOKIE, language.tag)
    response.headers.update(SECURITY_HEADERS)
    return response


@web.middleware
async def refusals_as_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bad input a console page did not show itself (a path or query the HTTP layer
    refuses before any handler, with U+0000 in it; a name longer than an operation takes;
    a form that cannot be read) is a page with its status, not the API's problem document:
    a browser shows it to a person. Nothing was done. So is a path no route has (404) or a
    method its route does not take (405), when a browser asks for it as a page. (Placed
    inside the problem documents' middleware and outside the HTTP layer's checks of
    parameters.)"""
    unmatched = request.match_info.http_exception
    if unmatched is not None and _wants_a_page(request):
        return _with_headers(request, _no_such_page(request, unmatched))
    if request.match_info.route.resource not in request.app.get(PAGES, ()):
        return await handler(request)
    try:
        return await handler(request)
    except InvalidInput as exc:
        status = 413 if isinstance(exc, PayloadTooLarge) else 400
        log.info("console.input_refused", status=status, field=exc.field)
        response = error_page(request, None, status, exc.detail)
        response.headers["Cache-Control"] = "no-store"
        return _with_headers(request, response)


# Addresses of machines' protocols: their unknown paths stay problem documents whoever asks.
_MACHINE_PREFIXES = ("/api/", "/backend/", "/device/", "/sync/", "/healthz", "/readyz")


def _wants_a_page(request: web.Request) -> bool:
    """A browser's navigation (it asks for HTML) to a path of none of the machines'
    protocols: a person typed or followed it."""
    return "text/html" in request.headers.get("Accept", "") and not request.path.startswith(
        _MACHINE_PREFIXES
    )


def _no_such_page(request: web.Request, unmatched: web.HTTPException) -> web.Response:
    language = i18n.choose(request)[0]
    if unmatched.status == 405:
        message = i18n.gettext(language, "This page does not answer this kind of request.")
    else:
        message = i18n.gettext(language, "Not found.")
    response = error_page(request, None, unmatched.status, message)
    if "Allow" in unmatched.headers:
        response.headers["Allow"] = unmatched.headers["Allow"]
    response.headers["Cache-Control"] = "no-store"
    return response


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def tokens_match(presented: str, expected: str) -> bool:
    return digests_equal(presented.encode(), expected.encode())


async def form_field(request: web.Request, name: str) -> str:
    value = (await forms.posted(request)).get(name)
    return value if isinstance(value, str) else ""


async def posted_csrf(request: web.Request) -> str:
    """The form's CSRF token; of a form uploading a file, its first part (the file is left
    unread for the page: ``files``)."""
    if files.is_multipart(request):
        return await files.csrf_part(request)
    return await form_field(request, "csrf")


def new_csrf() -> str:
    return random_secret(32)


def render_page(
    template: str,
    request: web.Request,
    language: i18n.Language,
    visit: Visit | None,
    status: int = 200,
    **context: object,
) -> web.Response:
    """A page in ``language``. Its language links stay on the page for a GET, with the
    page's query (filters, paging); the answer to a POST links to a page one can GET (the
    sign-in form, else the start page)."""
    if request.method == "GET":
        here = request.rel_url.with_query(
            [(key, value) for key, value in request.query.items() if key != "lang"]
        )
    else:
        here = URL("/sign-in" if request.path == "/sign-in" else "/")
    links = {tag: str(here.update_query(lang=tag)) for tag in i18n.LANGUAGES}
    return aiohttp_jinja2.render_template(
        template,
        request,
        {"language": language, "visit": visit, "language_links": links} | context,
        status=status,
    )


def error_page(
    request: web.Request, visit: Visit | None, status: int, message: str
) -> web.Response:
    language = visit.language if visit else i18n.choose(request)[0]
    return render_page("error.html", request, language, visit, status, message=message)


def signed_in(handler: SignedInHandler) -> Handler:
    """A page for signed-in users: no session (or an ended one) goes to the sign-in page;
    a POST without the session's CSRF token is refused (403); refusals of the operations
    are shown as a page with their status."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        session_id = request.cookies.get(SESSION_COOKIE, "")
        live = await services(request).sessions.resume(session_id) if session_id else None
        if live is None:
            # htmx follows a redirect and swaps in what it leads to: told to, it goes there.
            hx = request.headers.get("HX-Request") == "true"
            away = (
                web.Response(headers={"HX-Redirect": "/sign-in"}) if hx else see_other("/sign-in")
            )
            if session_id:
                away.del_cookie(SESSION_COOKIE, path="/")
            return away
        visit = Visit(live.principal, session_id, live.csrf_token, i18n.choose(request)[0])
        response: web.StreamResponse
        if request.method == "POST" and not tokens_match(
            await posted_csrf(request), live.csrf_token
        ):
            log.warning("console.csrf_refused", login=live.principal.login)
            response = error_page(
                request,
                visit,
                403,
                i18n.gettext(
                    visit.language, "The form has expired. Go back, reload the page and try again."
                ),
            )
        else:
            try:
                response = await handler(request, visit)
            except Forbidden:
                response = error_page(
                    request, visit, 403, i18n.gettext(visit.language, "You may not do this.")
                )
            except NotFound:
                response = error_page(
                    request, visit, 404, i18n.gettext(visit.language, "Not found.")
                )
        response.headers["Cache-Control"] = "no-store"
        return response

    return wrapped
