"""A virtual account's own page: its name and description, and for those who may, the
forms to rename or describe it and to delete it, each through an operation of
``satellite.api.accounts`` with the session's principal (the operation decides who may
and what is refused: a taken name, the default's name, one that is not empty)."""

from __future__ import annotations

from aiohttp import web

from satellite.api import accounts as api_accounts
from satellite.console.guard import (
    Visit,
    form_field,
    render_page,
    secured,
    see_other,
    services,
    signed_in,
)
from satellite.console.paths import account_path, virtual_account_path
from satellite.console.refusals import refusal_status
from satellite.errors import Conflict, InvalidInput


async def _virtual_account_page(
    request: web.Request, visit: Visit, status: int = 200, error: str | None = None
) -> web.Response:
    account, name = request.match_info["account"], request.match_info["va"]
    answer = await api_accounts.get_virtual_account(
        services(request),
        visit.principal,
        api_accounts.VirtualAccountQuery(account=account, va=name),
    )
    va = answer.virtual_account
    role = visit.principal.role
    return render_page(
        "virtual_account.html",
        request,
        visit.language,
        visit,
        status,
        account=account,
        va=va,
        path=virtual_account_path(account, va.name),
        may_update=api_accounts.update_virtual_account.access.allows(role),
        may_delete=api_accounts.delete_virtual_account.access.allows(role),
        error=error,
    )


@signed_in
async def virtual_account(request: web.Request, visit: Visit) -> web.StreamResponse:
    return await _virtual_account_page(request, visit)


@signed_in
async def update_virtual_account(request: web.Request, visit: Visit) -> web.StreamResponse:
    account, va = request.match_info["account"], request.match_info["va"]
    try:
        answer = await api_accounts.update_virtual_account(
            services(request),
            visit.principal,
            api_accounts.VirtualAccountUpdate(
                account=account,
                va=va,
                name=await form_field(request, "name"),
                description=await form_field(request, "description"),
            ),
        )
    except (InvalidInput, Conflict) as exc:
        # The services' words are English, as the API's problem documents are.
        return await _virtual_account_page(request, visit, refusal_status(exc), exc.detail)
    (updated,) = answer.virtual_accounts
    return see_other(virtual_account_path(account, updated.name))


@signed_in
async def delete_virtual_account(request: web.Request, visit: Visit) -> web.StreamResponse:
    account, va = request.match_info["account"], request.match_info["va"]
    try:
        await api_accounts.delete_virtual_account(
            services(request),
            visit.principal,
            api_accounts.VirtualAccountDelete(account=account, va=va),
        )
    except (InvalidInput, Conflict) as exc:
        return await _virtual_account_page(request, visit, refusal_status(exc), exc.detail)
    return see_other(account_path(account))


def routes() -> list[web.RouteDef]:
    base = "/accounts/{account}/virtual-accounts/{va}"
    return [
        web.get(base, secured(virtual_account)),
        web.post(base + "/update", secured(update_virtual_account)),
        web.post(base + "/delete", secured(delete_virtual_account)),
    ]
