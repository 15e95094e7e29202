"""Rate limits on guessable secrets and on registration floods, shared by every daemon on
the database (counters in PostgreSQL: satellite.storage.limits; what each limit counts
and how: satellite.domain.limits).

An operation begins its attempt (``begin_*``) before it checks a secret: one statement
over all the attempt's counters. An attempt over any limit is refused with
TooManyAttempts and counts nowhere. The operation then ends the attempt with ``passed``
(the secret proved right, or was never in question) or ``failed``.

Where the caller looks its secret up anyway (a user, a client, an access token), the
attempt is counted on the caller's connection: it costs no connection of its own, and
what is in flight at once is bounded by the pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog

from satellite.config import LimitSettings
from satellite.crypto.secrets import digest_of_token_id, secret_digest
from satellite.domain.limits import Limit, LimitKind, address_key, refusal
from satellite.errors import TooManyAttempts
from satellite.storage import limits, tokens
from satellite.storage.db import Connection, Database

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Attempt:
    reserved: list[limits.Counter]  # counted before the check: given back if it passes
    on_failure: list[limits.Count]  # read before the check: counted if it fails


def _limits(settings: LimitSettings) -> dict[str, Limit]:
    password, client, proof = settings.password, settings.client_secret, settings.token_proof
    bearer, floods = settings.bearer_token, settings.registrations
    found = [
        Limit("password-name", password.failures_per_name, password.window_seconds, "reserve"),
        Limit(
            "password-address", password.failures_per_address, password.window_seconds, "reserve"
        ),
        Limit("client-secret-name", client.failures_per_name, client.window_seconds, "reserve"),
        Limit(
            "client-secret-address", client.failures_per_address, client.window_seconds, "reserve"
        ),
        Limit(
            "bearer-token-address", bearer.failures_per_address, bearer.window_seconds, "reserve"
        ),
        Limit("token-proof-token", proof.failures_per_name, proof.window_seconds, "check"),
        Limit("token-proof-address", proof.failures_per_address, proof.window_seconds, "check"),
        Limit("registrations-token", floods.per_token, floods.window_seconds, "flood"),
        Limit(
            "registrations-virtual-account",
            floods.per_virtual_account,
            floods.window_seconds,
            "flood",
        ),
    ]
    return {limit.kind: limit for limit in found}


def _key(kind: LimitKind, value: str) -> bytes:
    # Hashed: bounded in size, any characters, and no guessed name kept readable.
    return secret_digest(f"{kind}\n{value}")


class RateLimiter:
    def __init__(self, db: Database, settings: LimitSettings) -> None:
        self._db = db
        self.update(settings)

    def update(self, settings: LimitSettings) -> None:
        """Count against these limits from the next attempt on (a reload); the counters
        are kept as they are."""
        self._limits = _limits(settings)
        self._ipv6_prefix_length = settings.ipv6_prefix_length

    @asynccontextmanager
    async def _connection(self, conn: Connection | None) -> AsyncIterator[Connection]:
        if conn is not None:
            yield conn
            return
        async with self._db.connection() as own:
            yield own

    def _address(self, source: str | None) -> str | None:
        return None if source is None else address_key(source, self._ipv6_prefix_length)

    def _counts(
        self, keyed: Sequence[tuple[LimitKind, str | None]], *, failing: bool = False
    ) -> list[limits.Count]:
        """The attempt's counts, for the keys known (no address: a connection not over TCP).
        ``failing``: it is known to fail, so that ``check`` limits count it at once."""
        counts = []
        for kind, value in keyed:
            if value is not None:
                limit = self._limits[kind]
                weight = 1 if failing or limit.mode != "check" else 0
                counts.append(limits.Count(kind, _key(kind, value), limit.window_seconds, weight))
        return counts

    def _refuse(self, counter: limits.Counter) -> TooManyAttempts:
        limit = self._limits[counter.kind]
        log.warning("limits.refused", kind=limit.kind, retry_after=counter.reset_seconds)
        return TooManyAttempts(
            refusal(limit.kind, counter.reset_seconds),
            retry_after=counter.reset_seconds,
            limit=limit.allowed,
        )

    async def _begin(self, conn: Connection, counts: list[limits.Count]) -> Attempt:
        counted = await limits.count(conn, counts)
        added = {(c.kind, c.key) for c in counts if c.weight}

        def with_this(counter: limits.Counter) -> bool:
            return (counter.kind, counter.key) in added

        over = [c for c in counted if self._limits[c.kind].refuses(c.hits, counted=with_this(c))]
        if over:
            # A refused attempt counts nowhere: uncount what it counted, and leave no
            # counter it alone began (no row for each new name a refused guesser tries).
            await limits.give_back(conn, [c for c in counted if with_this(c)], forget_emptied=True)
            raise self._refuse(max(over, key=lambda c: c.reset_seconds))
        return Attempt(
            reserved=[
                c for c in counted if with_this(c) and self._limits[c.kind].mode == "reserve"
            ],
            on_failure=[c for c in counts if not c.weight],
        )

    async def begin_password(self, username: str, source: str | None, conn: Connection) -> Attempt:
        counts = self._counts(
            [("password-name", username), ("password-address", self._address(source))]
        )
        return await self._begin(conn, counts)

    async def begin_client_secret(
        self, client_id: str, source: str | None, conn: Connection
    ) -> Attempt:
        counts = self._counts(
            [("client-secret-name", client_id), ("client-secret-address", self._address(source))]
        )
        return await self._begin(conn, counts)

    async def begin_bearer_token(self, source: str | None, conn: Connection) -> Attempt:
        return await self._begin(
            conn, self._counts([("bearer-token-address", self._address(source))])
        )

    async def begin_registration(self, token_id: str, source: str | None) -> Attempt:
        """The token's proof (failure limits of the token and of the address) and the
        registration itself (flood limits of the token and of its virtual account)."""
        digest = digest_of_token_id(token_id)
        # Counted by the digest it names, not as spelt: base64url spells one digest in
        # several ways (the last character's spare bits), and each spelling would get
        # limits of its own.
        token = digest.hex() if digest else token_id
        keyed: list[tuple[LimitKind, str | None]] = [
            ("token-proof-token", token),
            ("token-proof-address", self._address(source)),
            ("registrations-token", token),
        ]
        async with self._connection(None) as conn:
            va_id = await tokens.virtual_account_of_token(conn, digest)
            if va_id is None:
                # A token not known here fails for certain: its failure counts now, not
                # after the registration, so guesses sent at once cannot pass the limit.
                counts = self._counts(keyed, failing=True)
            else:
                counts = self._counts([*keyed, ("registrations-virtual-account", str(va_id))])
            return await self._begin(conn, counts)

    async def passed(self, attempt: Attempt, conn: Connection | None = None) -> None:
        """The attempt was no failed guess: its secret proved right (or was not in question).

        Never fails: a give-back lost (the database went away) leaves one failure too many
        counted until the window ends, while the caller's answer (a registration that
        committed, say) must still reach it.
        """
        if not attempt.reserved:
            return
        try:
            async with self._connection(conn) as used:
                await limits.give_back(used, attempt.reserved)
        except Exception:
            log.warning("limits.give_back_failed", exc_info=True)

    async def failed(self, attempt: Attempt, conn: Connection | None = None) -> None:
        """The secret was wrong: counts what was only read before the check."""
        if not attempt.on_failure:
            return
        counts = [limits.Count(c.kind, c.key, c.window_seconds) for c in attempt.on_failure]
        async with self._connection(conn) as used:
            await limits.count(used, counts)
