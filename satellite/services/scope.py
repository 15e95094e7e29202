"""Account isolation: every account-scoped service call resolves its account here.

An account the caller may not see is reported as missing (404), never as forbidden, so
that a caller cannot learn which accounts exist.
"""

from __future__ import annotations

from satellite.domain.access import Principal
from satellite.domain.models import Account, ProductInstance, VirtualAccount
from satellite.errors import Forbidden, NotFound
from satellite.storage import accounts, product_instances
from satellite.storage.db import Connection, RowLock


async def readable_account(conn: Connection, principal: Principal, name: str) -> Account:
    account = await accounts.get_account(conn, name, lock=None)
    if account is None or not principal.sees(account.id):
        raise NotFound(f"account {name!r} not found", field="account")
    return account


async def writable_account(
    conn: Connection, principal: Principal, name: str, *, lock: RowLock = "share"
) -> Account:
    """The account, locked until the transaction ends: by default against changes to the
    account itself (its flags), so that a change checked against them stays valid."""
    account = await accounts.get_account(conn, name, lock=lock)
    if account is None or not principal.sees(account.id):
        raise NotFound(f"account {name!r} not found", field="account")
    if not principal.may_write(account.id):
        raise may_not_change(principal, name)
    return account


def may_not_change(principal: Principal, name: str) -> Forbidden:
    """The refusal of a change to an account the caller sees but may not change."""
    return Forbidden(f"role {principal.role} may not change account {name!r}")


async def virtual_account(
    conn: Connection, account: Account, name: str, *, lock: RowLock = None
) -> VirtualAccount:
    """The virtual account; ``share`` keeps it from being deleted until the transaction ends."""
    va = await accounts.get_virtual_account(conn, account.id, name, lock=lock)
    if va is None:
        raise NotFound(
            f"virtual account {name!r} not found in account {account.name!r}",
            field="virtualAccount",
        )
    return va


def named_virtual_accounts(
    vas: list[VirtualAccount], names: list[str], account: str
) -> list[VirtualAccount]:
    """The virtual accounts of ``vas`` that ``names`` name, ignoring case as every lookup of
    a virtual account does; NotFound naming the first unknown name."""
    by_key = {va.name.lower(): va for va in vas}
    for name in names:
        if name.lower() not in by_key:
            raise NotFound(
                f"virtual account {name!r} not found in account {account!r}",
                field="virtualAccounts",
            )
    wanted = {name.lower() for name in names}
    return [va for va in vas if va.name.lower() in wanted]


async def product_instance(
    conn: Connection, va: VirtualAccount, product_instance_id: str
) -> ProductInstance:
    """A product instance of the virtual account, whatever its status."""
    found = await product_instances.get_instance(conn, product_instance_id)
    if found is None or found.virtual_account_id != va.id:
        raise NotFound(
            f"product instance {product_instance_id!r} not found in virtual account {va.name!r}",
            field="productInstanceId",
        )
    return found


def require_system_admin(principal: Principal) -> None:
    if not principal.is_system_admin:
        raise system_admins_only()


def system_admins_only() -> Forbidden:
    return Forbidden("only a system admin may do this")
