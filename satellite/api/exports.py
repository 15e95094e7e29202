"""Export-controlled features, the admin side: the export keys granted from a virtual
account's pool, and a product instance's keys."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from satellite.api.context import Services
from satellite.api.operation import READ, operation
from satellite.api.paths import VA
from satellite.api.products import Sudi
from satellite.api.scopes import InVirtualAccount
from satellite.api.types import Limit, Offset, Response
from satellite.domain.access import Principal
from satellite.domain.models import ExportKey, ExportKeyEndReason, ExportKeyStatus
from satellite.errors import InvalidInput
from satellite_protocol.catalog import Catalog

# The toolkit's words for an export key's state (ExportKeyStatus is ours).
ExportKeyState = Literal["Granted", "Returned", "Released"]


class ExportKeysQuery(InVirtualAccount):
    """Query parameters of the export key list."""

    status: Annotated[str, msgspec.Meta(max_length=20)] = "Granted"  # or "all"
    limit: Limit = 100
    offset: Offset = 0


class ProductExportKeysQuery(InVirtualAccount, forbid_unknown_fields=False):
    product: str  # (a query string sent anyway is ignored, as it always was)


class ExportKeyOut(Response):
    key_id: str
    feature: str
    license: str
    entitlement_tag: str
    product_instance_id: str
    sudi: Sudi
    virtual_account: str
    status: ExportKeyState
    granted_at: dt.datetime
    ended_at: dt.datetime | None
    end_reason: ExportKeyEndReason | None


class ExportKeyList(Response):
    total_records: int
    export_keys: list[ExportKeyOut]


@operation(
    "GET",
    VA + "/export-keys",
    "Export keys granted from the virtual account's pool (?status=all: with ended ones)",
    tag="export control",
    access=READ,
)
async def list_export_keys(
    services: Services, caller: Principal, request: ExportKeysQuery
) -> ExportKeyList:
    status = request.status.strip().lower()
    if status not in ("granted", "all"):
        raise InvalidInput(f"status {request.status!r} is not Granted or all", field="status")
    page = await services.exports.keys_of_virtual_account(
        caller,
        request.account,
        request.va,
        granted_only=status == "granted",
        limit=request.limit,
        offset=request.offset,
    )
    return ExportKeyList(
        total_records=page.total,
        export_keys=[export_key_out(key, services.catalog) for key in page.keys],
    )


@operation(
    "GET",
    VA + "/devices/{product}/export-keys",
    "Every export key of a product instance, granted or ended",
    tag="export control",
    access=READ,
)
async def product_export_keys(
    services: Services, caller: Principal, request: ProductExportKeysQuery
) -> ExportKeyList:
    keys = await services.exports.keys_of_instance(
        caller, request.account, request.va, request.product
    )
    return ExportKeyList(
        total_records=len(keys),
        export_keys=[export_key_out(key, services.catalog) for key in keys],
    )


OPERATIONS = (list_export_keys, product_export_keys)


_EXPORT_KEY_STATUS: dict[ExportKeyStatus, ExportKeyState] = {
    "granted": "Granted",
    "returned": "Returned",
    "released": "Released",
}


def export_key_out(key: ExportKey, catalog: Catalog) -> ExportKeyOut:
    return ExportKeyOut(
        key_id=key.id,
        feature=key.feature,
        license=catalog.display_name(key.tag),
        entitlement_tag=key.tag,
        product_instance_id=key.product_id,
        sudi=Sudi(udi_pid=key.udi_pid, udi_serial=key.udi_serial, udi_uuid=key.udi_uuid),
        virtual_account=key.virtual_account,
        status=_EXPORT_KEY_STATUS[key.status],
        granted_at=key.granted_at,
        ended_at=key.ended_at,
        end_reason=key.end_reason,
    )
