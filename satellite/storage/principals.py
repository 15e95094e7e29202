"""API clients, users, their account scopes and their access tokens."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

from satellite.domain.access import Role
from satellite.domain.models import PrincipalRecord
from satellite.storage.errors import unique_as_conflict

_SELECT = """
SELECT p.id, p.kind, p.login, p.role, p.description, p.created_at, p.disabled_at,
       coalesce(array_agg(a.id ORDER BY a.name) FILTER (WHERE a.id IS NOT NULL), '{}')
           AS acc_ids,
       coalesce(array_agg(a.name ORDER BY a.name) FILTER (WHERE a.id IS NOT NULL), '{}')
           AS acc_names
FROM principals p
LEFT JOIN principal_accounts pa ON pa.principal_id = p.id
LEFT JOIN accounts a ON a.id = pa.account_id
"""
_GROUP = " GROUP BY p.id"


def _principal(row: asyncpg.Record) -> PrincipalRecord:
    return PrincipalRecord(
        id=row["id"],
        kind=row["kind"],
        login=row["login"],
        role=row["role"],
        description=row["description"],
        accounts=tuple(zip(row["acc_ids"], row["acc_names"], strict=True)),
        created_at=row["created_at"],
        disabled_at=row["disabled_at"],
    )


@dataclass(frozen=True)
class Credentials:
    principal: PrincipalRecord
    secret_digest: bytes | None
    password_hash: str | None


async def insert_principal(
    conn: asyncpg.Connection,
    *,
    kind: str,
    login: str,
    role: Role,
    description: str,
    account_ids: list[int],
    secret_digest: bytes | None = None,
    password_hash: str | None = None,
) -> PrincipalRecord:
    with unique_as_conflict(f"{kind} {login!r} already exists", field="name"):
        principal_id = await conn.fetchval(
            "INSERT INTO principals (kind, login, role, description, secret_digest, password_hash) "
            "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            kind,
            login,
            role,
            description,
            secret_digest,
            password_hash,
        )
    await conn.executemany(
        "INSERT INTO principal_accounts (principal_id, account_id) VALUES ($1, $2)",
        [(principal_id, account_id) for account_id in account_ids],
    )
    record = await get_principal(conn, kind, login)
    assert record is not None
    return record


async def get_principal(conn: asyncpg.Connection, kind: str, login: str) -> PrincipalRecord | None:
    row = await conn.fetchrow(_SELECT + " WHERE p.kind = $1 AND p.login = $2" + _GROUP, kind, login)
    return _principal(row) if row else None


async def get_enabled_principal(
    conn: asyncpg.Connection, principal_id: int
) -> PrincipalRecord | None:
    row = await conn.fetchrow(
        _SELECT + " WHERE p.disabled_at IS NULL AND p.id = $1" + _GROUP, principal_id
    )
    return _principal(row) if row else None


async def get_credentials(conn: asyncpg.Connection, kind: str, login: str) -> Credentials | None:
    row = await conn.fetchrow(
        "SELECT secret_digest, password_hash FROM principals WHERE kind = $1 AND login = $2",
        kind,
        login,
    )
    record = await get_principal(conn, kind, login)
    if row is None or record is None:
        return None
    return Credentials(record, row["secret_digest"], row["password_hash"])


async def list_principals(
    conn: asyncpg.Connection, kind: str, account_ids: frozenset[int] | None
) -> list[PrincipalRecord]:
    """Principals of ``kind``; with ``account_ids``, only those scoped to one of them."""
    rows = await conn.fetch(
        _SELECT + " WHERE p.kind = $1 AND ($2::bigint[] IS NULL OR EXISTS (SELECT 1 FROM "
        "principal_accounts x WHERE x.principal_id = p.id AND x.account_id = ANY($2::bigint[])))"
        + _GROUP
        + " ORDER BY p.login",
        kind,
        None if account_ids is None else list(account_ids),
    )
    return [_principal(r) for r in rows]


async def lock_principals(conn: asyncpg.Connection) -> None:
    """Serialize changes to who is a system admin until the transaction ends."""
    await conn.execute("LOCK TABLE principals IN SHARE ROW EXCLUSIVE MODE")


async def count_principals(conn: asyncpg.Connection, kind: str) -> int:
    """Principals of ``kind``, disabled ones too."""
    return int(await conn.fetchval("SELECT count(*) FROM principals WHERE kind = $1", kind))


async def count_system_admins(conn: asyncpg.Connection) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM principals WHERE role = 'system-admin' AND disabled_at IS NULL"
        )
    )


async def disable_principal(conn: asyncpg.Connection, principal_id: int) -> None:
    await conn.execute(
        "UPDATE principals SET disabled_at = now() WHERE id = $1 AND disabled_at IS NULL",
        principal_id,
    )
    await revoke_principal_tokens(conn, principal_id)


async def set_password(conn: asyncpg.Connection, principal_id: int, password_hash: str) -> None:
    await conn.execute(
        "UPDATE principals SET password_hash = $2 WHERE id = $1", principal_id, password_hash
    )


async def insert_access_token(
    conn: asyncpg.Connection, principal_id: int, digest: bytes, expires_at: dt.datetime
) -> None:
    await conn.execute(
        "INSERT INTO access_tokens (principal_id, token_digest, expires_at) VALUES ($1, $2, $3)",
        principal_id,
        digest,
        expires_at,
    )


async def principal_for_access_token(
    conn: asyncpg.Connection, digest: bytes
) -> PrincipalRecord | None:
    """The enabled principal behind a valid (unexpired, unrevoked) access token."""
    row = await conn.fetchrow(
        _SELECT + " WHERE p.disabled_at IS NULL AND p.id = (SELECT principal_id FROM access_tokens "
        "WHERE token_digest = $1 AND revoked_at IS NULL AND expires_at > now())" + _GROUP,
        digest,
    )
    return _principal(row) if row else None


async def revoke_access_token(
    conn: asyncpg.Connection, digest: bytes, only_principal_id: int | None
) -> str | None:
    """Revoke one live token (of ``only_principal_id`` when given); return its owner's login."""
    login: str | None = await conn.fetchval(
        "UPDATE access_tokens t SET revoked_at = now() FROM principals p "
        "WHERE p.id = t.principal_id AND t.token_digest = $1 AND t.revoked_at IS NULL "
        "AND ($2::bigint IS NULL OR t.principal_id = $2) RETURNING p.login",
        digest,
        only_principal_id,
    )
    return login


async def revoke_principal_tokens(conn: asyncpg.Connection, principal_id: int) -> int:
    result = await conn.execute(
        "UPDATE access_tokens SET revoked_at = now() "
        "WHERE principal_id = $1 AND revoked_at IS NULL",
        principal_id,
    )
    return int(result.split()[-1])
