"""The export keys granted from a virtual account's pool (``list_export_keys``), the
granted ones or, with ``?status=all``, the ended ones too; paged."""

from __future__ import annotations

from aiohttp import web

from satellite.api import exports as api_exports
from satellite.console import forms
from satellite.console.guard import (
    Visit,
    error_page,
    render_page,
    secured,
    services,
    signed_in,
)
from satellite.console.paging import page
from satellite.console.paths import virtual_account_path
from satellite.errors import InvalidInput

PAGE_SIZE = 50


@signed_in
async def export_keys(request: web.Request, visit: Visit) -> web.StreamResponse:
    account, va = request.match_info["account"], request.match_info["va"]
    shown = request.query.get("status", "Granted")
    try:
        offset = forms.offset(visit.language, request.query.get("offset", ""))
        answer = await api_exports.list_export_keys(
            services(request),
            visit.principal,
            api_exports.ExportKeysQuery(
                account=account, va=va, status=shown, limit=PAGE_SIZE, offset=offset
            ),
        )
    except InvalidInput as exc:
        return error_page(request, visit, 400, exc.detail)
    path = virtual_account_path(account, va, "export-keys")

    total = answer.total_records
    return render_page(
        "export_keys.html",
        request,
        visit.language,
        visit,
        account=account,
        va=va,
        path=path,
        keys=answer.export_keys,
        every=shown.strip().lower() == "all",
        total=total,
        **page(
            path,
            {"status": shown},
            offset=offset,
            size=PAGE_SIZE,
            shown=len(answer.export_keys),
            more=offset + PAGE_SIZE < total,
        ),
    )


def routes() -> list[web.RouteDef]:
    return [web.get("/accounts/{account}/virtual-accounts/{va}/export-keys", secured(export_keys))]
