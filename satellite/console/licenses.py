"""The licenses pages: an account's positions per virtual account, and a virtual
account's positions and pool lines with the forms to add, change and remove lines and to
move free licenses to another virtual account, each through an operation of
``satellite.api.licenses`` with the session's principal (the operation decides who may
write and what is refused; the page only parses its form)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from satellite.api import accounts as api_accounts
from satellite.api import licenses as api_licenses
from satellite.console import forms, i18n, words
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
from satellite.errors import Conflict, InvalidInput, NotFound
from satellite_protocol.catalog import LicenseType

# The form's choices of license type and export restriction, as the API spells them.
LICENSE_TYPES: dict[str, LicenseType] = {
    "PERPETUAL": "PERPETUAL",
    "TERM": "TERM",
    "SUBSCRIPTION": "SUBSCRIPTION",
}
EXPORT_RESTRICTED: dict[str, bool | None] = {"": None, "true": True, "false": False}
# Lines of the transfer form (all move or none does); rows left empty are not sent.
TRANSFER_ROWS = 3


def account_licenses_path(account: str) -> str:
    return account_path(account, "licenses")


def licenses_path(account: str, va: str) -> str:
    return virtual_account_path(account, va, "licenses")


# --- the pages -----------------------------------------------------------------------------


@signed_in
async def account_licenses(request: web.Request, visit: Visit) -> web.StreamResponse:
    account = request.match_info["account"]
    answer = await api_licenses.licenses_view(
        services(request), visit.principal, api_licenses.LicensesQuery(account=account)
    )
    return render_page(
        "account_licenses.html",
        request,
        visit.language,
        visit,
        account=account,
        positions=answer.licenses,
    )


async def _licenses_page(
    request: web.Request, visit: Visit, status: int = 200, error: str | None = None
) -> web.Response:
    account, va = request.match_info["account"], request.match_info["va"]
    svc, caller, role = services(request), visit.principal, visit.principal.role
    positions = await api_licenses.licenses_view(
        svc, caller, api_licenses.LicensesQuery(account=account, virtual_accounts=[va])
    )
    pool = await api_licenses.list_pool(svc, caller, api_licenses.PoolQuery(account=account, va=va))
    catalog = await api_licenses.catalog(svc, caller, api_licenses.CatalogQuery())
    this = await api_accounts.get_virtual_account(
        svc, caller, api_accounts.VirtualAccountQuery(account=account, va=va)
    )
    vas = await api_accounts.list_virtual_accounts(
        svc, caller, api_accounts.VirtualAccountsQuery(account=account)
    )
    name = this.virtual_account.name  # as stored, whatever the path's case
    context: dict[str, Any] = {
        "account": account,
        "va": name,
        "path": licenses_path(account, name),
        "positions": positions.licenses,
        "lines": pool.licenses,
        "catalog": sorted(catalog.licenses, key=lambda entry: entry.display_name),
        # Targets of a transfer: the account's other virtual accounts.
        "targets": [v.name for v in vas.virtual_accounts if v.name != name],
        "transfer_rows": range(TRANSFER_ROWS),
        "may_add": api_licenses.add_pool_line.access.allows(role),
        "may_update": api_licenses.update_pool_line.access.allows(role),
        "may_remove": api_licenses.remove_pool_line.access.allows(role),
        "may_transfer": api_licenses.transfer_licenses.access.allows(role),
        "error": error,
    }
    return render_page("licenses.html", request, visit.language, visit, status, **context)


@signed_in
async def licenses(request: web.Request, visit: Visit) -> web.StreamResponse:
    return await _licenses_page(request, visit)


# --- the forms -----------------------------------------------------------------------------


def _quantity(language: i18n.Language, text: str, field: str) -> int:
    refusal = i18n.gettext(language, "A quantity is a whole number of licenses.")
    return forms.required_number(text, field, refusal)


def _date(language: i18n.Language, text: str, field: str) -> dt.date | None:
    return forms.date(text, field, i18n.gettext(language, "Dates are written YYYY-MM-DD."))


def _choice(choices: dict[str, Any], text: str, field: str, refusal: str) -> Any:
    return forms.choice(choices, text, field, refusal)


async def _line_fields(request: web.Request, visit: Visit) -> dict[str, Any]:
    """What the add and change forms share, as the request's fields."""
    subscription = (await form_field(request, "subscription_id")).strip()
    return {
        "entitlement_tag": await form_field(request, "entitlement_tag"),
        "quantity": _quantity(visit.language, await form_field(request, "quantity"), "quantity"),
        "license_type": _choice(
            LICENSE_TYPES,
            await form_field(request, "license_type"),
            "licenseType",
            words.not_a_choice(visit.language, i18n.gettext(visit.language, "Type")),
        ),
        "start_date": _date(visit.language, await form_field(request, "start_date"), "startDate"),
        "end_date": _date(visit.language, await form_field(request, "end_date"), "endDate"),
        "subscription_id": subscription or None,
        "export_restricted": _choice(
            EXPORT_RESTRICTED,
            await form_field(request, "export_restricted"),
            "exportRestricted",
            words.not_a_choice(visit.language, i18n.gettext(visit.language, "Export restricted")),
        ),
    }


@signed_in
async def add_line(request: web.Request, visit: Visit) -> web.StreamResponse:
    account, va = request.match_info["account"], request.match_info["va"]
    try:
        await api_licenses.add_pool_line(
            services(request),
            visit.principal,
            api_licenses.PoolLineIn(account=account, va=va, **await _line_fields(request, visit)),
        )
    except (InvalidInput, Conflict) as exc:
        # The services' words are English, as the API's problem documents are.
        return await _licenses_page(request, visit, refusal_status(exc), exc.detail)
    return see_other(licenses_path(account, va))


@signed_in
async def update_line(request: web.Request, visit: Visit) -> web.StreamResponse:
    account, va = request.match_info["account"], request.match_info["va"]
    try:
        await api_licenses.update_pool_line(
            services(request),
            visit.principal,
            api_licenses.PoolLineUpdate(
                account=account,
                va=va,
                line=await form_field(request, "line"),
                **await _line_fields(request, visit),
            ),
        )
    except (InvalidInput, Conflict) as exc:
        return await _licenses_page(request, visit, refusal_status(exc), exc.detail)
    except NotFound as exc:
        if exc.field != "lineId":
            raise
        # The virtual account exists (else the page below is a 404 too): the line is not its.
        return await _licenses_page(request, visit, 404, exc.detail)
    return see_other(licenses_path(account, va))


@signed_in
async def remove_line(request: web.Request, visit: Visit) -> web.StreamResponse:
    account, va = request.match_info["account"], request.match_info["va"]
    try:
        await api_licenses.remove_pool_line(
            services(request),
            visit.principal,
            api_licenses.PoolLineRemove(
                account=account, va=va, line=await form_field(request, "line")
            ),
        )
    except (InvalidInput, Conflict) as exc:
        return await _licenses_page(request, visit, refusal_status(exc), exc.detail)
    except NotFound as exc:
        if exc.field != "lineId":
            raise
        return await _licenses_page(request, visit, 404, exc.detail)
    return see_other(licenses_path(account, va))


async def _transfer_items(
    request: web.Request, visit: Visit
) -> list[api_licenses.LicenseTransferItem]:
    items = []
    for row in range(TRANSFER_ROWS):
        license = await form_field(request, f"license_{row}")
        quantity = await form_field(request, f"quantity_{row}")
        target = await form_field(request, f"target_{row}")
        if not (license or quantity.strip() or target):
            continue  # a row left empty
        items.append(
            api_licenses.LicenseTransferItem(
                license=license,
                quantity=_quantity(visit.language, quantity, f"quantity_{row}"),
                target_virtual_account=target,
            )
        )
    return items


@signed_in
async def transfer(request: web.Request, visit: Visit) -> web.StreamResponse:
    account, va = request.match_info["account"], request.match_info["va"]
    try:
        await api_licenses.transfer_licenses(
            services(request),
            visit.principal,
            api_licenses.LicenseTransferIn(
                account=account,
                licenses=await _transfer_items(request, visit),
                source_virtual_account=va,
            ),
        )
    except (InvalidInput, Conflict) as exc:
        return await _licenses_page(request, visit, refusal_status(exc), exc.detail)
    except NotFound as exc:
        if exc.field == "account":
            raise
        # A target virtual account or a license that is not there: said on the page.
        return await _licenses_page(request, visit, 404, exc.detail)
    return see_other(licenses_path(account, va))


def routes() -> list[web.RouteDef]:
    base = "/accounts/{account}/virtual-accounts/{va}/licenses"
    return [
        web.get("/accounts/{account}/licenses", secured(account_licenses)),
        web.get(base, secured(licenses)),
        web.post(base + "/pool", secured(add_line)),
        web.post(base + "/pool/update", secured(update_line)),
        web.post(base + "/pool/remove", secured(remove_line)),
        web.post(base + "/transfer", secured(transfer)),
    ]
