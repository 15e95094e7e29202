"""Product instances of a virtual account, the admin side: list, show, transfer, remove.

(The products themselves speak the device API, ``satellite.http.handlers.device``; the
toolkit calls product instances "devices", hence the paths.)
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from satellite.api.context import Services
from satellite.api.operation import READ, WRITE, operation
from satellite.api.paths import VA
from satellite.api.products import (
    DeviceOut,
    LicenseUsage,
    device_fields,
    device_out,
    license_usage,
)
from satellite.api.scopes import InVirtualAccount
from satellite.api.types import Limit, Name, Offset, Request, Response, Success
from satellite.domain.access import Principal
from satellite.domain.clock import utc_now
from satellite.errors import InvalidInput
from satellite.services.product_instances import (
    ById,
    ByUdi,
    ProductInstanceDetail,
    ProductInstanceFilter,
    ProductInstanceView,
    ProductRef,
    Transfer,
)
from satellite_protocol.catalog import Catalog

MISSPELLED = "productInstacesRemoveRequests"  # sic: what public clients send
SPELLED = "productInstancesRemoveRequests"

UdiText = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
OptionalText = Annotated[str, msgspec.Meta(max_length=256)] | None


class DevicesQuery(InVirtualAccount):
    """Query parameters of the device list."""

    status: Annotated[str, msgspec.Meta(max_length=20)] = "Registered"  # or "all"
    udi_pid: UdiText | None = None
    udi_serial: UdiText | None = msgspec.field(default=None, name="udiSerialNumber")
    host_name: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | None = None
    product_tag_name: UdiText | None = None
    limit: Limit = 100
    offset: Offset = 0


# The detail takes no query parameters and, as ever, ignores any it is sent.
class DeviceShow(InVirtualAccount, forbid_unknown_fields=False):
    product: str  # the product instance id


class SudiIn(Request):
    """A product's identity as public clients send it; PID and serial number name it."""

    udi_pid: UdiText
    udi_serial: UdiText = msgspec.field(name="udiSerialNumber")
    # when given, it must match too
    udi_uuid: UdiText | None = msgspec.field(default=None, name="uuid")
    udi_vid: OptionalText = None
    suvi: OptionalText = None
    host_identifier: OptionalText = None
    mac_address: OptionalText = None


ProductInstanceId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class DeviceTransferItem(Request):
    # The product by its UDI (as public clients name it) or, an extension, by its product
    # instance id (as the CLI and the console name it): one of the two.
    target_virtual_account: Name
    sudi: SudiIn | None = None
    product_instance_id: ProductInstanceId | None = None
    product_tag_name: UdiText | None = None  # when given, it must match the product's type


class DeviceTransfer(InVirtualAccount):
    product_instances: Annotated[
        list[DeviceTransferItem], msgspec.Meta(min_length=1, max_length=1000)
    ]


class DeviceRemoveItem(Request):
    sudi: SudiIn | None = None  # or product_instance_id, as in a transfer
    product_instance_id: ProductInstanceId | None = None
    product_tag_name: UdiText | None = None
    # A product holding a specific license reservation is removed by its return code.
    return_code: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)] | None = None


DeviceRemoveList = Annotated[list[DeviceRemoveItem], msgspec.Meta(min_length=1, max_length=1000)]


class DeviceRemove(InVirtualAccount):
    # Public clients send the first spelling (sic); the second is accepted as well.
    product_instaces_remove_requests: DeviceRemoveList | None = None
    product_instances_remove_requests: DeviceRemoveList | None = None


class DeviceList(Response):
    total_records: int
    devices: list[DeviceOut]


class UsageReportOut(Response):
    reported_at: dt.datetime
    license_usage: list[LicenseUsage]


class DeviceDetail(DeviceOut):
    usage_history: list[UsageReportOut]  # the last 50 reports, newest first


class DeviceChange(Response, kw_only=True):
    status: Success = "SUCCESS"
    message: str
    devices: list[DeviceOut]


@operation(
    "GET",
    VA + "/devices",
    "Product instances (query parameters filter and page)",
    tag="devices",
    access=READ,
)
async def list_devices(services: Services, caller: Principal, request: DevicesQuery) -> DeviceList:
    total, views = await services.product_instances.list_instances(
        caller,
        request.account,
        request.va,
        ProductInstanceFilter(
            status=request.status,
            udi_pid=request.udi_pid,
            udi_serial=request.udi_serial,
            hostname=request.host_name,
            product_type=request.product_tag_name,
            limit=request.limit,
            offset=request.offset,
        ),
    )
    now = utc_now()
    return DeviceList(
        total_records=total, devices=[device_out(v, services.catalog, now) for v in views]
    )


@operation(
    "GET",
    VA + "/devices/{product}",
    "A product instance with its usage history",
    tag="devices",
    access=READ,
)
async def show_device(services: Services, caller: Principal, request: DeviceShow) -> DeviceDetail:
    detail = await services.product_instances.show(
        caller, request.account, request.va, request.product
    )
    return _detail(detail, services.catalog, utc_now())


@operation(
    "POST",
    VA + "/devices/transfer",
    "Move product instances to other virtual accounts",
    tag="devices",
    access=WRITE,
)
async def transfer_devices(
    services: Services, caller: Principal, request: DeviceTransfer
) -> DeviceChange:
    field = "productInstances"
    moves = [
        Transfer(
            _ref(f"{field}[{index}]", item.sudi, item.product_instance_id, item.product_tag_name),
            item.target_virtual_account,
        )
        for index, item in enumerate(request.product_instances)
    ]
    views = await services.product_instances.transfer(
        caller, request.account, request.va, moves, field=field
    )
    return _changed(services, "transferred", views)


@operation(
    "POST",
    VA + "/devices/remove",
    "Remove product instances (their usage is released)",
    tag="devices",
    access=WRITE,
)
async def remove_devices(
    services: Services, caller: Principal, request: DeviceRemove
) -> DeviceChange:
    items: list[DeviceRemoveItem]
    if request.product_instaces_remove_requests is not None:
        if request.product_instances_remove_requests is not None:
            raise InvalidInput(f"send {MISSPELLED} or {SPELLED}, not both", field=SPELLED)
        items, field = request.product_instaces_remove_requests, MISSPELLED
    elif request.product_instances_remove_requests is not None:
        items, field = request.product_instances_remove_requests, SPELLED
    else:
        raise InvalidInput(
            f"name the products to remove in {MISSPELLED} (or {SPELLED})", field=MISSPELLED
        )
    refs = [
        _ref(
            f"{field}[{index}]",
            item.sudi,
            item.product_instance_id,
            item.product_tag_name,
            item.return_code,
        )
        for index, item in enumerate(items)
    ]
    views = await services.product_instances.remove(
        caller, request.account, request.va, refs, field=field
    )
    return _changed(services, "removed", views)


OPERATIONS = (list_devices, show_device, transfer_devices, remove_devices)


def _ref(
    where: str,
    sudi: SudiIn | None,
    product_instance_id: str | None,
    product_tag_name: str | None,
    return_code: str | None = None,
) -> ProductRef:
    """The product an item names: by its UDI or by its product instance id, not both."""
    if sudi is not None and product_instance_id is not None:
        raise InvalidInput(
            "name the product by its sudi or its productInstanceId, not both",
            field=f"{where}.productInstanceId",
        )
    if product_instance_id is not None:
        return ById(product_instance_id, product_type=product_tag_name, return_code=return_code)
    if sudi is None:
        raise InvalidInput(
            "Object missing required field `sudi` (or productInstanceId)", field=f"{where}.sudi"
        )
    return ByUdi(
        udi_pid=sudi.udi_pid,
        udi_serial=sudi.udi_serial,
        udi_uuid=sudi.udi_uuid,
        product_type=product_tag_name,
        return_code=return_code,
    )


def _detail(detail: ProductInstanceDetail, catalog: Catalog, now: dt.datetime) -> DeviceDetail:
    return DeviceDetail(
        **device_fields(detail.view, catalog, now),
        usage_history=[
            UsageReportOut(
                reported_at=record.reported_at, license_usage=license_usage(record.usage, catalog)
            )
            for record in detail.history
        ],
    )


def _changed(services: Services, verb: str, views: list[ProductInstanceView]) -> DeviceChange:
    """The answer to a transfer or removal: the products as they are now."""
    now = utc_now()
    return DeviceChange(
        message=f"{len(views)} product instance(s) {verb}",
        devices=[device_out(v, services.catalog, now) for v in views],
    )
