"""OAuth access tokens for the admin API: issued to clients and users, checked, revoked."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import structlog

from satellite.crypto.secrets import Passwords, digests_equal, random_secret, secret_digest
from satellite.domain.access import Principal
from satellite.domain.models import PrincipalRecord
from satellite.errors import InvalidClient, InvalidGrant, InvalidToken
from satellite.services import audit
from satellite.services.limits import RateLimiter
from satellite.storage import principals
from satellite.storage.db import Database

log = structlog.get_logger(__name__)

_WRONG = "the client id or secret is wrong, or the client is disabled"
_WRONG_USER = "the user name or password is wrong, or the user is disabled"


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int


def as_principal(record: PrincipalRecord) -> Principal:
    return Principal(
        kind=record.kind,
        login=record.login,
        role=record.role,
        account_ids=record.account_ids,
        id=record.id,
    )


class AuthService:
    def __init__(
        self, db: Database, passwords: Passwords, limiter: RateLimiter, token_ttl_seconds: int
    ) -> None:
        self._db = db
        self._passwords = passwords
        self._limiter = limiter
        self._ttl = token_ttl_seconds

    async def _issue(self, record: PrincipalRecord, grant: str) -> IssuedToken:
        token = random_secret(32)
        expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self._ttl)
        async with self._db.transaction() as conn:
            await principals.insert_access_token(conn, record.id, secret_digest(token), expires_at)
            await audit.record(
                conn,
                as_principal(record),
                "auth.token_issued",
                record.login,
                account_id=None,
                grant_type=grant,
            )
        return IssuedToken(token, self._ttl)

    async def client_credentials(
        self, client_id: str, client_secret: str, source: str | None
    ) -> IssuedToken:
        """``source``: the caller's address, for the limits on failed attempts."""
        async with self._db.connection() as conn:
            attempt = await self._limiter.begin_client_secret(client_id, source, conn)
            creds = await principals.get_credentials(conn, "client", client_id)
            presented = secret_digest(client_secret)
            stored = creds.secret_digest if creds and creds.secret_digest else bytes(32)
            ok = digests_equal(presented, stored)
            if creds is None or not ok or creds.principal.disabled_at is not None:
                await self._limiter.failed(attempt, conn)
                raise InvalidClient(_WRONG, field="client_secret")
            await self._limiter.passed(attempt, conn)
        return await self._issue(creds.principal, "client_credentials")

    async def password(self, username: str, password: str, source: str | None) -> IssuedToken:
        return await self._issue(await self.check_password(username, password, source), "password")

    async def check_password(
        self, username: str, password: str, source: str | None
    ) -> PrincipalRecord:
        """The enabled user with this name and password, under the password limits (the
        password grant and the console's sign-in both check here)."""
        async with self._db.connection() as conn:
            # Counted before the slow argon2 check: parallel guesses cannot all be checked.
            attempt = await self._limiter.begin_password(username, source, conn)
            creds = await principals.get_credentials(conn, "user", username)
        ok = await self._passwords.verify(creds.password_hash if creds else None, password)
        if creds is None or not ok or creds.principal.disabled_at is not None:
            await self._limiter.failed(attempt)
            log.warning("auth.password_refused", username=username)
            raise InvalidGrant(_WRONG_USER, field="password")
        await self._limiter.passed(attempt)
        return creds.principal

    async def authenticate(self, access_token: str, source: str | None) -> Principal:
        async with self._db.connection() as conn:
            attempt = await self._limiter.begin_bearer_token(source, conn)
            record = await principals.principal_for_access_token(conn, secret_digest(access_token))
            if record is None:
                await self._limiter.failed(attempt, conn)
                raise InvalidToken()
            await self._limiter.passed(attempt, conn)
        return as_principal(record)

    async def revoke(self, principal: Principal, access_token: str) -> None:
        """Revoke one of the caller's tokens (a system admin may revoke anyone's).

        As RFC 7009 says, a token that is unknown or not the caller's is not an error.
        """
        owner = None if principal.is_system_admin else principal.id
        async with self._db.transaction() as conn:
            login = await principals.revoke_access_token(conn, secret_digest(access_token), owner)
            if login is not None:
                await audit.record(conn, principal, "auth.token_revoked", login, account_id=None)
