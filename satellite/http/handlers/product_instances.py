"""Product instances (devices) of a virtual account: list, detail, transfer, remove."""

from __future__ import annotations

from aiohttp import web

from satellite.api.context import Services
from satellite.errors import InvalidInput
from satellite.http.auth import caller
from satellite.http.body import read_json, read_query, render
from satellite.http.keys import SERVICES
from satellite.http.views import device_change, device_detail, device_out
from satellite.http.wire import (
    DeviceList,
    DeviceRemove,
    DeviceRemoveItem,
    DevicesQuery,
    DeviceTransfer,
    SudiIn,
)
from satellite.services.product_instances import (
    ByUdi,
    ProductInstanceFilter,
    ProductInstanceView,
    Transfer,
)

MISSPELLED = "productInstacesRemoveRequests"  # sic: what public clients send
SPELLED = "productInstancesRemoveRequests"


def _by_udi(sudi: SudiIn, product_tag_name: str | None, return_code: str | None = None) -> ByUdi:
    return ByUdi(
        udi_pid=sudi.udi_pid,
        udi_serial=sudi.udi_serial,
        udi_uuid=sudi.udi_uuid,
        product_type=product_tag_name,
        return_code=return_code,
    )


def _changed(services: Services, verb: str, views: list[ProductInstanceView]) -> web.Response:
    return render(device_change(verb, views, services.catalog, services.product_instances.now()))


async def list_devices(request: web.Request) -> web.Response:
    principal = await caller(request)
    query = read_query(request, DevicesQuery)
    services = request.app[SERVICES]
    total, views = await services.product_instances.list_instances(
        principal,
        request.match_info["account"],
        request.match_info["va"],
        ProductInstanceFilter(
            status=query.status,
            udi_pid=query.udi_pid,
            udi_serial=query.udi_serial,
            hostname=query.host_name,
            product_type=query.product_tag_name,
            limit=query.limit,
            offset=query.offset,
        ),
    )
    now = services.product_instances.now()
    return render(
        DeviceList(
            total_records=total, devices=[device_out(v, services.catalog, now) for v in views]
        )
    )


async def show_device(request: web.Request) -> web.Response:
    principal = await caller(request)
    services = request.app[SERVICES]
    detail = await services.product_instances.show(
        principal,
        request.match_info["account"],
        request.match_info["va"],
        request.match_info["product"],
    )
    return render(device_detail(detail, services.catalog, services.product_instances.now()))


async def transfer_devices(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request, DeviceTransfer)
    services = request.app[SERVICES]
    views = await services.product_instances.transfer(
        principal,
        request.match_info["account"],
        request.match_info["va"],
        [
            Transfer(_by_udi(item.sudi, item.product_tag_name), item.target_virtual_account)
            for item in body.product_instances
        ],
        field="productInstances",
    )
    return _changed(services, "transferred", views)


async def remove_devices(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request, DeviceRemove)
    items: list[DeviceRemoveItem]
    if body.product_instaces_remove_requests is not None:
        if body.product_instances_remove_requests is not None:
            raise InvalidInput(f"send {MISSPELLED} or {SPELLED}, not both", field=SPELLED)
        items, field = body.product_instaces_remove_requests, MISSPELLED
    elif body.product_instances_remove_requests is not None:
        items, field = body.product_instances_remove_requests, SPELLED
    else:
        raise InvalidInput(
            f"name the products to remove in {MISSPELLED} (or {SPELLED})", field=MISSPELLED
        )
    services = request.app[SERVICES]
    views = await services.product_instances.remove(
        principal,
        request.match_info["account"],
        request.match_info["va"],
        [_by_udi(item.sudi, item.product_tag_name, item.return_code) for item in items],
        field=field,
    )
    return _changed(services, "removed", views)
