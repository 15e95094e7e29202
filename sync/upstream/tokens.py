"""Satellite tokens: what an upstream's admin gives a satellite's operator to register
with (one use, until it expires or is revoked)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from satellite.crypto.secrets import random_secret, secret_digest
from satellite.domain.access import Principal
from satellite.domain.sync import SatelliteToken
from satellite.errors import InvalidInput, NotFound
from satellite.services import audit, scope
from satellite.storage import upstream
from sync.upstream.base import UpstreamBase


@dataclass(frozen=True)
class NewSatelliteToken:
    token: SatelliteToken
    secret: str  # shown once


class SatelliteTokens(UpstreamBase):
    async def create_token(
        self, principal: Principal, account: str, description: str, expires_days: int | None
    ) -> NewSatelliteToken:
        days = expires_days or self._settings.timers.token_expiry_days
        if not 1 <= days <= 365:
            raise InvalidInput("a satellite token expires after 1 to 365 days", field="expiresDays")
        secret = "sat-" + random_secret()  # "sat-": tells it from a product token
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account)
            self._require_upstream()
            token = await upstream.insert_token(
                conn,
                acc.id,
                secret_digest(secret),
                description,
                principal.actor,
                self._clock() + dt.timedelta(days=days),
            )
            await audit.record(
                conn,
                principal,
                "satellite_token.created",
                f"{acc.name}/satellite-tokens/{token.id}",
                account_id=acc.id,
            )
        return NewSatelliteToken(token, secret)

    async def list_tokens(self, principal: Principal, account: str) -> list[SatelliteToken]:
        async with self._db.connection() as conn:
            acc = await scope.readable_account(conn, principal, account)
            return await upstream.tokens_of_account(conn, acc.id)

    async def revoke_token(self, principal: Principal, account: str, token_id: str) -> None:
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account)
            self._require_upstream()
            if not (
                token_id.isascii()
                and token_id.isdigit()
                and await upstream.revoke_token(conn, acc.id, int(token_id))
            ):
                raise NotFound(f"no active satellite token {token_id}", field="tokenId")
            await audit.record(
                conn,
                principal,
                "satellite_token.revoked",
                f"{acc.name}/satellite-tokens/{token_id}",
                account_id=acc.id,
            )
