"""Rate limits on guessable secrets and on registration floods, shared by every daemon on
the database (counters in PostgreSQL: satellite.storage.limits; the rules:
satellite.domain.limits).

Each operation counts its attempt before it checks a secret (``begin_*``), in one
statement over all its counters; an attempt over any limit is given back at once and
refused with TooManyAttempts. The caller ends an attempt that proved its secret with
``give_back``, which gives back its failure counts; a failed one keeps them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from satellite.config import LimitSettings
from satellite.crypto.secrets import digest_of_token_id, secret_digest
from satellite.domain.limits import Limit, LimitKind, refusal
from satellite.errors import TooManyAttempts
from satellite.storage import limits, tokens
from satellite.storage.db import Database

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Attempt:
    """What one attempt counted on failure limits: given back if it succeeds."""

    counted: list[limits.Counter]


def _limits(settings: LimitSettings) -> dict[str, Limit]:
    password, client, proof = settings.password, settings.client_secret, settings.token_proof
    bearer, floods = settings.bearer_token, settings.registrations
    found = [
        Limit("password-name", password.failures_per_name, password.window_seconds, True),
        Limit("password-address", password.failures_per_address, password.window_seconds, True),
        Limit("client-secret-name", client.failures_per_name, client.window_seconds, True),
        Limit("client-secret-address", client.failures_per_address, client.window_seconds, True),
        Limit("bearer-token-address", bearer.failures_per_address, bearer.window_seconds, True),
        Limit("token-proof-token", proof.failures_per_name, proof.window_seconds, True),
        Limit("token-proof-address", proof.failures_per_address, proof.window_seconds, True),
        Limit("registrations-token", floods.per_token, floods.window_seconds, False),
        Limit(
            "registrations-virtual-account",
            floods.per_virtual_account,
            floods.window_seconds,
            False,
        ),
    ]
    return {limit.kind: limit for limit in found}


def _key(kind: LimitKind, value: str) -> bytes:
    # Hashed: bounded in size, any characters, and no guessed name kept readable.
    return secret_digest(f"{kind}\n{value}")


class RateLimiter:
    def __init__(self, db: Database, settings: LimitSettings) -> None:
        self._db = db
        self._limits = _limits(settings)

    def _counts(self, keyed: Sequence[tuple[LimitKind, str | None]]) -> list[limits.Count]:
        """Counts for the keys known (no address: a connection that is not TCP)."""
        return [
            limits.Count(kind, _key(kind, value), self._limits[kind].window_seconds)
            for kind, value in keyed
            if value is not None
        ]

    def _refuse(self, counter: limits.Counter) -> TooManyAttempts:
        limit = self._limits[counter.kind]
        log.warning("limits.refused", kind=limit.kind, retry_after=counter.reset_seconds)
        return TooManyAttempts(
            refusal(limit.kind, counter.reset_seconds),
            retry_after=counter.reset_seconds,
            limit=limit.allowed,
        )

    async def _begin(
        self, counts: list[limits.Count], *, virtual_account_of_token: str | None = None
    ) -> Attempt:
        async with self._db.connection() as conn:
            if virtual_account_of_token is not None:
                va_id = await tokens.virtual_account_of_token(
                    conn, digest_of_token_id(virtual_account_of_token)
                )
                if va_id is not None:
                    counts = counts + self._counts([("registrations-virtual-account", str(va_id))])
            counted = await limits.count(conn, counts)
            over = [c for c in counted if c.hits > self._limits[c.kind].allowed]
            if over:
                # A refused attempt is not counted: the counters hold what was let through.
                await limits.give_back(conn, counted)
                raise self._refuse(max(over, key=lambda c: c.reset_seconds))
        return Attempt([c for c in counted if self._limits[c.kind].failures_only])

    async def begin_password(self, username: str, source: str | None) -> Attempt:
        return await self._begin(
            self._counts([("password-name", username), ("password-address", source)])
        )

    async def begin_client_secret(self, client_id: str, source: str | None) -> Attempt:
        return await self._begin(
            self._counts([("client-secret-name", client_id), ("client-secret-address", source)])
        )

    async def begin_registration(self, token_id: str, source: str | None) -> Attempt:
        """Counts the token's proof (a failure limit) and the registration itself (flood
        limits of the token and of its virtual account)."""
        counts = self._counts(
            [
                ("token-proof-token", token_id),
                ("token-proof-address", source),
                ("registrations-token", token_id),
            ]
        )
        return await self._begin(counts, virtual_account_of_token=token_id)

    async def begin_bearer_token(self, source: str | None) -> Attempt:
        return await self._begin(self._counts([("bearer-token-address", source)]))

    async def give_back(self, attempt: Attempt) -> None:
        """The attempt was no failed guess: its secret proved right (or was not in question)."""
        if attempt.counted:
            async with self._db.connection() as conn:
                await limits.give_back(conn, attempt.counted)
