"""Licenses: an account's positions, the pool lines of a virtual account, moving free
licenses between virtual accounts, and the catalog."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

import msgspec

from satellite.api.context import Services
from satellite.api.operation import ANYONE, READ, WRITE, operation
from satellite.api.paths import ACCOUNT, VA
from satellite.api.scopes import InAccount, InVirtualAccount
from satellite.api.types import Limit, Name, Offset, Request, Response, StatusResponse, Success
from satellite.domain.access import Principal
from satellite.domain.compliance import (
    ComplianceStatus,
    LineSource,
    LineStatus,
    LineValues,
    PoolLine,
    Position,
    line_status,
)
from satellite.domain.paging import ALL
from satellite.domain.reservation import Precedence
from satellite.errors import InvalidInput
from satellite.services.transfers import TransferItem, Transferred
from satellite_protocol.catalog import Catalog, CatalogEntry, LicenseType, TagOrigin

Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Quantity = Annotated[int, msgspec.Meta(ge=1, le=10_000_000)]

# --- requests ------------------------------------------------------------------------------


class LicensesQuery(InAccount):
    virtual_accounts: Annotated[list[Name], msgspec.Meta(max_length=1000)] | None = None
    limit: Limit = ALL
    offset: Offset = 0


# The pool list and the catalog take no query parameters and, as ever, ignore any sent.
class PoolQuery(InVirtualAccount, forbid_unknown_fields=False):
    pass


class CatalogQuery(Request, forbid_unknown_fields=False):
    pass


class PoolLineIn(InVirtualAccount):
    entitlement_tag: Tag
    quantity: Quantity
    license_type: LicenseType = "PERPETUAL"
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    subscription_id: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    export_restricted: bool | None = None


class PoolLineUpdate(PoolLineIn, kw_only=True):
    # The path's segment as sent: one that is not a number is refused naming ``lineId``
    # (as the services name the line) when the request is decoded, before the account is
    # looked at.
    line: str

    def __post_init__(self) -> None:
        _line_id(self.line)


class PoolLineRemove(InVirtualAccount):
    line: str  # as in PoolLineUpdate

    def __post_init__(self) -> None:
        _line_id(self.line)


class LicenseTransferItem(Request):
    license: Tag  # tag or display name
    quantity: Quantity
    target_virtual_account: Name
    license_type: LicenseType | None = None  # None: any
    source_virtual_account: Name | None = None  # None: the request's
    precedence: Precedence = "LONGEST_TERM_FIRST"


class LicenseTransferIn(InAccount):
    licenses: Annotated[list[LicenseTransferItem], msgspec.Meta(min_length=1, max_length=100)]
    source_virtual_account: Name | None = None


# --- answers -------------------------------------------------------------------------------


class LicenseDetail(Response):
    license_type: str
    quantity: int
    start_date: dt.date | None
    end_date: dt.date | None
    subscription_id: str | None
    status: str


class LicenseSubstitution(Response):
    license: str
    entitlement_tag: str
    quantity: int
    direction: Literal["borrowed", "lent"]


class LicenseOut(Response):
    license: str
    entitlement_tag: str
    virtual_account: str
    quantity: int
    in_use: int  # product usage plus export keys granted
    available: int
    reserved: int
    export_keys: int  # export authorization keys granted to products (part of inUse)
    status: ComplianceStatus
    license_details: list[LicenseDetail]
    license_substitutions: list[LicenseSubstitution]


class LicenseList(Response):
    total_records: int
    licenses: list[LicenseOut]


class PoolLineOut(Response):
    id: int
    entitlement_tag: str
    license: str
    quantity: int
    license_type: LicenseType
    start_date: dt.date | None
    end_date: dt.date | None
    subscription_id: str | None
    export_restricted: bool
    source: LineSource
    status: LineStatus
    editable: bool  # may be changed or removed here (not a line from the upstream)


class PoolLineList(Response):
    licenses: list[PoolLineOut]


class PoolLineOne(Response):
    license: PoolLineOut


class TransferredLineOut(Response):
    source_line_id: int
    target_line_id: int
    quantity: int
    license_type: str
    start_date: dt.date | None
    end_date: dt.date | None
    subscription_id: str | None


class TransferredOut(Response):
    entitlement_tag: str
    license: str
    quantity: int
    source_virtual_account: str
    target_virtual_account: str
    lines: list[TransferredLineOut]


class LicenseTransferOut(Response):
    status: Success = "SUCCESS"
    message: str = ""
    transfers: list[TransferredOut] = msgspec.field(default_factory=list)


class CatalogEntryOut(Response):
    entitlement_tag: str
    display_name: str
    description: str
    family: str
    tier: int
    export_restricted: bool
    export_feature: str | None  # the export-controlled feature this key license enables
    tag_origin: TagOrigin  # satellite: a tag this project made up, not the vendor's
    license_type: LicenseType | None  # the only type a pool line of the tag may have
    stands_in_for: list[str]  # version-specific tags it covers when they run short


class CatalogList(Response):
    licenses: list[CatalogEntryOut]


# --- operations ----------------------------------------------------------------------------


@operation(
    "POST",
    ACCOUNT + "/licenses",
    "License positions per virtual account",
    tag="licenses",
    access=READ,
)
async def licenses_view(
    services: Services, caller: Principal, request: LicensesQuery
) -> LicenseList:
    total, page = await services.licenses.positions(
        caller,
        request.account,
        request.virtual_accounts,
        limit=request.limit,
        offset=request.offset,
    )
    today = services.licenses.today()
    return LicenseList(
        total_records=total, licenses=[_license(p, services.catalog, today) for p in page]
    )


@operation(
    "POST",
    ACCOUNT + "/licenses/transfer",
    "Move free licenses between virtual accounts (all lines or none)",
    tag="licenses",
    access=WRITE,
)
async def transfer_licenses(
    services: Services, caller: Principal, request: LicenseTransferIn
) -> LicenseTransferOut:
    items = [
        TransferItem(
            license=line.license,
            quantity=line.quantity,
            target=line.target_virtual_account,
            source=line.source_virtual_account,
            license_type=line.license_type,
            precedence=line.precedence,
        )
        for line in request.licenses
    ]
    done = await services.transfers.transfer(
        caller, request.account, items, request.source_virtual_account
    )
    return _transferred(done, services.catalog)


@operation(
    "GET", VA + "/license-pool", "Pool lines of a virtual account", tag="licenses", access=READ
)
async def list_pool(services: Services, caller: Principal, request: PoolQuery) -> PoolLineList:
    lines = await services.licenses.pool(caller, request.account, request.va)
    today = services.licenses.today()
    return PoolLineList(licenses=[_line(line, services.catalog, today) for line in lines])


@operation("POST", VA + "/license-pool", "Add a pool line", tag="licenses", access=WRITE)
async def add_pool_line(services: Services, caller: Principal, request: PoolLineIn) -> PoolLineOne:
    line = await services.licenses.add_line(
        caller, request.account, request.va, _line_values(request)
    )
    return PoolLineOne(license=_line(line, services.catalog, services.licenses.today()))


@operation(
    "POST",
    VA + "/license-pool/{line}/update",
    "Change a local pool line",
    tag="licenses",
    access=WRITE,
)
async def update_pool_line(
    services: Services, caller: Principal, request: PoolLineUpdate
) -> PoolLineOne:
    line = await services.licenses.update_line(
        caller, request.account, request.va, _line_id(request.line), _line_values(request)
    )
    return PoolLineOne(license=_line(line, services.catalog, services.licenses.today()))


@operation(
    "POST",
    VA + "/license-pool/{line}/delete",
    "Remove a local pool line",
    tag="licenses",
    access=WRITE,
)
async def remove_pool_line(
    services: Services, caller: Principal, request: PoolLineRemove
) -> StatusResponse:
    line_id = _line_id(request.line)
    await services.licenses.remove_line(caller, request.account, request.va, line_id)
    return StatusResponse(message=f"license line {line_id} removed")


@operation("GET", "/license-catalog", "The license catalog", tag="licenses", access=ANYONE)
async def catalog(services: Services, caller: Principal, request: CatalogQuery) -> CatalogList:
    return CatalogList(licenses=[_catalog_entry(entry) for entry in services.catalog])


OPERATIONS = (
    licenses_view,
    transfer_licenses,
    list_pool,
    add_pool_line,
    update_pool_line,
    remove_pool_line,
    catalog,
)


# --- requests -> services, records -> answers ---------------------------------------------


def _line_id(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,18}", text):
        raise InvalidInput(f"license line id {text!r} is not a number", field="lineId")
    return int(text)


def _line_values(request: PoolLineIn) -> LineValues:
    return LineValues(
        tag=request.entitlement_tag,
        quantity=request.quantity,
        license_type=request.license_type,
        start_date=request.start_date,
        end_date=request.end_date,
        subscription_id=request.subscription_id,
        export_restricted=request.export_restricted,
    )


def _line(line: PoolLine, catalog: Catalog, today: dt.date) -> PoolLineOut:
    return PoolLineOut(
        id=line.id,
        entitlement_tag=line.tag,
        license=catalog.display_name(line.tag),
        quantity=line.quantity,
        license_type=line.license_type,
        start_date=line.start_date,
        end_date=line.end_date,
        subscription_id=line.subscription_id,
        export_restricted=line.export_restricted,
        source=line.source,
        status=line_status(line, today),
        editable=line.editable,
    )


def _substitutions(position: Position, catalog: Catalog) -> list[LicenseSubstitution]:
    out = [
        LicenseSubstitution(
            license=catalog.display_name(tag), entitlement_tag=tag, quantity=n, direction="borrowed"
        )
        for tag, n in position.borrowed.items()
    ]
    out += [
        LicenseSubstitution(
            license=catalog.display_name(tag), entitlement_tag=tag, quantity=n, direction="lent"
        )
        for tag, n in position.lent.items()
    ]
    return out


def _license(position: Position, catalog: Catalog, today: dt.date) -> LicenseOut:
    return LicenseOut(
        license=catalog.display_name(position.tag),
        entitlement_tag=position.tag,
        virtual_account=position.virtual_account,
        quantity=position.purchased,
        in_use=position.in_use_total,
        available=position.available,
        reserved=position.reserved,
        export_keys=position.exported,
        status=position.status,
        license_details=[
            LicenseDetail(
                license_type=line.license_type,
                quantity=line.quantity,
                start_date=line.start_date,
                end_date=line.end_date,
                subscription_id=line.subscription_id,
                status=line_status(line, today),
            )
            for line in position.lines
        ],
        license_substitutions=_substitutions(position, catalog),
    )


def _transferred(done: list[Transferred], catalog: Catalog) -> LicenseTransferOut:
    moved = sum(t.quantity for t in done)
    return LicenseTransferOut(
        message=f"{moved} license(s) transferred",
        transfers=[
            TransferredOut(
                entitlement_tag=t.tag,
                license=catalog.display_name(t.tag),
                quantity=t.quantity,
                source_virtual_account=t.source,
                target_virtual_account=t.target,
                lines=[
                    TransferredLineOut(
                        source_line_id=m.source_line_id,
                        target_line_id=m.target_line_id,
                        quantity=m.quantity,
                        license_type=m.license_type,
                        start_date=m.start_date,
                        end_date=m.end_date,
                        subscription_id=m.subscription_id,
                    )
                    for m in t.lines
                ],
            )
            for t in done
        ],
    )


def _catalog_entry(entry: CatalogEntry) -> CatalogEntryOut:
    return CatalogEntryOut(
        entitlement_tag=entry.tag,
        display_name=entry.display_name,
        description=entry.description,
        family=entry.family,
        tier=entry.tier,
        export_restricted=entry.export_restricted,
        export_feature=entry.export_feature,
        tag_origin=entry.tag_origin,
        license_type=entry.license_type,
        stands_in_for=list(entry.stands_in_for),
    )
