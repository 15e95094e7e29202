"""Smart accounts and their virtual accounts."""

from __future__ import annotations

from satellite.domain.access import Principal
from satellite.domain.models import Account, VirtualAccount
from satellite.domain.names import check_description, check_domain, check_name
from satellite.errors import Conflict
from satellite.services import audit, scope
from satellite.storage import accounts, alerts, product_instances
from satellite.storage.db import Database

DEFAULT_VIRTUAL_ACCOUNT = "DEFAULT"


class AccountService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def visible_accounts(self, principal: Principal) -> list[Account]:
        async with self._db.connection() as conn:
            only = None if principal.is_system_admin else principal.account_ids
            return await accounts.list_accounts(conn, only)

    async def visible_account(self, principal: Principal, name: str) -> Account:
        """The account if the caller sees it; NotFound (as for one that does not exist)."""
        async with self._db.connection() as conn:
            return await scope.readable_account(conn, principal, name)

    async def create_account(
        self,
        principal: Principal,
        name: str,
        description: str,
        export_controlled_allowed: bool,
        domain: str | None = None,
    ) -> Account:
        """A new account with its DEFAULT virtual account, as every smart account has one."""
        scope.require_system_admin(principal)
        check_name(name)
        check_description(description)
        if domain is not None:
            check_domain(domain)
        async with self._db.transaction() as conn:
            account = await accounts.insert_account(
                conn, name, description, export_controlled_allowed, domain or None
            )
            await accounts.insert_virtual_account(
                conn, account.id, DEFAULT_VIRTUAL_ACCOUNT, "Default virtual account", True
            )
            await audit.record(
                conn,
                principal,
                "account.created",
                name,
                account_id=account.id,
                export_controlled_allowed=export_controlled_allowed,
                **({"domain": account.domain} if account.domain else {}),
            )
            return account

    async def update_account(
        self,
        principal: Principal,
        name: str,
        description: str | None,
        export_controlled_allowed: bool | None,
        domain: str | None = None,
    ) -> Account:
        """Change what is not None; a ``domain`` of "" removes the account's domain."""
        if description is not None:
            check_description(description)
        if domain is not None:
            check_domain(domain)
        async with self._db.transaction() as conn:
            account = await scope.writable_account(conn, principal, name, lock="update")
            scope.require_system_admin(principal)
            if description is None and export_controlled_allowed is None and domain is None:
                return account  # nothing to change, nothing to record
            if export_controlled_allowed is False and account.export_controlled_allowed:
                tokens, lines, keys = await accounts.export_controlled_holdings(conn, account.id)
                if keys:
                    raise Conflict(
                        f"account {name!r} still has {keys} export key(s) granted to its "
                        "products: they must be returned (or the products holding them "
                        "deregistered or removed) before export-controlled functionality can "
                        "be disallowed",
                        field="exportControlledAllowed",
                    )
                if tokens or lines:
                    raise Conflict(
                        f"account {name!r} still has {tokens} active export-controlled "
                        f"token(s) and {lines} export-restricted license line(s); revoke and "
                        "remove them before disallowing export-controlled functionality",
                        field="exportControlledAllowed",
                    )
            updated = await accounts.update_account(
                conn, account.id, description, export_controlled_allowed, domain
            )
            await audit.record(
                conn,
                principal,
                "account.updated",
                name,
                account_id=account.id,
                description=description,
                export_controlled_allowed=export_controlled_allowed,
                domain=domain,
            )
            return updated

    async def virtual_accounts(self, principal: Principal, account: str) -> list[VirtualAccount]:
        async with self._db.connection() as conn:
            acc = await scope.readable_account(conn, principal, account)
            return await accounts.list_virtual_accounts(conn, acc.id)

    async def virtual_account(
        self, principal: Principal, account: str, name: str
    ) -> VirtualAccount:
        """One virtual account, named ignoring case as every lookup of one is."""
        async with self._db.connection() as conn:
            acc = await scope.readable_account(conn, principal, account)
            return await scope.virtual_account(conn, acc, name)

    async def create_virtual_account(
        self, principal: Principal, account: str, name: str, description: str
    ) -> VirtualAccount:
        check_name(name)
        check_description(description)
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account)
            va = await accounts.insert_virtual_account(conn, acc.id, name, description, False)
            await audit.record(
                conn, principal, "virtual_account.created", f"{account}/{name}", account_id=acc.id
            )
            return va

    async def update_virtual_account(
        self,
        principal: Principal,
        account: str,
        va_name: str,
        name: str | None,
        description: str | None,
    ) -> VirtualAccount:
        """Rename it and/or change its description (what is not None). Everything refers to
        it by id, so what it holds goes with it; but its name is the key a sync matches it
        by at the other end, and the default's name every account shares: those keep
        their names."""
        if name is not None:
            check_name(name)
        if description is not None:
            check_description(description)
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account)
            va = await scope.virtual_account(conn, acc, va_name, lock="update")
            renamed = name is not None and name != va.name
            if renamed and va.is_default:
                raise Conflict(
                    f"virtual account {va.name!r} is the account's default: it keeps its name",
                    field="name",
                )
            if renamed and await accounts.synced_by_name(conn, acc.id):
                raise Conflict(
                    f"account {account!r} syncs with an upstream or its satellites, which know "
                    f"virtual account {va.name!r} by its name: it keeps its name",
                    field="name",
                )
            changed = description is not None and description != va.description
            if not renamed and not changed:
                return va  # nothing to change, nothing to record
            updated = await accounts.update_virtual_account(
                conn, va.id, name if renamed else None, description if changed else None
            )
            details: dict[str, str] = {"from": va.name, "to": updated.name} if renamed else {}
            if changed:
                details["description"] = updated.description
            if renamed:
                await alerts.rename_pool_alerts(conn, va.id, updated.name)
            await audit.record(
                conn,
                principal,
                "virtual_account.updated",
                f"{account}/{updated.name}",
                account_id=acc.id,
                **details,
            )
            return updated

    async def delete_virtual_account(self, principal: Principal, account: str, name: str) -> None:
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account)
            va = await scope.virtual_account(conn, acc, name, lock="update")
            if va.is_default:
                raise Conflict(
                    f"virtual account {name!r} is the account's default and cannot be deleted",
                    field="virtualAccount",
                )
            lines, tokens, products = await accounts.virtual_account_holdings(conn, va.id)
            if lines or tokens or products:
                raise Conflict(
                    f"virtual account {name!r} still holds {lines} license line(s), "
                    f"{tokens} active registration token(s) and {products} registered "
                    "product(s); remove, move or revoke them first",
                    field="virtualAccount",
                )
            # Deregistered and removed products go with it; the audit log keeps their story.
            forgotten = await product_instances.forget_ended_instances(conn, va.id)
            await accounts.delete_virtual_account(conn, va.id)
            await audit.record(
                conn,
                principal,
                "virtual_account.deleted",
                f"{account}/{name}",
                account_id=acc.id,
                **({"ended_products_deleted": forgotten} if forgotten else {}),
            )
