"""A product instance as answers show it: the types and mappings shared by every resource
whose answers hold product instances (their list, reservations, export keys, sync).

Field names follow the SSM On-Prem API toolkit (``sudi.udiSerialNumber`` is its name for
the UDI serial number).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import msgspec

from satellite.api.types import Response
from satellite.domain.models import AuthorizationStatus, ProductInstanceStatus
from satellite.domain.reservation import Reservation, ReservationState, ReservedLine
from satellite.services.product_instances import ProductInstanceView
from satellite_protocol.catalog import Catalog, LicenseType


class Sudi(Response):
    udi_pid: str
    udi_serial: str = msgspec.field(name="udiSerialNumber")
    udi_uuid: str = msgspec.field(name="uuid")


class LicenseUsage(Response):
    license: str
    entitlement_tag: str
    quantity: int


class ReservedLicenseOut(Response):
    """Licenses of one pool line held by a specific license reservation."""

    license: str
    entitlement_tag: str
    quantity: int
    license_type: LicenseType
    start_date: dt.date | None
    end_date: dt.date | None
    subscription_id: str | None


class ReservationOut(Response):
    # "Pending Confirmation" (first code issued), "Reserved" (settled), "In Transition"
    # (an updated code awaits the product's confirmation code), "Returned", "Removed"
    status: ReservationState
    active: bool  # holds licenses out of the pool (not returned or removed)
    authorization_code_timestamp: int | None  # of the latest code issued
    reserved_licenses: list[LicenseUsage]  # held out of the pool now (the larger in transition)
    confirmed_licenses: list[ReservedLicenseOut]
    pending_licenses: list[ReservedLicenseOut]
    created_at: dt.datetime


class DeviceOut(Response):
    product_tag_name: str
    product_name: str
    display_name: str
    host_name: str | None
    sudi: Sudi
    registration_date: dt.datetime
    last_contact_date: dt.datetime
    status: DeviceState
    license_usage: list[LicenseUsage]
    virtual_account: str
    # extensions
    product_instance_id: str
    ip_address: str | None
    export_controlled: bool
    certificate_expires_at: dt.datetime
    authorization_expires_at: dt.datetime
    authorization_status: AuthorizationStatus
    ended_at: dt.datetime | None
    reservation: ReservationOut | None  # specific license reservation (SLR), if any


# A product instance's state as the API shows it (the toolkit's words).
DeviceState = Literal["Registered", "Registration Expired", "Deregistered", "Removed", "Replaced"]
_DEVICE_STATES: dict[ProductInstanceStatus, DeviceState] = {
    "registered": "Registered",
    "registration_expired": "Registration Expired",
    "deregistered": "Deregistered",
    "removed": "Removed",
    "replaced": "Replaced",
}


def device_status(status: ProductInstanceStatus) -> DeviceState:
    """The status as the API shows it: Registered, Deregistered, Removed, ..."""
    return _DEVICE_STATES[status]


def license_usage(usage: dict[str, int], catalog: Catalog) -> list[LicenseUsage]:
    return [
        LicenseUsage(license=catalog.display_name(tag), entitlement_tag=tag, quantity=count)
        for tag, count in sorted(usage.items())
    ]


def _reserved_lines(lines: tuple[ReservedLine, ...], catalog: Catalog) -> list[ReservedLicenseOut]:
    return [
        ReservedLicenseOut(
            license=catalog.display_name(line.tag),
            entitlement_tag=line.tag,
            quantity=line.quantity,
            license_type=line.license_type,
            start_date=line.start_date,
            end_date=line.end_date,
            subscription_id=line.subscription_id,
        )
        for line in lines
    ]


def reservation_out(reservation: Reservation, catalog: Catalog, now: dt.datetime) -> ReservationOut:
    return ReservationOut(
        status=reservation.state,
        active=reservation.status == "active",
        authorization_code_timestamp=reservation.latest_timestamp or None,
        reserved_licenses=license_usage(reservation.held(now.date()), catalog),
        confirmed_licenses=_reserved_lines(reservation.current, catalog),
        pending_licenses=_reserved_lines(reservation.pending, catalog),
        created_at=reservation.created_at,
    )


def device_fields(view: ProductInstanceView, catalog: Catalog, now: dt.datetime) -> dict[str, Any]:
    p = view.product
    return {
        "product_tag_name": p.product_type,
        "product_name": f"{p.product_type} {p.product_version}",
        "display_name": p.hostname or f"PID:{p.udi_pid} SN:{p.udi_serial}",
        "host_name": p.hostname,
        "sudi": Sudi(udi_pid=p.udi_pid, udi_serial=p.udi_serial, udi_uuid=p.udi_uuid),
        "registration_date": p.registered_at,
        "last_contact_date": p.last_contact_at,
        "status": device_status(p.status),
        "license_usage": license_usage(view.usage, catalog),
        "virtual_account": p.virtual_account,
        "product_instance_id": p.id,
        "ip_address": p.ip_address,
        "export_controlled": p.export_controlled,
        "certificate_expires_at": p.certificate_expires_at,
        "authorization_expires_at": p.authorization_expires_at,
        "authorization_status": p.authorization_status(now),
        "ended_at": p.ended_at,
        "reservation": (
            reservation_out(view.reservation, catalog, now) if view.reservation else None
        ),
    }


def device_out(view: ProductInstanceView, catalog: Catalog, now: dt.datetime) -> DeviceOut:
    return DeviceOut(**device_fields(view, catalog, now))
