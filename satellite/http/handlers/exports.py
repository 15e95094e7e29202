"""Export-controlled features: the export keys granted from a virtual account's pool."""

from __future__ import annotations

from aiohttp import web

from satellite.errors import InvalidInput
from satellite.http.auth import caller
from satellite.http.body import read_query, render
from satellite.http.keys import SERVICES
from satellite.http.views import export_key_out
from satellite.http.wire import ExportKeyList, ExportKeysQuery


async def list_export_keys(request: web.Request) -> web.Response:
    principal = await caller(request)
    query = read_query(request, ExportKeysQuery)
    status = query.status.strip().lower()
    if status not in ("granted", "all"):
        raise InvalidInput(f"status {query.status!r} is not Granted or all", field="status")
    services = request.app[SERVICES]
    page = await services.exports.keys_of_virtual_account(
        principal,
        request.match_info["account"],
        request.match_info["va"],
        granted_only=status == "granted",
        limit=query.limit,
        offset=query.offset,
    )
    return render(
        ExportKeyList(
            total_records=page.total,
            export_keys=[export_key_out(key, services.catalog) for key in page.keys],
        )
    )


async def product_export_keys(request: web.Request) -> web.Response:
    principal = await caller(request)
    services = request.app[SERVICES]
    keys = await services.exports.keys_of_instance(
        principal,
        request.match_info["account"],
        request.match_info["va"],
        request.match_info["product"],
    )
    return render(
        ExportKeyList(
            total_records=len(keys),
            export_keys=[export_key_out(key, services.catalog) for key in keys],
        )
    )
