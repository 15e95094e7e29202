"""Specific license reservation (SLR): reserve, update, confirm, return, force-remove, and
the authorization code as a file."""

from __future__ import annotations

from aiohttp import web

from satellite.api.context import Services
from satellite.domain.reservation import LicenseRequest
from satellite.http.auth import caller
from satellite.http.body import read_json, render
from satellite.http.keys import SERVICES
from satellite.http.views import (
    issued_out,
    reservation_confirmed,
    reservation_ended,
)
from satellite.http.wire import (
    AuthorizationCodeOut,
    ConfirmationCodeIn,
    ForceRemoveIn,
    ReservationLicenseIn,
    ReservationUpdate,
    ReserveLicenses,
    ReserveLicensesOut,
    ReturnCodeIn,
)
from satellite.services.reservations import Ended, Issued, ReservationRequest


def _wanted(licenses: list[ReservationLicenseIn]) -> list[LicenseRequest]:
    return [LicenseRequest(x.entitlement_tag, x.quantity, x.precedence) for x in licenses]


def _issued_out(services: Services, issued: Issued) -> AuthorizationCodeOut:
    return issued_out(issued, services.catalog, services.reservations.now())


def _ended(services: Services, verb: str, ended: Ended) -> web.Response:
    return render(reservation_ended(verb, ended, services.catalog, services.reservations.now()))


async def reserve_licenses(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request, ReserveLicenses)
    services = request.app[SERVICES]
    issued = await services.reservations.reserve(
        principal,
        request.match_info["account"],
        request.match_info["va"],
        [
            ReservationRequest(item.reservation_code, _wanted(item.licenses))
            for item in body.reservation_requests
        ],
    )
    return render(
        ReserveLicensesOut(authorization_codes=[_issued_out(services, i) for i in issued])
    )


async def update_reservation(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request, ReservationUpdate)
    services = request.app[SERVICES]
    issued = await services.reservations.update(
        principal,
        request.match_info["account"],
        request.match_info["va"],
        request.match_info["product"],
        _wanted(body.licenses),
    )
    return render(ReserveLicensesOut(authorization_codes=[_issued_out(services, issued)]))


async def download_authorization_code(request: web.Request) -> web.Response:
    principal = await caller(request)
    product, code = await request.app[SERVICES].reservations.authorization_code(
        principal,
        request.match_info["account"],
        request.match_info["va"],
        request.match_info["product"],
    )
    return web.Response(
        text=code,
        content_type="application/xml",
        headers={
            "Content-Disposition": f'attachment; filename="AuthorizationCode_{product.id}.txt"'
        },
    )


async def confirm_reservation(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request, ConfirmationCodeIn)
    services = request.app[SERVICES]
    product, reservation = await services.reservations.confirm(
        principal,
        request.match_info["account"],
        request.match_info["va"],
        body.confirmation_code,
        field="confirmationCode",
    )
    return render(
        reservation_confirmed(product, reservation, services.catalog, services.reservations.now())
    )


async def return_reservation(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request, ReturnCodeIn)
    services = request.app[SERVICES]
    ended = await services.reservations.return_licenses(
        principal,
        request.match_info["account"],
        request.match_info["va"],
        body.return_code,
        field="returnCode",
    )
    return _ended(services, "returned its reservation and was removed", ended)


async def force_remove(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request, ForceRemoveIn)
    services = request.app[SERVICES]
    ended = await services.reservations.force_remove(
        principal,
        request.match_info["account"],
        request.match_info["va"],
        request.match_info["product"],
        body.reason,
    )
    return _ended(services, "force-removed", ended)
