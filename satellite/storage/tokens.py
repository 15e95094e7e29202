"""Registration tokens (stored encrypted, looked up by digest)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

from satellite.domain.models import RegistrationToken

_COLUMNS = (
    "t.id, t.virtual_account_id, va.name AS virtual_account, t.token_digest AS digest, "
    "t.token_ciphertext AS ciphertext, t.description, t.export_controlled, t.max_uses, "
    # (A limited token counts its uses on its row, one without a limit in stripes: 022.)
    "t.uses + coalesce((SELECT sum(s.uses) FROM registration_token_uses s "
    "WHERE s.token_id = t.id), 0)::integer AS uses, "
    "t.created_by, t.created_at, t.expires_at, t.revoked_at"
)
_FROM = "FROM registration_tokens t JOIN virtual_accounts va ON va.id = t.virtual_account_id"


def _token(row: asyncpg.Record) -> RegistrationToken:
    return RegistrationToken(**dict(row))


async def insert_token(
    conn: asyncpg.Connection,
    *,
    va_id: int,
    digest: bytes,
    ciphertext: bytes,
    description: str,
    export_controlled: bool,
    max_uses: int | None,
    created_by: str,
    expires_at: dt.datetime,
) -> RegistrationToken:
    token_id = await conn.fetchval(
        "INSERT INTO registration_tokens (virtual_account_id, token_digest, token_ciphertext, "
        "description, export_controlled, max_uses, created_by, expires_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        va_id,
        digest,
        ciphertext,
        description,
        export_controlled,
        max_uses,
        created_by,
        expires_at,
    )
    row = await conn.fetchrow(f"SELECT {_COLUMNS} {_FROM} WHERE t.id = $1", token_id)
    assert row is not None
    return _token(row)


async def tokens_of_virtual_account(
    conn: asyncpg.Connection, va_id: int
) -> list[RegistrationToken]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} {_FROM} WHERE t.virtual_account_id = $1 ORDER BY t.id", va_id
    )
    return [_token(r) for r in rows]


async def tokens_by_digests(
    conn: asyncpg.Connection, va_id: int, digests: list[bytes], *, for_update: bool = False
) -> list[RegistrationToken]:
    lock = " FOR UPDATE OF t" if for_update else ""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} {_FROM} "
        f"WHERE t.virtual_account_id = $1 AND t.token_digest = ANY($2::bytea[]){lock}",
        va_id,
        digests,
    )
    return [_token(r) for r in rows]


async def revoke_tokens(conn: asyncpg.Connection, token_ids: list[int]) -> None:
    await conn.execute(
        "UPDATE registration_tokens SET revoked_at = now() "
        "WHERE id = ANY($1::bigint[]) AND revoked_at IS NULL",
        token_ids,
    )


@dataclass(frozen=True)
class TokenForRegistration:
    token: RegistrationToken
    account_id: int
    export_allowed: bool  # the account may hold export-controlled products
    in_step_since: dt.datetime | None  # (satellite.storage.sync.in_step_since)


async def token_for_registration(
    conn: asyncpg.Connection, digest: bytes
) -> TokenForRegistration | None:
    """The token, with what a registration also needs of its account, in one statement.
    Not locked: a registration takes its use with ``use_token``, last in its transaction,
    so that registrations with one token do not wait on each other for longer than that."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS}, a.id AS account_id, a.export_controlled_allowed, "
        f"coalesce(l.last_success_at, l.registered_at) AS in_step_since {_FROM} "
        "JOIN accounts a ON a.id = va.account_id "
        "LEFT JOIN sync_links l ON l.account_id = a.id WHERE t.token_digest = $1",
        digest,
    )
    if row is None:
        return None
    values = dict(row)
    account_id = values.pop("account_id")
    allowed = values.pop("export_controlled_allowed")
    since = values.pop("in_step_since")
    return TokenForRegistration(RegistrationToken(**values), account_id, allowed, since)


# How many rows the uses of a token without a limit are spread over (022's CHECK).
_STRIPES = 16


async def use_token(conn: asyncpg.Connection, token: RegistrationToken, now: dt.datetime) -> bool:
    """Take one use of the token if it is still active at ``now``; False when it is not (its
    last use was taken meanwhile, or it expired or was revoked).

    A limited token: locks its row until the transaction ends, so that of registrations
    racing for its last uses exactly as many win as are left. One without a limit: adds
    the use to its connection's stripe (022) and locks only that, so that registrations on
    other connections with the same token do not wait for this one to commit."""
    if token.max_uses is not None:
        used = await conn.fetchval(
            "UPDATE registration_tokens SET uses = uses + 1 WHERE id = $1 "
            "AND revoked_at IS NULL AND expires_at > $2 AND uses < max_uses RETURNING uses",
            token.id,
            now,
        )
    else:
        used = await conn.fetchval(
            "INSERT INTO registration_token_uses AS u (token_id, stripe, uses) "
            f"SELECT t.id, pg_backend_pid() % {_STRIPES}, 1 FROM registration_tokens t "
            "WHERE t.id = $1 AND t.revoked_at IS NULL AND t.expires_at > $2 "
            "AND t.max_uses IS NULL "
            "ON CONFLICT (token_id, stripe) DO UPDATE SET uses = u.uses + 1 RETURNING u.uses",
            token.id,
            now,
        )
    return used is not None


async def virtual_account_of_token(conn: asyncpg.Connection, digest: bytes) -> int | None:
    """The id of the virtual account a token registers into (None: no such token)."""
    va_id: int | None = await conn.fetchval(
        "SELECT virtual_account_id FROM registration_tokens WHERE token_digest = $1", digest
    )
    return va_id
