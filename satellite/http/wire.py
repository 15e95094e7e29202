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

from satellite.api.products import DeviceOut, ReservationOut, Sudi

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
    status: Literal["Granted", "Returned", "Released"]
    granted_at: dt.datetime
    ended_at: dt.datetime | None
    end_reason: str | None  # returned, deregistered, removed, re-registered


class ExportKeyList(Response):
    total_records: int
    export_keys: list[ExportKeyOut]


# --- specific license reservation (SLR) ----------------------------------------------------

CodeText = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]


class ReservationLicenseIn(Request):
    entitlement_tag: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    quantity: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)]
    precedence: Literal["LONGEST_TERM_FIRST", "SHORTEST_TERM_FIRST"] = "LONGEST_TERM_FIRST"


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
