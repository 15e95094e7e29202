"""Specific license reservation (SLR) in a virtual account: the list, reserve, update,
confirm, return, force-remove, and the authorization code as a file."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from satellite.api.context import Services
from satellite.api.files import Download
from satellite.api.operation import READ, WRITE, operation
from satellite.api.paths import VA
from satellite.api.products import (
    DeviceOut,
    DeviceState,
    ReservationOut,
    Sudi,
    device_out,
    device_status,
    reservation_out,
)
from satellite.api.scopes import InVirtualAccount
from satellite.api.types import Offset, Request, Response, Success
from satellite.domain.access import Principal
from satellite.domain.clock import utc_now
from satellite.domain.models import ProductInstance
from satellite.domain.reservation import LicenseRequest, Precedence, Reservation
from satellite.services.product_instances import ProductInstanceView
from satellite.services.reservations import Ended, Issued, ReservationRequest
from satellite_protocol.catalog import Catalog

CodeText = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]


class ReservationLicenseIn(Request):
    entitlement_tag: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    quantity: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)]
    precedence: Precedence = "LONGEST_TERM_FIRST"


ReservationLicenses = Annotated[
    list[ReservationLicenseIn], msgspec.Meta(min_length=1, max_length=1000)
]


class ReservationsQuery(InVirtualAccount):
    """Query parameters of the reservation list."""

    status: Annotated[str, msgspec.Meta(max_length=20)] = "active"  # or "all"
    # (Each reservation's product is read on its own: pages are kept smaller than the
    # toolkit's lists allow.)
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100
    offset: Offset = 0


class ReservationRequestIn(Request):
    reservation_code: CodeText  # the product's request code
    licenses: ReservationLicenses
    reservation_type: Literal["SPECIFIC"] = "SPECIFIC"


class ReserveLicenses(InVirtualAccount):
    reservation_requests: Annotated[
        list[ReservationRequestIn], msgspec.Meta(min_length=1, max_length=100)
    ]


class ReservationUpdate(InVirtualAccount):
    product: str  # the product instance id (the path's)
    licenses: ReservationLicenses  # the product's reserved licenses from now on


class AuthorizationCodeQuery(InVirtualAccount, forbid_unknown_fields=False):
    product: str  # (a query string sent anyway is ignored, as it always was)


class ConfirmationCodeIn(InVirtualAccount):
    confirmation_code: CodeText


class ReturnCodeIn(InVirtualAccount):
    return_code: CodeText


class ForceRemoveIn(InVirtualAccount):
    product: str
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class AuthorizationCodeOut(Response):
    authorization_code: str  # the <specificPLR> XML to install on the product
    reservation_code: str
    product_instance_id: str
    sudi: Sudi
    timestamp: int
    reservation: ReservationOut


class ReservedProductOut(Response):
    product_instance_id: str
    product_tag_name: str
    sudi: Sudi
    status: DeviceState  # of the product instance: "Registered", or "Removed" once it ended
    reservation: ReservationOut


class ReservationList(Response):
    total_records: int
    reservations: list[ReservedProductOut]


class ReserveLicensesOut(Response, kw_only=True):
    status: Success = "SUCCESS"
    authorization_codes: list[AuthorizationCodeOut]


class ReservationChange(Response, kw_only=True):
    status: Success = "SUCCESS"
    message: str
    device: DeviceOut


@operation(
    "GET",
    VA + "/reservations",
    "Reservations of the virtual account, newest first (?status=all: with ended ones)",
    tag="reservations",
    access=READ,
)
async def list_reservations(
    services: Services, caller: Principal, request: ReservationsQuery
) -> ReservationList:
    total, found = await services.reservations.list_reservations(
        caller,
        request.account,
        request.va,
        status=request.status,
        limit=request.limit,
        offset=request.offset,
    )
    now = utc_now()
    return ReservationList(
        total_records=total,
        reservations=[_reserved_out(p, r, services.catalog, now) for p, r in found],
    )


@operation(
    "POST",
    VA + "/reserve-licenses",
    "Reserve licenses for products by their request codes (authorization codes back)",
    tag="reservations",
    access=WRITE,
)
async def reserve_licenses(
    services: Services, caller: Principal, request: ReserveLicenses
) -> ReserveLicensesOut:
    issued = await services.reservations.reserve(
        caller,
        request.account,
        request.va,
        [
            ReservationRequest(item.reservation_code, _wanted(item.licenses))
            for item in request.reservation_requests
        ],
    )
    now = utc_now()
    return ReserveLicensesOut(
        authorization_codes=[_issued_out(i, services.catalog, now) for i in issued]
    )


@operation(
    "POST",
    VA + "/reservations/{product}/update",
    "Change a product's reserved licenses (a new authorization code)",
    tag="reservations",
    access=WRITE,
)
async def update_reservation(
    services: Services, caller: Principal, request: ReservationUpdate
) -> ReserveLicensesOut:
    issued = await services.reservations.update(
        caller, request.account, request.va, request.product, _wanted(request.licenses)
    )
    now = utc_now()
    return ReserveLicensesOut(authorization_codes=[_issued_out(issued, services.catalog, now)])


@operation(
    "GET",
    VA + "/reservations/{product}/authorization-code",
    "The latest authorization code of a reservation, as a file (application/xml)",
    tag="reservations",
    access=READ,
)
async def download_authorization_code(
    services: Services, caller: Principal, request: AuthorizationCodeQuery
) -> Download:
    product, code = await services.reservations.authorization_code(
        caller, request.account, request.va, request.product
    )
    return Download(
        filename=f"AuthorizationCode_{product.id}.txt",
        media_type="application/xml",
        content=code.encode(),
        charset="utf-8",
    )


@operation(
    "POST",
    VA + "/reservations/confirm",
    "Enter a product's confirmation code (the reservation settles)",
    tag="reservations",
    access=WRITE,
)
async def confirm_reservation(
    services: Services, caller: Principal, request: ConfirmationCodeIn
) -> ReservationChange:
    product, reservation = await services.reservations.confirm(
        caller, request.account, request.va, request.confirmation_code, field="confirmationCode"
    )
    return ReservationChange(
        message=f"reservation of product instance {product.id} confirmed",
        device=device_out(
            ProductInstanceView(product, {}, reservation),
            services.catalog,
            utc_now(),
        ),
    )


@operation(
    "POST",
    VA + "/reservations/return",
    "Enter a product's return code (licenses released, product removed)",
    tag="reservations",
    access=WRITE,
)
async def return_reservation(
    services: Services, caller: Principal, request: ReturnCodeIn
) -> ReservationChange:
    ended = await services.reservations.return_licenses(
        caller, request.account, request.va, request.return_code, field="returnCode"
    )
    return _ended(services, "returned its reservation and was removed", ended)


@operation(
    "POST",
    VA + "/reservations/{product}/force-remove",
    "Remove a reserved product that cannot return its licenses (reason audited)",
    tag="reservations",
    access=WRITE,
)
async def force_remove(
    services: Services, caller: Principal, request: ForceRemoveIn
) -> ReservationChange:
    ended = await services.reservations.force_remove(
        caller, request.account, request.va, request.product, request.reason
    )
    return _ended(services, "force-removed", ended)


OPERATIONS = (
    list_reservations,
    reserve_licenses,
    update_reservation,
    download_authorization_code,
    confirm_reservation,
    return_reservation,
    force_remove,
)


def _wanted(licenses: list[ReservationLicenseIn]) -> list[LicenseRequest]:
    return [LicenseRequest(x.entitlement_tag, x.quantity, x.precedence) for x in licenses]


def _reserved_out(
    product: ProductInstance, reservation: Reservation, catalog: Catalog, now: dt.datetime
) -> ReservedProductOut:
    return ReservedProductOut(
        product_instance_id=product.id,
        product_tag_name=product.product_type,
        sudi=Sudi(
            udi_pid=product.udi_pid, udi_serial=product.udi_serial, udi_uuid=product.udi_uuid
        ),
        status=device_status(product.status),
        reservation=reservation_out(reservation, catalog, now),
    )


def _issued_out(issued: Issued, catalog: Catalog, now: dt.datetime) -> AuthorizationCodeOut:
    p = issued.product
    return AuthorizationCodeOut(
        authorization_code=issued.code.text,
        reservation_code=issued.reservation.request_code,
        product_instance_id=p.id,
        sudi=Sudi(udi_pid=p.udi_pid, udi_serial=p.udi_serial, udi_uuid=p.udi_uuid),
        timestamp=issued.code.timestamp,
        reservation=reservation_out(issued.reservation, catalog, now),
    )


def _ended(services: Services, verb: str, ended: Ended) -> ReservationChange:
    """The answer to a return or forced removal: the product as it is now, what went back."""
    catalog = services.catalog
    released = ", ".join(f"{catalog.display_name(t)}={n}" for t, n in ended.released.items())
    return ReservationChange(
        message=f"product instance {ended.product.id} {verb}; released: {released or '-'}",
        device=device_out(ProductInstanceView(ended.product, {}), catalog, utc_now()),
    )
