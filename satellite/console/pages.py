"""The console's pages: each parses the form or path, calls one operation with the
session's principal (so access is the operation's declared one) and renders."""

from __future__ import annotations

import structlog
from aiohttp import web

from satellite.console import accounts as account_pages
from satellite.console import activity as activity_pages
from satellite.console import export_keys as export_key_pages
from satellite.console import i18n
from satellite.console import licenses as license_pages
from satellite.console import principals as principal_pages
from satellite.console import product_instances as instance_pages
from satellite.console import reservations as reservation_pages
from satellite.console import satellites as satellite_pages
from satellite.console import sync as sync_pages
from satellite.console import tokens as token_pages
from satellite.console import virtual_accounts as virtual_account_pages
from satellite.console.guard import (
    SESSION_COOKIE,
    SIGN_IN_CSRF_COOKIE,
    Visit,
    form_field,
    new_csrf,
    render_page,
    secured,
    see_other,
    services,
    set_cookie,
    signed_in,
    tokens_match,
)
from satellite.errors import InvalidGrant, TooManyAttempts

log = structlog.get_logger(__name__)

# The longest user name (a name) and password (the API's ``Password``) a user can have.
MAX_USERNAME = 100
MAX_PASSWORD = 1024


async def index(request: web.Request) -> web.StreamResponse:
    session_id = request.cookies.get(SESSION_COOKIE, "")
    live = await services(request).sessions.resume(session_id) if session_id else None
    return see_other("/accounts" if live else "/sign-in")


def _sign_in_form(
    request: web.Request, language: i18n.Language, error: str | None, status: int
) -> web.Response:
    csrf = new_csrf()
    response = render_page("sign_in.html", request, language, None, status, csrf=csrf, error=error)
    set_cookie(request, response, SIGN_IN_CSRF_COOKIE, csrf)
    response.headers["Cache-Control"] = "no-store"
    return response


async def sign_in_form(request: web.Request) -> web.StreamResponse:
    return _sign_in_form(request, i18n.choose(request)[0], None, 200)


async def sign_in(request: web.Request) -> web.StreamResponse:
    language = i18n.choose(request)[0]
    expected = request.cookies.get(SIGN_IN_CSRF_COOKIE, "")
    if not expected or not tokens_match(await form_field(request, "csrf"), expected):
        log.warning("console.csrf_refused", login=None)
        message = i18n.gettext(
            language, "The form has expired. Go back, reload the page and try again."
        )
        return _sign_in_form(request, language, message, 403)
    username = await form_field(request, "username")
    password = await form_field(request, "password")
    try:
        if len(username) > MAX_USERNAME or len(password) > MAX_PASSWORD:
            # No user has such a name or password: not worth an argon2 check of a megabyte.
            raise InvalidGrant(field="password")
        new = await services(request).sessions.sign_in(username, password, request.remote)
    except InvalidGrant:
        wrong = i18n.gettext(language, "The user name or password is wrong.")
        return _sign_in_form(request, language, wrong, 401)
    except TooManyAttempts as exc:
        many = i18n.gettext(language, "Too many attempts. Wait %(seconds)s seconds.")
        response = _sign_in_form(request, language, many % {"seconds": exc.retry_after}, 429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    response = see_other("/accounts")
    set_cookie(request, response, SESSION_COOKIE, new.session_id)
    response.del_cookie(SIGN_IN_CSRF_COOKIE, path="/")
    return response


@signed_in
async def sign_out(request: web.Request, visit: Visit) -> web.StreamResponse:
    await services(request).sessions.sign_out(visit.principal, visit.session_id)
    response = see_other("/sign-in")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def routes() -> list[web.RouteDef]:
    return [
        web.get("/", secured(index)),
        web.get("/sign-in", secured(sign_in_form)),
        web.post("/sign-in", secured(sign_in)),
        web.post("/sign-out", secured(sign_out)),
        *account_pages.routes(),
        *token_pages.routes(),
        *activity_pages.routes(),
        *principal_pages.routes(),
        *reservation_pages.routes(),
        *export_key_pages.routes(),
        *instance_pages.routes(),
        *virtual_account_pages.routes(),
        *license_pages.routes(),
        *sync_pages.routes(),
        *satellite_pages.routes(),
    ]
