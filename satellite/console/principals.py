"""The users and API clients pages (system admins write): the lists, create, disable and
set a password, each through an operation of ``satellite.api.principals`` with the
session's principal. A new client's secret is on the answer page of its creation only
(signed-in pages are never cached); no password or secret is ever in a list or a URL."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from satellite.api import accounts as api_accounts
from satellite.api import principals as api_principals
from satellite.console import forms, i18n
from satellite.console.guard import Visit, render_page, secured, see_other, services, signed_in
from satellite.console.refusals import refusal_status
from satellite.domain.access import ROLES, Principal, Role
from satellite.errors import Conflict, InvalidInput, NotFound

Form = forms.Form


def lists_allowed(principal: Principal) -> dict[str, bool]:
    """Which of the two lists the header links, as their operations allow."""
    return {
        "users": api_principals.list_users.access.allows(principal.role),
        "clients": api_principals.list_clients.access.allows(principal.role),
    }


def _text(form: Form, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _role(language: i18n.Language, form: Form) -> Role:
    text = _text(form, "role")
    for role in ROLES:
        if role == text:
            return role
    raise InvalidInput(i18n.gettext(language, "Choose a role from the list."), field="role")


def _accounts(form: Form) -> list[str]:
    """The accounts chosen in the form's list (the operation checks each exists)."""
    return [value for value in form.getall("accounts", []) if isinstance(value, str) and value]


async def _account_names(request: web.Request, visit: Visit) -> list[str]:
    answer = await api_accounts.list_accounts(
        services(request), visit.principal, api_accounts.AccountsQuery()
    )
    return [account.name for account in answer.accounts]


async def _page(
    template: str,
    request: web.Request,
    visit: Visit,
    status: int,
    items: list[api_principals.PrincipalOut],
    may_create: bool,
    **context: Any,
) -> web.Response:
    return render_page(
        template,
        request,
        visit.language,
        visit,
        status,
        items=items,
        may_create=may_create,
        account_names=await _account_names(request, visit) if may_create else [],
        roles=ROLES,
        **context,
    )


async def _users_page(
    request: web.Request, visit: Visit, status: int = 200, *, error: str | None = None
) -> web.Response:
    answer = await api_principals.list_users(
        services(request), visit.principal, api_principals.PrincipalsQuery()
    )
    role = visit.principal.role
    return await _page(
        "users.html",
        request,
        visit,
        status,
        answer.items,
        api_principals.create_user.access.allows(role),
        may_disable=api_principals.disable_user.access.allows(role),
        may_set_password=api_principals.set_user_password.access.allows(role),
        error=error,
    )


async def _clients_page(
    request: web.Request,
    visit: Visit,
    status: int = 200,
    *,
    error: str | None = None,
    created: api_principals.ClientCreated | None = None,
) -> web.Response:
    answer = await api_principals.list_clients(
        services(request), visit.principal, api_principals.PrincipalsQuery()
    )
    role = visit.principal.role
    return await _page(
        "clients.html",
        request,
        visit,
        status,
        answer.items,
        api_principals.create_client.access.allows(role),
        may_disable=api_principals.disable_client.access.allows(role),
        error=error,
        created=created,
    )


@signed_in
async def users(request: web.Request, visit: Visit) -> web.StreamResponse:
    return await _users_page(request, visit)


@signed_in
async def create_user(request: web.Request, visit: Visit) -> web.StreamResponse:
    form = await forms.posted(request)
    try:
        await api_principals.create_user(
            services(request),
            visit.principal,
            api_principals.UserCreate(
                username=_text(form, "username"),
                password=_text(form, "password"),
                role=_role(visit.language, form),
                accounts=_accounts(form),
            ),
        )
    except (InvalidInput, Conflict, NotFound) as exc:
        # The services' words are English, as the API's problem documents are.
        return await _users_page(request, visit, refusal_status(exc), error=exc.detail)
    return see_other("/users")


@signed_in
async def disable_user(request: web.Request, visit: Visit) -> web.StreamResponse:
    form = await forms.posted(request)
    try:
        await api_principals.disable_user(
            services(request), visit.principal, api_principals.UserDisable(user=_text(form, "user"))
        )
    except (InvalidInput, Conflict, NotFound) as exc:
        return await _users_page(request, visit, refusal_status(exc), error=exc.detail)
    return see_other("/users")


@signed_in
async def set_password(request: web.Request, visit: Visit) -> web.StreamResponse:
    form = await forms.posted(request)
    try:
        await api_principals.set_user_password(
            services(request),
            visit.principal,
            api_principals.PasswordSet(user=_text(form, "user"), password=_text(form, "password")),
        )
    except (InvalidInput, NotFound) as exc:
        return await _users_page(request, visit, refusal_status(exc), error=exc.detail)
    return see_other("/users")


@signed_in
async def clients(request: web.Request, visit: Visit) -> web.StreamResponse:
    return await _clients_page(request, visit)


@signed_in
async def create_client(request: web.Request, visit: Visit) -> web.StreamResponse:
    form = await forms.posted(request)
    try:
        created = await api_principals.create_client(
            services(request),
            visit.principal,
            api_principals.ClientCreate(
                role=_role(visit.language, form),
                accounts=_accounts(form),
                description=_text(form, "description"),
            ),
        )
    except (InvalidInput, Conflict, NotFound) as exc:
        return await _clients_page(request, visit, refusal_status(exc), error=exc.detail)
    # The one answer with the secret: a page (no redirect to a URL that could show it again).
    return await _clients_page(request, visit, created=created)


@signed_in
async def disable_client(request: web.Request, visit: Visit) -> web.StreamResponse:
    form = await forms.posted(request)
    try:
        await api_principals.disable_client(
            services(request),
            visit.principal,
            api_principals.ClientDisable(client=_text(form, "client")),
        )
    except (InvalidInput, Conflict, NotFound) as exc:
        return await _clients_page(request, visit, refusal_status(exc), error=exc.detail)
    return see_other("/clients")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/users", secured(users)),
        web.post("/users", secured(create_user)),
        web.post("/users/disable", secured(disable_user)),
        web.post("/users/password", secured(set_password)),
        web.get("/clients", secured(clients)),
        web.post("/clients", secured(create_client)),
        web.post("/clients/disable", secured(disable_client)),
    ]
