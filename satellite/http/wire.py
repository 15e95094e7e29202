"""Wire messages of the admin API.

Field names follow the SSM On-Prem API toolkit as public automation calls it (camelCase,
plus the snake_case of the OAuth endpoint). The OpenAPI document is generated from these
same types, so the document and the handlers cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from satellite.domain.access import Role
from satellite.domain.catalog import LicenseType, TagOrigin
from satellite.domain.compliance import ComplianceStatus, LineSource, LineStatus
from satellite.domain.models import AuthorizationStatus, Severity, TokenStatus
from satellite.domain.paging import ALL
from satellite.domain.reservation import Precedence

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[^/\x00-\x1f]+$")]
Description = Annotated[str, msgspec.Meta(max_length=500)]
# Every list that pages takes the same limit: -1 (the toolkit's "all") or a page size,
# and an offset counting the records skipped in the list's order (domain.paging).
Limit = Annotated[int, msgspec.Meta(ge=ALL, le=100_000)]
# PostgreSQL's OFFSET is a bigint: a larger one is refused here, naming the parameter.
Offset = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
ExportFlag = Literal["Allowed", "Not Allowed"]
# A flag of the toolkit's answers: a string, so that automation comparing it with "true"
# matches (a JSON boolean does not).
Flag = Literal["true", "false"]
Domain = Annotated[str, msgspec.Meta(max_length=253)]  # checked by domain.names.check_domain
Secret = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
# An export key's status as the toolkit spells it (domain.models.ExportKeyStatus is ours).
ExportKeyState = Literal["Granted", "Returned", "Released"]


class Request(msgspec.Struct, forbid_unknown_fields=True, rename="camel", kw_only=True):
    """Base of every request body: unknown fields are refused."""


class Response(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=False):
    """Base of every response body."""


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


class NoBody(Request):
    """An action that takes no parameters: the body is empty, ``{}`` or ``null``."""


class Empty(Response):
    pass


class StatusResponse(Response):
    status: Literal["SUCCESS"] = "SUCCESS"
    message: str = ""


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


# --- registration tokens -------------------------------------------------------------------


class TokenCreate(Request):
    description: Description = ""
    expires_after_days: Annotated[int, msgspec.Meta(ge=1, le=365)] | None = None
    # Absent: "Allowed" where the account may use export-controlled functionality.
    export_controlled: ExportFlag | bool | None = None
    number_of_uses: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None


class TokenInfo(Response):
    token: str
    description: str
    expiration_date: dt.datetime
    export_controlled: ExportFlag
    number_of_uses: int | None
    uses: int
    status: TokenStatus
    virtual_account: str
    created_by: str
    created_at: dt.datetime


class TokenCreated(Response):
    token_info: TokenInfo


class TokenList(Response):
    tokens: list[TokenInfo]


class TokensQuery(Request):
    """Query parameters of the token list."""

    limit: Limit = ALL
    offset: Offset = 0


class TokenRevoke(Request):
    tokens: Annotated[list[Secret], msgspec.Meta(min_length=1, max_length=1000)]


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
    status: ComplianceStatus
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
    status: LineStatus


class SubscriptionOut(Response):
    """The pool lines of one subscription in one virtual account."""

    subscription_id: str
    virtual_account: str
    start_date: dt.date | None  # the earliest of its lines
    end_date: dt.date | None  # the latest of its lines
    status: LineStatus  # Active while one line is
    licenses: list[SubscriptionLicenseOut]


class SubscriptionList(Response):
    total_records: int
    subscriptions: list[SubscriptionOut]


class PoolLineIn(Request):
    entitlement_tag: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    quantity: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)]
    license_type: LicenseType = "PERPETUAL"
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
    source: LineSource
    status: LineStatus


class PoolLineList(Response):
    licenses: list[PoolLineOut]


class PoolLineOne(Response):
    license: PoolLineOut


class LicenseTransferItem(Request):
    license: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]  # tag or display name
    quantity: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)]
    target_virtual_account: Name
    license_type: LicenseType | None = None  # None: any
    source_virtual_account: Name | None = None  # None: the request's
    precedence: Precedence = "LONGEST_TERM_FIRST"


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
    severity: Severity
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
    udi_serial: UdiText | None = msgspec.field(default=None, name="udiSerialNumber")
    host_name: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | None = None
    product_tag_name: UdiText | None = None
    limit: Limit = 100
    offset: Offset = 0


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
    license_type: str
    start_date: dt.date | None
    end_date: dt.date | None
    subscription_id: str | None


class ReservationOut(Response):
    # "Pending Confirmation" (first code issued), "Reserved" (settled), "In Transition"
    # (an updated code awaits the product's confirmation code), "Returned", "Removed"
    status: str
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
    status: str  # "Registered", "Deregistered", "Removed", ...
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


class DeviceList(Response):
    total_records: int
    devices: list[DeviceOut]


# --- export-controlled features ------------------------------------------------------------


class ExportKeysQuery(Request):
    """Query parameters of the export key list."""

    status: Annotated[str, msgspec.Meta(max_length=20)] = "Granted"  # or "all"
    limit: Limit = 100
    offset: Offset = 0


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
    end_reason: str | None  # returned, deregistered, removed, re-registered


class ExportKeyList(Response):
    total_records: int
    export_keys: list[ExportKeyOut]


class UsageReportOut(Response):
    reported_at: dt.datetime
    license_usage: list[LicenseUsage]


class DeviceDetail(DeviceOut):
    usage_history: list[UsageReportOut]  # the last 50 reports, newest first


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


# --- specific license reservation (SLR) ----------------------------------------------------

CodeText = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]


class ReservationLicenseIn(Request):
    entitlement_tag: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    quantity: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)]
    precedence: Precedence = "LONGEST_TERM_FIRST"


ReservationLicenses = Annotated[
    list[ReservationLicenseIn], msgspec.Meta(min_length=1, max_length=1000)
]


class ReservationRequestIn(Request):
    reservation_code: CodeText  # the product's request code
    licenses: ReservationLicenses
    reservation_type: Literal["SPECIFIC"] = "SPECIFIC"


class ReserveLicenses(Request):
    reservation_requests: Annotated[
        list[ReservationRequestIn], msgspec.Meta(min_length=1, max_length=100)
    ]


class AuthorizationCodeOut(Response):
    authorization_code: str  # the <specificPLR> XML to install on the product
    reservation_code: str
    product_instance_id: str
    sudi: Sudi
    timestamp: int
    reservation: ReservationOut


class ReserveLicensesOut(Response, kw_only=True):
    status: Literal["SUCCESS"] = "SUCCESS"
    authorization_codes: list[AuthorizationCodeOut]


class ReservationUpdate(Request):
    licenses: ReservationLicenses  # the product's reserved licenses from now on


class ConfirmationCodeIn(Request):
    confirmation_code: CodeText


class ReturnCodeIn(Request):
    return_code: CodeText


class ForceRemoveIn(Request):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class ReservationChange(Response, kw_only=True):
    status: Literal["SUCCESS"] = "SUCCESS"
    message: str
    device: DeviceOut


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


# --- sync with the upstream ----------------------------------------------------------------

Url = Annotated[str, msgspec.Meta(min_length=8, max_length=2000, pattern=r"^https?://")]


class SyncRegister(Request):
    upstream: Url
    token: Secret
    name: Name | None = None  # how the upstream lists this satellite (default: the host name)
    # What `satellite sync fingerprint` prints at the upstream: a key with another is refused.
    upstream_fingerprint: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None


class SyncHistoryOut(Response):
    mode: str
    operation: str
    started_at: dt.datetime
    finished_at: dt.datetime
    outcome: str
    sequence: int | None
    counts: dict[str, Any]
    error: str | None


class SyncStatusOut(Response):
    account: str
    registered: bool
    registration_pending: bool
    mode: str | None = None  # "connected" or "disconnected"
    satellite_id: str | None = None
    upstream: str | None = None
    upstream_account: str | None = None
    upstream_fingerprint: str | None = None  # of the pinned upstream key
    registered_at: dt.datetime | None = None
    last_success: dt.datetime | None = None
    last_attempt: dt.datetime | None = None
    last_error: str | None = None
    last_error_at: dt.datetime | None = None
    next_run: dt.datetime | None = None
    request_sequence: int = 0
    applied_sequence: int = 0
    authorizations_until: dt.datetime | None = None
    horizon_passed: bool = False
    history: list[SyncHistoryOut] = msgspec.field(default_factory=list)


class SyncResultOut(Response):
    account: str
    sequence: int
    repeated: bool  # the answer had been applied before: nothing changed
    counts: dict[str, int]


class SatelliteTokenCreate(Request):
    description: Description = ""
    expires_days: Annotated[int, msgspec.Meta(ge=1, le=365)] | None = None


class SatelliteTokenOut(Response):
    id: int
    description: str
    status: str
    created_by: str
    created_at: dt.datetime
    expires_at: dt.datetime
    used_at: dt.datetime | None
    token: str | None = None  # only when created


class SatelliteTokenList(Response):
    satellite_tokens: list[SatelliteTokenOut]


class SatelliteOut(Response):
    satellite_id: str
    name: str
    revoked_at: dt.datetime | None
    registered_at: dt.datetime
    last_sequence: int
    last_sync: dt.datetime | None
    products: int


class SatelliteList(Response):
    satellites: list[SatelliteOut]


class MirroredProductOut(Response):
    product_instance_id: str
    virtual_account: str
    sudi: Sudi
    product_type: str
    product_version: str
    hostname: str | None
    ip_address: str | None
    export_controlled: bool
    status: str
    registered_at: dt.datetime
    ended_at: dt.datetime | None
    export_keys: list[str]  # features it holds export keys for
    reservation: dict[str, Any] | None


class MirroredUsageOut(Response):
    virtual_account: str
    entitlement_tag: str
    in_use: int
    reserved: int
    export_keys: int


class SatelliteProductsQuery(Request):
    limit: Limit = 1000
    offset: Offset = 0


class SatelliteMirrorOut(Response):
    satellite: SatelliteOut
    products: list[MirroredProductOut]
    usage: list[MirroredUsageOut]
