"""Smart accounts and their virtual accounts: list, create, change, delete."""

from __future__ import annotations

import datetime as dt

import msgspec

from satellite.api.context import Services
from satellite.api.operation import ANYONE, READ, SYSTEM, WRITE, Access, operation
from satellite.api.paths import ACCOUNT, VA
from satellite.api.scopes import InAccount, InVirtualAccount
from satellite.api.types import Description, Domain, Flag, Name, Request, Response, StatusResponse
from satellite.domain.access import Principal
from satellite.domain.models import Account, VirtualAccount

# A system admin's change to one account: the account must be one the caller sees (else
# it is missing, whatever the role), then the role is checked.
SYSTEM_IN_ACCOUNT = Access("system-admin")


class AccountsQuery(msgspec.Struct, rename="camel", kw_only=True):
    """The account list takes no parameters. Its query string (and the toolkit's POST
    body) was never read, so unknown fields are ignored rather than refused."""


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


class AccountUpdate(InAccount):
    domain: Domain | None = None  # "" removes it
    description: Description | None = None
    export_controlled_allowed: bool | None = None


class AccountOne(Response):
    account: AccountOut


class VirtualAccountsQuery(InAccount, forbid_unknown_fields=False):
    """No parameters but the path's; the query string was never read (as above)."""


class VirtualAccountOut(Response):
    name: str
    description: str
    is_default: Flag
    created_at: dt.datetime


class VirtualAccountList(Response):
    virtual_accounts: list[VirtualAccountOut]


class VirtualAccountQuery(InVirtualAccount, forbid_unknown_fields=False):
    """No parameters but the path's (as the list)."""


class VirtualAccountOne(Response):
    virtual_account: VirtualAccountOut


class VirtualAccountCreate(InAccount):
    name: Name
    description: Description = ""


class VirtualAccountUpdate(InVirtualAccount):
    """A new name and/or description (absent: unchanged), with create's limits."""

    name: Name | None = None
    description: Description | None = None


class VirtualAccountDelete(InVirtualAccount):
    pass


async def _visible(services: Services, caller: Principal) -> AccountList:
    accounts = await services.accounts.visible_accounts(caller)
    return AccountList(accounts=[account_out(a) for a in accounts])


@operation("GET", "/accounts", "Accounts the caller may see", tag="accounts", access=ANYONE)
async def list_accounts(
    services: Services, caller: Principal, request: AccountsQuery
) -> AccountList:
    return await _visible(services, caller)


# The toolkit asks for the same list with a POST.
@operation(
    "POST",
    "/upstream_satellites/accounts",
    "Accounts the caller may see",
    tag="accounts",
    access=ANYONE,
)
async def list_upstream_accounts(
    services: Services, caller: Principal, request: AccountsQuery
) -> AccountList:
    return await _visible(services, caller)


@operation("POST", "/accounts", "Create an account (system admin)", tag="accounts", access=SYSTEM)
async def create_account(
    services: Services, caller: Principal, request: AccountCreate
) -> AccountOne:
    account = await services.accounts.create_account(
        caller,
        request.name,
        request.description,
        request.export_controlled_allowed,
        request.domain,
    )
    return AccountOne(account=account_out(account))


@operation(
    "POST",
    ACCOUNT + "/update",
    "Change an account (system admin)",
    tag="accounts",
    access=SYSTEM_IN_ACCOUNT,
)
async def update_account(
    services: Services, caller: Principal, request: AccountUpdate
) -> AccountOne:
    account = await services.accounts.update_account(
        caller,
        request.account,
        request.description,
        request.export_controlled_allowed,
        request.domain,
    )
    return AccountOne(account=account_out(account))


@operation(
    "GET", ACCOUNT + "/virtual-accounts", "Virtual accounts", tag="virtual accounts", access=READ
)
async def list_virtual_accounts(
    services: Services, caller: Principal, request: VirtualAccountsQuery
) -> VirtualAccountList:
    vas = await services.accounts.virtual_accounts(caller, request.account)
    return VirtualAccountList(virtual_accounts=[virtual_account_out(v) for v in vas])


@operation("GET", VA, "One virtual account", tag="virtual accounts", access=READ)
async def get_virtual_account(
    services: Services, caller: Principal, request: VirtualAccountQuery
) -> VirtualAccountOne:
    va = await services.accounts.virtual_account(caller, request.account, request.va)
    return VirtualAccountOne(virtual_account=virtual_account_out(va))


@operation(
    "POST",
    ACCOUNT + "/virtual-accounts",
    "Create a virtual account",
    tag="virtual accounts",
    access=WRITE,
)
async def create_virtual_account(
    services: Services, caller: Principal, request: VirtualAccountCreate
) -> VirtualAccountList:
    va = await services.accounts.create_virtual_account(
        caller, request.account, request.name, request.description
    )
    return VirtualAccountList(virtual_accounts=[virtual_account_out(va)])


@operation(
    "POST",
    VA + "/update",
    "Rename a virtual account or change its description",
    tag="virtual accounts",
    access=WRITE,
)
async def update_virtual_account(
    services: Services, caller: Principal, request: VirtualAccountUpdate
) -> VirtualAccountList:
    va = await services.accounts.update_virtual_account(
        caller, request.account, request.va, request.name, request.description
    )
    return VirtualAccountList(virtual_accounts=[virtual_account_out(va)])


@operation(
    "POST",
    VA + "/delete",
    "Delete an empty virtual account",
    tag="virtual accounts",
    access=WRITE,
)
async def delete_virtual_account(
    services: Services, caller: Principal, request: VirtualAccountDelete
) -> StatusResponse:
    await services.accounts.delete_virtual_account(caller, request.account, request.va)
    return StatusResponse(message=f"virtual account {request.va!r} deleted")


OPERATIONS = (
    list_upstream_accounts,
    list_accounts,
    create_account,
    update_account,
    list_virtual_accounts,
    get_virtual_account,
    create_virtual_account,
    update_virtual_account,
    delete_virtual_account,
)


def account_out(account: Account) -> AccountOut:
    return AccountOut(
        id=account.id,
        name=account.name,
        domain=account.domain,
        description=account.description,
        export_controlled_allowed=account.export_controlled_allowed,
        created_at=account.created_at,
    )


def virtual_account_out(va: VirtualAccount) -> VirtualAccountOut:
    return VirtualAccountOut(
        name=va.name,
        description=va.description,
        is_default="true" if va.is_default else "false",
        created_at=va.created_at,
    )
