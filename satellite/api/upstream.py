"""Sync with the upstream, the upstream's side: satellite registration tokens, the
satellites registered and what they reported, and answering a sync request an operator
carried in (disconnected mode). The endpoints satellites themselves post their signed
bundles to are protocol, not operations (``satellite.http.handlers.sync``)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec

from satellite.api.context import Services
from satellite.api.files import Download, Upload
from satellite.api.operation import ANYONE, READ, WRITE, operation
from satellite.api.paths import ACCOUNT
from satellite.api.products import Sudi
from satellite.api.scopes import InAccount
from satellite.api.types import Description, Limit, Offset, Request, Response, StatusResponse
from satellite.domain.access import Principal
from satellite.domain.clock import utc_now
from satellite.domain.models import TokenStatus
from satellite.domain.sync import (
    MirroredProduct,
    MirroredUsage,
    RegisteredSatellite,
    SatelliteToken,
)
from sync.transport import BUNDLE_TYPE


class SatelliteTokenCreate(InAccount):
    description: Description = ""
    expires_days: Annotated[int, msgspec.Meta(ge=1, le=365)] | None = None


class SatelliteTokensQuery(InAccount, forbid_unknown_fields=False):
    """No parameters: a query string sent anyway is ignored, as it always was."""


class SatellitesQuery(InAccount, forbid_unknown_fields=False):
    """No parameters: a query string sent anyway is ignored, as it always was."""


class SatelliteTokenRevoke(InAccount):
    token: str  # the token's id (the path's)


class SatelliteIn(InAccount):
    satellite: str  # the satellite's id (the path's)


class SatelliteProductsQuery(SatelliteIn):
    limit: Limit = 1000
    offset: Offset = 0


class SyncRequestUpload(Request):
    bundle: Upload  # a satellite's sync request or registration request, the raw body


class FingerprintQuery(Request, forbid_unknown_fields=False):
    """No parameters: a query string sent anyway is ignored."""


class UpstreamKeyOut(Response):
    # What a satellite's operator gives as the upstream key fingerprint when registering:
    # an answer signed with another key is refused there.
    fingerprint: str


class SatelliteTokenOut(Response):
    id: int
    description: str
    status: TokenStatus
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
    status: str  # as the satellite reported it: "registered", ... (ProductInstanceStatus)
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


class SatelliteMirrorOut(Response):
    satellite: SatelliteOut
    products: list[MirroredProductOut]
    usage: list[MirroredUsageOut]


@operation(
    "POST",
    ACCOUNT + "/satellite-tokens",
    "Create a satellite registration token",
    tag="sync",
    access=WRITE,
)
async def create_satellite_token(
    services: Services, caller: Principal, request: SatelliteTokenCreate
) -> SatelliteTokenOut:
    created = await services.upstream.create_token(
        caller, request.account, request.description, request.expires_days
    )
    return satellite_token_out(created.token, utc_now(), created.secret)


@operation(
    "GET",
    ACCOUNT + "/satellite-tokens",
    "List satellite registration tokens",
    tag="sync",
    access=READ,
)
async def list_satellite_tokens(
    services: Services, caller: Principal, request: SatelliteTokensQuery
) -> SatelliteTokenList:
    tokens = await services.upstream.list_tokens(caller, request.account)
    now = utc_now()
    return SatelliteTokenList(satellite_tokens=[satellite_token_out(t, now) for t in tokens])


@operation(
    "POST",
    ACCOUNT + "/satellite-tokens/{token}/revoke",
    "Revoke a satellite registration token",
    tag="sync",
    access=WRITE,
)
async def revoke_satellite_token(
    services: Services, caller: Principal, request: SatelliteTokenRevoke
) -> StatusResponse:
    await services.upstream.revoke_token(caller, request.account, request.token)
    return StatusResponse(message=f"satellite token {request.token} revoked")


@operation(
    "GET",
    ACCOUNT + "/satellites",
    "Satellites registered with this upstream",
    tag="sync",
    access=READ,
)
async def list_satellites(
    services: Services, caller: Principal, request: SatellitesQuery
) -> SatelliteList:
    satellites = await services.upstream.satellites(caller, request.account)
    return SatelliteList(satellites=[satellite_out(s) for s in satellites])


@operation(
    "POST",
    ACCOUNT + "/satellites/{satellite}/revoke",
    "Revoke a satellite: no more syncs from it; its products and usage leave the view",
    tag="sync",
    access=WRITE,
)
async def revoke_satellite(
    services: Services, caller: Principal, request: SatelliteIn
) -> StatusResponse:
    await services.upstream.revoke_satellite(caller, request.account, request.satellite)
    return StatusResponse(message=f"satellite {request.satellite} revoked")


@operation(
    "GET",
    ACCOUNT + "/satellites/{satellite}/products",
    "A satellite's products and usage as its last sync left them",
    tag="sync",
    access=READ,
)
async def satellite_products(
    services: Services, caller: Principal, request: SatelliteProductsQuery
) -> SatelliteMirrorOut:
    sat, products, usage = await services.upstream.mirror(
        caller, request.account, request.satellite, request.limit, request.offset
    )
    return satellite_mirror_out(sat, products, usage)


@operation(
    "GET",
    "/sync/fingerprint",
    "The fingerprint of this upstream's signing key (for satellites registering with it)",
    tag="sync",
    access=ANYONE,
)
async def upstream_fingerprint(
    services: Services, caller: Principal, request: FingerprintQuery
) -> UpstreamKeyOut:
    return UpstreamKeyOut(fingerprint=services.upstream.fingerprint())


# The least role that has any request answered (see answer_upload): a caller offering the
# form only to those who may use it (the console) asks this.
ANSWERED_BY = WRITE


# The account is the one the request's satellite belongs to, known only from the bundle:
# the service checks the caller may change it (the same check as an account-scoped write).
@operation(
    "POST",
    "/sync/answer",
    "Answer a satellite's request bundle (disconnected mode; the file in, the answer out)",
    tag="sync",
    access=ANYONE,
)
async def answer_upload(
    services: Services, caller: Principal, request: SyncRequestUpload
) -> Download:
    """Disconnected mode at the upstream: a satellite's request in, the answer out."""
    answered, data = await services.upstream.answer_stream(request.bundle.chunks, caller)
    if answered.kind == "registration":
        filename = f"registration-answer-{answered.account}.bundle"
    else:
        filename = f"sync-answer-{answered.account}-{answered.sequence}.bundle"
    return Download(
        filename=filename,
        media_type=BUNDLE_TYPE,
        content=data,
    )


OPERATIONS = (
    create_satellite_token,
    list_satellite_tokens,
    revoke_satellite_token,
    list_satellites,
    revoke_satellite,
    satellite_products,
    upstream_fingerprint,
    answer_upload,
)


def satellite_token_out(
    token: SatelliteToken, now: dt.datetime, secret: str | None = None
) -> SatelliteTokenOut:
    return SatelliteTokenOut(
        id=token.id,
        description=token.description,
        status=token.status(now),
        created_by=token.created_by,
        created_at=token.created_at,
        expires_at=token.expires_at,
        used_at=token.used_at,
        token=secret,
    )


def satellite_out(sat: RegisteredSatellite) -> SatelliteOut:
    return SatelliteOut(
        satellite_id=sat.id,
        name=sat.name,
        revoked_at=sat.revoked_at,
        registered_at=sat.registered_at,
        last_sequence=sat.last_sequence,
        last_sync=sat.last_sync_at,
        products=sat.products,
    )


def satellite_mirror_out(
    sat: RegisteredSatellite, products: list[MirroredProduct], usage: list[MirroredUsage]
) -> SatelliteMirrorOut:
    return SatelliteMirrorOut(
        satellite=satellite_out(sat),
        products=[
            MirroredProductOut(
                product_instance_id=p.id,
                virtual_account=p.virtual_account,
                sudi=Sudi(udi_pid=p.udi_pid, udi_serial=p.udi_serial, udi_uuid=p.udi_uuid),
                product_type=p.product_type,
                product_version=p.product_version,
                hostname=p.hostname,
                ip_address=p.ip_address,
                export_controlled=p.export_controlled,
                status=p.status,
                registered_at=p.registered_at,
                ended_at=p.ended_at,
                export_keys=list(p.export_keys),
                reservation=p.reservation,
            )
            for p in products
        ],
        usage=[
            MirroredUsageOut(
                virtual_account=u.virtual_account,
                entitlement_tag=u.tag,
                in_use=u.in_use,
                reserved=u.reserved,
                export_keys=u.exported,
            )
            for u in usage
        ],
    )
