"""Registration tokens of a virtual account: create, list, revoke."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from satellite.api.context import Services
from satellite.api.operation import READ, WRITE, operation
from satellite.api.paths import VA
from satellite.api.scopes import InVirtualAccount
from satellite.api.types import Description, ExportFlag, Limit, Offset, Response, Secret
from satellite.domain.access import Principal
from satellite.domain.models import TokenStatus
from satellite.domain.paging import ALL
from satellite.services.tokens import TokenView


class TokenCreate(InVirtualAccount):
    description: Description = ""
    expires_after_days: Annotated[int, msgspec.Meta(ge=1, le=365)] | None = None
    # Absent: "Allowed" where the account may use export-controlled functionality.
    export_controlled: ExportFlag | bool | None = None
    number_of_uses: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None


class TokensQuery(InVirtualAccount):
    limit: Limit = ALL
    offset: Offset = 0


class TokenRevoke(InVirtualAccount):
    tokens: Annotated[list[Secret], msgspec.Meta(min_length=1, max_length=1000)]


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


@operation("POST", VA + "/tokens", "Create a registration token", tag="tokens", access=WRITE)
async def create_token(services: Services, caller: Principal, request: TokenCreate) -> TokenCreated:
    view = await services.tokens.create(
        caller,
        request.account,
        request.va,
        description=request.description,
        expires_after_days=request.expires_after_days,
        export_controlled=_export_flag(request.export_controlled),
        max_uses=request.number_of_uses,
    )
    return TokenCreated(token_info=_info(view, dt.datetime.now(dt.UTC)))


@operation("GET", VA + "/tokens", "Registration tokens", tag="tokens", access=READ, no_store=True)
async def list_tokens(services: Services, caller: Principal, request: TokensQuery) -> TokenList:
    views = await services.tokens.list_tokens(
        caller, request.account, request.va, limit=request.limit, offset=request.offset
    )
    now = dt.datetime.now(dt.UTC)
    return TokenList(tokens=[_info(view, now) for view in views])


@operation("POST", VA + "/tokens/revoke", "Revoke registration tokens", tag="tokens", access=WRITE)
async def revoke_tokens(services: Services, caller: Principal, request: TokenRevoke) -> TokenList:
    views = await services.tokens.revoke(caller, request.account, request.va, request.tokens)
    now = dt.datetime.now(dt.UTC)
    return TokenList(tokens=[_info(view, now) for view in views])


OPERATIONS = (create_token, list_tokens, revoke_tokens)


def _export_flag(value: ExportFlag | bool | None) -> bool | None:
    """``exportControlled`` as given: "Allowed", "Not Allowed", a boolean, or absent."""
    return value if value is None or isinstance(value, bool) else value == "Allowed"


def _info(view: TokenView, now: dt.datetime) -> TokenInfo:
    row = view.row
    return TokenInfo(
        token=view.token,
        description=row.description,
        expiration_date=row.expires_at,
        export_controlled="Allowed" if row.export_controlled else "Not Allowed",
        number_of_uses=row.max_uses,
        uses=row.uses,
        status=row.status(now),
        virtual_account=row.virtual_account,
        created_by=row.created_by,
        created_at=row.created_at,
    )
