"""The console's sign-in sessions: begun after the password grant's own checks, resumed
while neither idle nor too old, ended by sign-out (or by disabling the user)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import structlog

from satellite.config import ConsoleSettings
from satellite.crypto.secrets import random_secret, secret_digest
from satellite.domain.access import Principal
from satellite.services import audit
from satellite.services.auth import AuthService, as_principal
from satellite.storage import principals, sessions
from satellite.storage.db import Database

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class NewSession:
    session_id: str  # the cookie's value: shown once, stored only as its digest
    csrf_token: str


@dataclass(frozen=True)
class LiveSession:
    principal: Principal
    csrf_token: str


class SessionService:
    def __init__(self, db: Database, auth: AuthService, settings: ConsoleSettings) -> None:
        self._db = db
        self._auth = auth
        self._idle = dt.timedelta(minutes=settings.session_idle_minutes)
        self._absolute = dt.timedelta(hours=settings.session_absolute_hours)

    async def sign_in(self, username: str, password: str, source: str | None) -> NewSession:
        """The password grant's checks and rate limits, then a new session."""
        record = await self._auth.check_password(username, password, source)
        session_id, csrf = random_secret(32), random_secret(32)
        async with self._db.transaction() as conn:
            await sessions.insert_session(conn, secret_digest(session_id), record.id, csrf)
            await audit.record(
                conn, as_principal(record), "console.signed_in", record.login, account_id=None
            )
        return NewSession(session_id, csrf)

    async def resume(self, session_id: str) -> LiveSession | None:
        """The session's user, if the session is live and the user enabled; else None (an
        expired session is removed)."""
        digest = secret_digest(session_id)
        async with self._db.transaction() as conn:
            row = await sessions.touch_live_session(conn, digest, self._idle, self._absolute)
            record = await principals.get_enabled_principal(conn, row.principal_id) if row else None
            if row is None or record is None:
                if await sessions.delete_session(conn, digest) is not None:
                    log.info("console.session_expired")
                return None
        return LiveSession(as_principal(record), row.csrf_secret)

    async def sign_out(self, principal: Principal, session_id: str) -> None:
        async with self._db.transaction() as conn:
            if await sessions.delete_session(conn, secret_digest(session_id)) is not None:
                await audit.record(
                    conn, principal, "console.signed_out", principal.login, account_id=None
                )
