"""The licenses view of an account, pool lines of a virtual account, and the catalog."""

from __future__ import annotations

import re

from aiohttp import web

from satellite.api.context import Services
from satellite.domain.compliance import LineValues, PoolLine
from satellite.errors import InvalidInput
from satellite.http.auth import caller
from satellite.http.body import read_json, render
from satellite.http.keys import SERVICES
from satellite.http.views import catalog_entry_out, license_out, pool_line_out, transfer_out
from satellite.http.wire import (
    CatalogList,
    LicenseList,
    LicensesQuery,
    LicenseTransferIn,
    NoBody,
    PoolLineIn,
    PoolLineList,
    PoolLineOne,
    PoolLineOut,
    StatusResponse,
)
from satellite.services.transfers import TransferItem


def _line_values(body: PoolLineIn) -> LineValues:
    return LineValues(
        tag=body.entitlement_tag,
        quantity=body.quantity,
        license_type=body.license_type,
        start_date=body.start_date,
        end_date=body.end_date,
        subscription_id=body.subscription_id,
        export_restricted=body.export_restricted,
    )


def _line_out(services: Services, line: PoolLine) -> PoolLineOut:
    return pool_line_out(line, services.catalog, services.licenses.today())


def _line_id(request: web.Request) -> int:
    text = request.match_info["line"]
    if not re.fullmatch(r"[0-9]{1,18}", text):
        raise InvalidInput(f"license line id {text!r} is not a number", field="lineId")
    return int(text)


async def licenses_view(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request, LicensesQuery)
    services = request.app[SERVICES]
    total, page = await services.licenses.positions(
        principal,
        request.match_info["account"],
        body.virtual_accounts,
        limit=body.limit,
        offset=body.offset,
    )
    today = services.licenses.today()
    return render(
        LicenseList(
            total_records=total,
            licenses=[license_out(p, services.catalog, today) for p in page],
        )
    )


async def list_pool(request: web.Request) -> web.Response:
    principal = await caller(request)
    services = request.app[SERVICES]
    lines = await services.licenses.pool(
        principal, request.match_info["account"], request.match_info["va"]
    )
    return render(PoolLineList(licenses=[_line_out(services, line) for line in lines]))


async def add_pool_line(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request, PoolLineIn)
    services = request.app[SERVICES]
    line = await services.licenses.add_line(
        principal,
        request.match_info["account"],
        request.match_info["va"],
        _line_values(body),
    )
    return render(PoolLineOne(license=_line_out(services, line)))


async def update_pool_line(request: web.Request) -> web.Response:
    principal = await caller(request)
    line_id = _line_id(request)
    body = await read_json(request, PoolLineIn)
    services = request.app[SERVICES]
    line = await services.licenses.update_line(
        principal,
        request.match_info["account"],
        request.match_info["va"],
        line_id,
        _line_values(body),
    )
    return render(PoolLineOne(license=_line_out(services, line)))


async def remove_pool_line(request: web.Request) -> web.Response:
    principal = await caller(request)
    line_id = _line_id(request)
    await read_json(request, NoBody)
    await request.app[SERVICES].licenses.remove_line(
        principal, request.match_info["account"], request.match_info["va"], line_id
    )
    return render(StatusResponse(message=f"license line {line_id} removed"))


async def transfer_licenses(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request, LicenseTransferIn)
    services = request.app[SERVICES]
    items = [
        TransferItem(
            license=line.license,
            quantity=line.quantity,
            target=line.target_virtual_account,
            source=line.source_virtual_account,
            license_type=line.license_type,
            precedence=line.precedence,
        )
        for line in body.licenses
    ]
    done = await services.transfers.transfer(
        principal, request.match_info["account"], items, body.source_virtual_account
    )
    return render(transfer_out(done, services.catalog))


async def catalog(request: web.Request) -> web.Response:
    await caller(request)
    entries = request.app[SERVICES].catalog
    return render(CatalogList(licenses=[catalog_entry_out(e) for e in entries]))
