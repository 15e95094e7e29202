"""Wire messages of the admin API.

Field names follow the SSM On-Prem API toolkit as public automation calls it (camelCase,
plus the snake_case of the OAuth endpoint). The OpenAPI document is generated from these
same types. Each resource's types move to its module in ``satellite.api`` as its
operations do.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from satellite.api.products import (
    DeviceOut as DeviceOut,
)
from satellite.api.products import (
    LicenseUsage as LicenseUsage,
)
from satellite.api.products import (
    ReservationOut as ReservationOut,
)
from satellite.api.products import (
    ReservedLicenseOut as ReservedLicenseOut,
)
from satellite.api.products import (
    Sudi as Sudi,
)

# Shared with every operation (re-exported while resources move to satellite.api).
from satellite.api.types import (
    Description as Description,
)
from satellite.api.types import (
    Domain as Domain,
)
from satellite.api.types import (
    Empty as Empty,
)
from satellite.api.types import (
    ExportFlag as ExportFlag,
)
from satellite.api.types import (
    Flag as Flag,
)
from satellite.api.types import (
    Limit as Limit,
)
from satellite.api.types import (
    Name as Name,
)
from satellite.api.types import (
    NoBody as NoBody,
)
from satellite.api.types import (
    Offset as Offset,
)
from satellite.api.types import (
    Request as Request,
)
from satellite.api.types import (
    Response as Response,
)
from satellite.api.types import (
    Secret as Secret,
)
from satellite.api.types import (
    StatusResponse as StatusResponse,
)
from satellite.domain.access import Role
from satellite.domain.catalog import LicenseType, TagOrigin
from satellite.domain.paging import ALL

# --- OAuth ---------------------------------------------------------------------------------


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    grant_type: Literal["client_credentials", "password"]
    client_id: Secret | None = None
    client_secret: Secret | None = None
    username: Secret | None = None
    password: Secret | None = None
    scope: str | None = None


class TokenResponse(msgspec.Struct, kw_only=True):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the scheme name, not a secret
    expires_in: int


class RevokeRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    token: Secret
    token_type_hint: str | None = None


# --- accounts ------------------------------------------------------------------------------


class AccountOut(Response):
    id: int
    name: str
    domain: str | None  # the smart account's domain name (acme.example)
    description: str
    export_controlled_allowed: bool
    created_at: dt.datetime


class AccountList(Response):
    accounts: list[AccountOut]


class AccountCreate(Request):
    name: Name
    domain: Domain | None = None
    description: Description = ""
    export_controlled_allowed: bool = False


class AccountUpdate(Request):
    domain: Domain | None = None  # "" removes it
    description: Description | None = None
    export_controlled_allowed: bool | None = None


class AccountOne(Response):
    account: AccountOut


class VirtualAccountOut(Response):
    name: str
    description: str
    is_default: Flag
    created_at: dt.datetime


class VirtualAccountList(Response):
    virtual_accounts: list[VirtualAccountOut]


class VirtualAccountCreate(Request):
    name: Name
    description: Description = ""


# --- licenses ------------------------------------------------------------------------------


class LicensesQuery(Request):
    virtual_accounts: Annotated[list[Name], msgspec.Meta(max_length=1000)] | None = None
    limit: Limit = -1
    offset: Offset = 0


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
    status: Literal["In Compliance", "Out Of Compliance"]
    license_details: list[LicenseDetail]
    license_substitutions: list[LicenseSubstitution]


class LicenseList(Response):
    total_records: int
    licenses: list[LicenseOut]


class SubscriptionsQuery(Request):
    virtual_accounts: Annotated[list[Name], msgspec.Meta(max_length=1000)] | None = None
    limit: Limit = ALL
    offset: Offset = 0


class SubscriptionLicenseOut(Response):
    license: str
    entitlement_tag: str
    quantity: int
    license_type: str
    start_date: dt.date | None
    end_date: dt.date | None
    status: Literal["Active", "Pending", "Expired"]


class SubscriptionOut(Response):
    """The pool lines of one subscription in one virtual account."""

    subscription_id: str
    virtual_account: str
    start_date: dt.date | None  # the earliest of its lines
    end_date: dt.date | None  # the latest of its lines
    status: Literal["Active", "Pending", "Expired"]  # Active while one line is
    licenses: list[SubscriptionLicenseOut]


class SubscriptionList(Response):
    total_records: int
    subscriptions: list[SubscriptionOut]


class PoolLineIn(Request):
    entitlement_tag: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    quantity: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)]
    license_type: Literal["PERPETUAL", "TERM", "SUBSCRIPTION"] = "PERPETUAL"
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    subscription_id: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    export_restricted: bool | None = None


class PoolLineOut(Response):
    id: int
    entitlement_tag: str
    license: str
    quantity: int
    license_type: str
    start_date: dt.date | None
    end_date: dt.date | None
    subscription_id: str | None
    export_restricted: bool
    source: Literal["local", "upstream"]
    status: Literal["Active", "Pending", "Expired"]


class PoolLineList(Response):
    licenses: list[PoolLineOut]


class PoolLineOne(Response):
    license: PoolLineOut


class LicenseTransferItem(Request):
    license: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]  # tag or display name
    quantity: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)]
    target_virtual_account: Name
    license_type: Literal["PERPETUAL", "TERM", "SUBSCRIPTION"] | None = None  # None: any
    source_virtual_account: Name | None = None  # None: the request's
    precedence: Literal["LONGEST_TERM_FIRST", "SHORTEST_TERM_FIRST"] = "LONGEST_TERM_FIRST"


class LicenseTransferIn(Request):
    licenses: Annotated[list[LicenseTransferItem], msgspec.Meta(min_length=1, max_length=100)]
    source_virtual_account: Name | None = None


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
    status: Literal["SUCCESS"] = "SUCCESS"
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


# --- alerts and events ---------------------------------------------------------------------


class AlertsQuery(Request):
    limit: Limit = 100
    offset: Offset = 0
    include_cleared: bool = False


class AlertOut(Response):
    message_type: str
    severity: Literal["Info", "Minor", "Major", "Critical"]
    source: str
    message: str
    virtual_account: str | None
    created_at: dt.datetime
    cleared_at: dt.datetime | None


class AlertList(Response):
    alerts: list[AlertOut]


class EventsQuery(Request):
    account: Name | None = None
    action: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    actor: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: Limit = 100
    offset: Offset = 0


class EventOut(Response):
    id: int
    occurred_at: dt.datetime
    account: str | None
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    request_id: str | None


class EventList(Response):
    total_records: int
    events: list[EventOut]


# --- clients and users ---------------------------------------------------------------------


class ClientCreate(Request):
    role: Role
    accounts: Annotated[list[Name], msgspec.Meta(max_length=1000)] = msgspec.field(
        default_factory=list
    )
    description: Description = ""


class PrincipalOut(Response):
    name: str
    role: Role
    accounts: list[str]
    description: str
    created_at: dt.datetime
    disabled: bool


class ClientCreated(Response):
    client_id: str
    client_secret: str
    client: PrincipalOut


class PrincipalList(Response):
    items: list[PrincipalOut]


class UserCreate(Request):
    username: Name
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    role: Role
    accounts: Annotated[list[Name], msgspec.Meta(max_length=1000)] = msgspec.field(
        default_factory=list
    )


class PasswordSet(Request):
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class PrincipalOne(Response):
    item: PrincipalOut


# --- product instances (devices) -----------------------------------------------------------

UdiText = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
OptionalText = Annotated[str, msgspec.Meta(max_length=256)] | None


class DevicesQuery(Request):
    """Query parameters of the device list."""

    status: Annotated[str, msgspec.Meta(max_length=20)] = "Registered"  # or "all"
    udi_pid: UdiText | None = None
    udi_serial_number: UdiText | None = None
    host_name: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | None = None
    product_tag_name: UdiText | None = None
    limit: Limit = 100
    offset: Offset = 0


class DeviceList(Response):
    total_records: int
    devices: list[DeviceOut]


class UsageReportOut(Response):
    reported_at: dt.datetime
    license_usage: list[LicenseUsage]


class DeviceDetail(DeviceOut):
    usage_history: list[UsageReportOut]  # the last 50 reports, newest first


class SudiIn(Request):
    """A product's identity as public clients send it; PID and serial number name it."""

    udi_pid: UdiText
    udi_serial_number: UdiText
    uuid: UdiText | None = None  # when given, it must match too
    udi_vid: OptionalText = None
    suvi: OptionalText = None
    host_identifier: OptionalText = None
    mac_address: OptionalText = None


class DeviceTransferItem(Request):
    sudi: SudiIn
    target_virtual_account: Name
    product_tag_name: UdiText | None = None  # when given, it must match the product's type


class DeviceTransfer(Request):
    product_instances: Annotated[
        list[DeviceTransferItem], msgspec.Meta(min_length=1, max_length=1000)
    ]


class DeviceRemoveItem(Request):
    sudi: SudiIn
    product_tag_name: UdiText | None = None
    # A product holding a specific license reservation is removed by its return code.
    return_code: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)] | None = None


DeviceRemoveList = Annotated[list[DeviceRemoveItem], msgspec.Meta(min_length=1, max_length=1000)]


class DeviceRemove(Request):
    # Public clients send the first spelling (sic); the second is accepted as well.
    product_instaces_remove_requests: DeviceRemoveList | None = None
    product_instances_remove_requests: DeviceRemoveList | None = None


class DeviceChange(Response, kw_only=True):
    status: Literal["SUCCESS"] = "SUCCESS"
    message: str
    devices: list[DeviceOut]


# --- device API ---------------------------------------------------------------------------


class SignedMessage(msgspec.Struct, kw_only=True):
    """A flattened JWS (RFC 7515): ES256, ``nonce`` and ``url`` in the protected header."""

    protected: str
    payload: str
    signature: str


# --- problems ------------------------------------------------------------------------------


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    field: str | None = None
    request_id: str | None = msgspec.field(default=None, name="requestId")
    error: str | None = None  # OAuth error code (RFC 6749) on the token endpoints
