"""Who may call the admin API: API clients (client credentials) and users (passwords)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from satellite.api.context import Services
from satellite.api.operation import ANYONE, SYSTEM, operation
from satellite.api.types import Description, Name, Request, Response, StatusResponse
from satellite.domain.access import Principal, Role
from satellite.domain.models import PrincipalRecord

Password = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
AccountNames = Annotated[list[Name], msgspec.Meta(max_length=1000)]


class PrincipalsQuery(msgspec.Struct, rename="camel", kw_only=True):
    """The lists take no parameters; their query string was never read, so unknown
    fields are ignored rather than refused."""


class ClientCreate(Request):
    role: Role
    accounts: AccountNames = msgspec.field(default_factory=list)
    description: Description = ""


class ClientDisable(Request):
    client: str


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
    password: Password
    role: Role
    accounts: AccountNames = msgspec.field(default_factory=list)


class UserDisable(Request):
    user: str


class PasswordSet(Request):
    user: str
    password: Password


class PrincipalOne(Response):
    item: PrincipalOut


@operation("GET", "/clients", "API clients", tag="access", access=ANYONE)
async def list_clients(
    services: Services, caller: Principal, request: PrincipalsQuery
) -> PrincipalList:
    records = await services.principals.list_principals(caller, "client")
    return PrincipalList(items=[principal_out(r) for r in records])


# The answer holds the client's secret, shown this once: no cache may keep it.
@operation(
    "POST",
    "/clients",
    "Create an API client (system admin)",
    tag="access",
    access=SYSTEM,
    no_store=True,
)
async def create_client(
    services: Services, caller: Principal, request: ClientCreate
) -> ClientCreated:
    new = await services.principals.create_client(
        caller, request.role, request.accounts, request.description
    )
    return ClientCreated(
        client_id=new.client_id,
        client_secret=new.client_secret,
        client=principal_out(new.record),
    )


@operation(
    "POST",
    "/clients/{client}/disable",
    "Disable an API client and revoke its tokens",
    tag="access",
    access=SYSTEM,
)
async def disable_client(
    services: Services, caller: Principal, request: ClientDisable
) -> PrincipalOne:
    record = await services.principals.disable(caller, "client", request.client)
    return PrincipalOne(item=principal_out(record))


@operation("GET", "/users", "Users", tag="access", access=ANYONE)
async def list_users(
    services: Services, caller: Principal, request: PrincipalsQuery
) -> PrincipalList:
    records = await services.principals.list_principals(caller, "user")
    return PrincipalList(items=[principal_out(r) for r in records])


@operation("POST", "/users", "Create a user (system admin)", tag="access", access=SYSTEM)
async def create_user(services: Services, caller: Principal, request: UserCreate) -> PrincipalOne:
    record = await services.principals.create_user(
        caller, request.username, request.password, request.role, request.accounts
    )
    return PrincipalOne(item=principal_out(record))


@operation(
    "POST",
    "/users/{user}/disable",
    "Disable a user and revoke its tokens",
    tag="access",
    access=SYSTEM,
)
async def disable_user(services: Services, caller: Principal, request: UserDisable) -> PrincipalOne:
    record = await services.principals.disable(caller, "user", request.user)
    return PrincipalOne(item=principal_out(record))


@operation(
    "POST",
    "/users/{user}/password",
    "Set a user's password and revoke its tokens",
    tag="access",
    access=SYSTEM,
)
async def set_user_password(
    services: Services, caller: Principal, request: PasswordSet
) -> StatusResponse:
    await services.principals.set_password(caller, request.user, request.password)
    return StatusResponse(message=f"password of user {request.user!r} set; its tokens revoked")


OPERATIONS = (
    list_clients,
    create_client,
    disable_client,
    list_users,
    create_user,
    disable_user,
    set_user_password,
)


def principal_out(record: PrincipalRecord) -> PrincipalOut:
    return PrincipalOut(
        name=record.login,
        role=record.role,
        accounts=list(record.account_names),
        description=record.description,
        created_at=record.created_at,
        disabled=record.disabled_at is not None,
    )
