"""The smart accounts: the list (and for a system admin the form creating one), an
account's page with its virtual accounts and settings (and for a system admin the form
changing them), each through an operation of ``satellite.api.accounts`` with the
session's principal (the operation decides who may and what is refused)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from satellite.api import accounts as api_accounts
from satellite.console import forms
from satellite.console.guard import (
    Visit,
    form_field,
    render_page,
    secured,
    see_other,
    services,
    signed_in,
)
from satellite.console.paths import account_path
from satellite.console.refusals import refusal_status
from satellite.errors import Conflict, InvalidInput

# The account forms' fields, kept on a refusal so nothing typed is lost.
ACCOUNT_FIELDS = ("name", "domain", "description")
EXPORT_FIELD = "export_controlled_allowed"


async def _checked(request: web.Request, name: str) -> bool:
    """A checkbox: sent (whatever its value) when ticked, absent when not."""
    return name in await forms.posted(request)


async def _accounts_page(
    request: web.Request,
    visit: Visit,
    status: int = 200,
    error: str | None = None,
    form: dict[str, Any] | None = None,
) -> web.Response:
    answer = await api_accounts.list_accounts(
        services(request), visit.principal, api_accounts.AccountsQuery()
    )
    return render_page(
        "accounts.html",
        request,
        visit.language,
        visit,
        status,
        accounts=answer.accounts,
        may_create=api_accounts.create_account.access.allows(visit.principal.role),
        error=error,
        form=form or {},
    )


@signed_in
async def accounts(request: web.Request, visit: Visit) -> web.StreamResponse:
    return await _accounts_page(request, visit)


@signed_in
async def create_account(request: web.Request, visit: Visit) -> web.StreamResponse:
    form: dict[str, Any] = {name: await form_field(request, name) for name in ACCOUNT_FIELDS}
    form[EXPORT_FIELD] = await _checked(request, EXPORT_FIELD)
    try:
        answer = await api_accounts.create_account(
            services(request),
            visit.principal,
            api_accounts.AccountCreate(
                name=form["name"],
                # An empty field is no domain (the operation's default).
                domain=form["domain"] or None,
                description=form["description"],
                export_controlled_allowed=form[EXPORT_FIELD],
            ),
        )
    except (InvalidInput, Conflict) as exc:
        # The services' words are English, as the API's problem documents are.
        return await _accounts_page(request, visit, refusal_status(exc), exc.detail, form)
    return see_other(account_path(answer.account.name))


async def _account_page(
    request: web.Request,
    visit: Visit,
    status: int = 200,
    *,
    error: str | None = None,
    settings_error: str | None = None,
    typed: dict[str, Any] | None = None,
) -> web.Response:
    account = request.match_info["account"]
    listed = await api_accounts.list_virtual_accounts(
        services(request), visit.principal, api_accounts.VirtualAccountsQuery(account=account)
    )
    # The account's own fields: the list of those the caller sees holds it (the list of
    # its virtual accounts above was not refused).
    seen = await api_accounts.list_accounts(
        services(request), visit.principal, api_accounts.AccountsQuery()
    )
    details = next((a for a in seen.accounts if a.name == account), None)
    settings = typed or (
        {
            "domain": details.domain or "",
            "description": details.description,
            EXPORT_FIELD: details.export_controlled_allowed,
        }
        if details
        else {}
    )
    role = visit.principal.role
    return render_page(
        "account.html",
        request,
        visit.language,
        visit,
        status,
        account=account,
        details=details,
        settings=settings,
        virtual_accounts=listed.virtual_accounts,
        may_create=api_accounts.create_virtual_account.access.allows(role),
        may_update=api_accounts.update_account.access.allows(role),
        error=error,
        settings_error=settings_error,
    )


@signed_in
async def account(request: web.Request, visit: Visit) -> web.StreamResponse:
    return await _account_page(request, visit)


@signed_in
async def update_account(request: web.Request, visit: Visit) -> web.StreamResponse:
    account = request.match_info["account"]
    # The form shows every field, so each is sent: an empty domain removes it.
    typed: dict[str, Any] = {name: await form_field(request, name) for name in ACCOUNT_FIELDS[1:]}
    typed[EXPORT_FIELD] = await _checked(request, EXPORT_FIELD)
    try:
        await api_accounts.update_account(
            services(request),
            visit.principal,
            api_accounts.AccountUpdate(
                account=account,
                domain=typed["domain"],
                description=typed["description"],
                export_controlled_allowed=typed[EXPORT_FIELD],
            ),
        )
    except (InvalidInput, Conflict) as exc:
        return await _account_page(
            request, visit, refusal_status(exc), settings_error=exc.detail, typed=typed
        )
    return see_other(account_path(account))


@signed_in
async def create_virtual_account(request: web.Request, visit: Visit) -> web.StreamResponse:
    account = request.match_info["account"]
    try:
        await api_accounts.create_virtual_account(
            services(request),
            visit.principal,
            api_accounts.VirtualAccountCreate(
                account=account,
                name=await form_field(request, "name"),
                description=await form_field(request, "description"),
            ),
        )
    except (InvalidInput, Conflict) as exc:
        return await _account_page(request, visit, refusal_status(exc), error=exc.detail)
    return see_other(account_path(account))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/accounts", secured(accounts)),
        web.post("/accounts", secured(create_account)),
        web.get("/accounts/{account}", secured(account)),
        web.post("/accounts/{account}/update", secured(update_account)),
        web.post("/accounts/{account}/virtual-accounts", secured(create_virtual_account)),
    ]
