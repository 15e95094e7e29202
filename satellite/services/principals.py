"""API clients and users: who may call the admin API, with which role, on which accounts."""

from __future__ import annotations

from dataclasses import dataclass, replace

from satellite.crypto.secrets import Passwords, new_client_id, random_secret, secret_digest
from satellite.domain.access import Principal, Role
from satellite.domain.models import PrincipalKind, PrincipalRecord
from satellite.domain.names import check_description, check_name
from satellite.errors import Conflict, InvalidInput, NotFound
from satellite.services import audit, scope
from satellite.storage import accounts, principals, sessions
from satellite.storage.db import Connection, Database

MIN_PASSWORD_LENGTH = 12
# The first console user, made by the first start when there is no user at all.
FIRST_USER = "admin"


def _visible_part(record: PrincipalRecord, viewer: Principal) -> PrincipalRecord:
    return replace(record, accounts=tuple(a for a in record.accounts if viewer.sees(a[0])))


@dataclass(frozen=True)
class NewClient:
    record: PrincipalRecord
    client_id: str
    client_secret: str


@dataclass(frozen=True)
class NewUser:
    record: PrincipalRecord
    password: str


class PrincipalService:
    def __init__(self, db: Database, passwords: Passwords) -> None:
        self._db = db
        self._passwords = passwords

    async def _account_ids(self, conn: Connection, role: Role, names: list[str]) -> list[int]:
        if role == "system-admin":
            if names:
                raise InvalidInput("a system admin sees every account; name none", field="accounts")
            return []
        if not names:
            raise InvalidInput(f"role {role} needs at least one account", field="accounts")
        found = {a.name: a.id for a in await accounts.accounts_by_names(conn, names)}
        for name in names:
            if name not in found:
                raise NotFound(f"account {name!r} not found", field="accounts")
        return [found[name] for name in dict.fromkeys(names)]

    async def _insert_client(
        self,
        conn: Connection,
        principal: Principal,
        role: Role,
        account_ids: list[int],
        description: str,
    ) -> NewClient:
        client_id = new_client_id()
        client_secret = random_secret(32)
        record = await principals.insert_principal(
            conn,
            kind="client",
            login=client_id,
            role=role,
            description=description,
            account_ids=account_ids,
            secret_digest=secret_digest(client_secret),
        )
        await audit.record(
            conn,
            principal,
            "client.created",
            client_id,
            account_id=None,
            role=role,
            accounts=list(record.account_names),
        )
        return NewClient(record, client_id, client_secret)

    async def create_client(
        self, principal: Principal, role: Role, account_names: list[str], description: str
    ) -> NewClient:
        scope.require_system_admin(principal)
        check_description(description)
        async with self._db.transaction() as conn:
            account_ids = await self._account_ids(conn, role, account_names)
            return await self._insert_client(conn, principal, role, account_ids, description)

    async def _password_hash(self, password: str) -> str:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidInput(
                f"the password needs at least {MIN_PASSWORD_LENGTH} characters", field="password"
            )
        return await self._passwords.hash(password)

    async def create_user(
        self,
        principal: Principal,
        username: str,
        password: str,
        role: Role,
        account_names: list[str],
    ) -> PrincipalRecord:
        scope.require_system_admin(principal)
        check_name(username, "username")
        password_hash = await self._password_hash(password)
        async with self._db.transaction() as conn:
            account_ids = await self._account_ids(conn, role, account_names)
            return await self._insert_user(
                conn, principal, username, password_hash, role, account_ids
            )

    async def _insert_user(
        self,
        conn: Connection,
        principal: Principal,
        username: str,
        password_hash: str,
        role: Role,
        account_ids: list[int],
    ) -> PrincipalRecord:
        record = await principals.insert_principal(
            conn,
            kind="user",
            login=username,
            role=role,
            description="",
            account_ids=account_ids,
            password_hash=password_hash,
        )
        await audit.record(
            conn,
            principal,
            "user.created",
            username,
            account_id=None,
            role=role,
            accounts=list(record.account_names),
        )
        return record

    async def list_principals(
        self, principal: Principal, kind: PrincipalKind
    ) -> list[PrincipalRecord]:
        """A system admin sees everyone; others see those scoped to their own accounts,
        and of their scopes only the accounts they may see themselves."""
        if principal.is_system_admin:
            async with self._db.connection() as conn:
                return await principals.list_principals(conn, kind, None)
        async with self._db.connection() as conn:
            records = await principals.list_principals(conn, kind, principal.account_ids)
        return [_visible_part(record, principal) for record in records]

    async def disable(
        self, principal: Principal, kind: PrincipalKind, login: str
    ) -> PrincipalRecord:
        """Disable a client or user and revoke its access tokens at once."""
        scope.require_system_admin(principal)
        async with self._db.transaction() as conn:
            await principals.lock_principals(conn)  # two disables must not both pass the count
            record = await principals.get_principal(conn, kind, login)
            if record is None:
                raise NotFound(f"{kind} {login!r} not found", field="name")
            if (
                record.role == "system-admin"
                and record.disabled_at is None
                and await principals.count_system_admins(conn) <= 1
            ):
                raise Conflict(
                    f"{kind} {login!r} is the last system admin; create another first",
                    field="name",
                )
            await principals.disable_principal(conn, record.id)
            await sessions.delete_principal_sessions(conn, record.id)
            await audit.record(conn, principal, f"{kind}.disabled", login, account_id=None)
            updated = await principals.get_principal(conn, kind, login)
        assert updated is not None
        return updated

    async def set_password(self, principal: Principal, username: str, password: str) -> None:
        scope.require_system_admin(principal)
        password_hash = await self._password_hash(password)
        async with self._db.transaction() as conn:
            record = await principals.get_principal(conn, "user", username)
            if record is None:
                raise NotFound(f"user {username!r} not found", field="name")
            await principals.set_password(conn, record.id, password_hash)
            await principals.revoke_principal_tokens(conn, record.id)
            await sessions.delete_principal_sessions(conn, record.id)
            await audit.record(conn, principal, "user.password_set", username, account_id=None)

    async def bootstrap_client(self, principal: Principal) -> NewClient | None:
        """The first system-admin client, unless a system admin exists already."""
        async with self._db.transaction() as conn:
            await principals.lock_principals(conn)
            if await principals.count_system_admins(conn) > 0:
                return None
            return await self._insert_client(
                conn, principal, "system-admin", [], "first system admin (created by init)"
            )

    async def bootstrap_user(self, principal: Principal) -> NewUser | None:
        """The first console user (a system admin with a random password), unless a user
        exists already, enabled or not: a newcomer signs in to the console with it."""
        async with self._db.transaction() as conn:
            await principals.lock_principals(conn)
            if await principals.count_principals(conn, "user") > 0:
                return None
            # 24 characters of the URL-safe alphabet: 144 bits, twice the minimum length.
            password = random_secret(18)
            record = await self._insert_user(
                conn, principal, FIRST_USER, await self._password_hash(password), "system-admin", []
            )
        return NewUser(record, password)
