"""Accounts and virtual accounts."""

from __future__ import annotations

import asyncpg

from satellite.domain.models import Account, VirtualAccount
from satellite.storage.db import RowLock, lock_clause
from satellite.storage.errors import unique_as_conflict

_ACCOUNT_COLUMNS = "id, name, domain, description, export_controlled_allowed, created_at"
_VA_COLUMNS = "id, account_id, name, description, is_default, created_at"


def _account(row: asyncpg.Record) -> Account:
    return Account(**dict(row))


def _va(row: asyncpg.Record) -> VirtualAccount:
    return VirtualAccount(**dict(row))


async def insert_account(
    conn: asyncpg.Connection,
    name: str,
    description: str,
    export_controlled_allowed: bool,
    domain: str | None = None,
) -> Account:
    with unique_as_conflict(f"account {name!r} already exists", field="name"):
        row = await conn.fetchrow(
            f"INSERT INTO accounts (name, description, export_controlled_allowed, domain) "
            f"VALUES ($1, $2, $3, $4) RETURNING {_ACCOUNT_COLUMNS}",
            name,
            description,
            export_controlled_allowed,
            domain,
        )
    assert row is not None
    return _account(row)


async def update_account(
    conn: asyncpg.Connection,
    account_id: int,
    description: str | None,
    export_controlled_allowed: bool | None,
    domain: str | None = None,
) -> Account:
    """Changes what is not None; a ``domain`` of "" removes the account's domain."""
    row = await conn.fetchrow(
        f"UPDATE accounts SET description = coalesce($2, description), "
        f"export_controlled_allowed = coalesce($3, export_controlled_allowed), "
        f"domain = CASE WHEN $4::text IS NULL THEN domain ELSE nullif($4::text, '') END "
        f"WHERE id = $1 RETURNING {_ACCOUNT_COLUMNS}",
        account_id,
        description,
        export_controlled_allowed,
        domain,
    )
    assert row is not None
    return _account(row)


async def get_account(conn: asyncpg.Connection, name: str, *, lock: RowLock) -> Account | None:
    row = await conn.fetchrow(
        f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE name = $1{lock_clause(lock)}", name
    )
    return _account(row) if row else None


async def get_account_by_id(
    conn: asyncpg.Connection, account_id: int, *, lock: RowLock
) -> Account | None:
    row = await conn.fetchrow(
        f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = $1{lock_clause(lock)}", account_id
    )
    return _account(row) if row else None


async def list_accounts(conn: asyncpg.Connection, only_ids: frozenset[int] | None) -> list[Account]:
    """All accounts, or only those in ``only_ids``."""
    rows = await conn.fetch(
        f"SELECT {_ACCOUNT_COLUMNS} FROM accounts "
        f"WHERE $1::bigint[] IS NULL OR id = ANY($1::bigint[]) ORDER BY name",
        None if only_ids is None else list(only_ids),
    )
    return [_account(r) for r in rows]


async def accounts_by_names(conn: asyncpg.Connection, names: list[str]) -> list[Account]:
    rows = await conn.fetch(
        f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE name = ANY($1::text[])", names
    )
    return [_account(r) for r in rows]


async def insert_virtual_account(
    conn: asyncpg.Connection, account_id: int, name: str, description: str, is_default: bool
) -> VirtualAccount:
    # Unique ignoring case (sql/012): "Voice" and "VOICE" are one name.
    with unique_as_conflict(f"virtual account {name!r} already exists", field="name"):
        row = await conn.fetchrow(
            f"INSERT INTO virtual_accounts (account_id, name, description, is_default) "
            f"VALUES ($1, $2, $3, $4) RETURNING {_VA_COLUMNS}",
            account_id,
            name,
            description,
            is_default,
        )
    assert row is not None
    return _va(row)


async def update_virtual_account(
    conn: asyncpg.Connection, va_id: int, name: str | None, description: str | None
) -> VirtualAccount:
    """Changes what is not None. A name another virtual account of the account has
    (ignoring case) is a Conflict."""
    with unique_as_conflict(f"virtual account {name!r} already exists", field="name"):
        row = await conn.fetchrow(
            f"UPDATE virtual_accounts SET name = coalesce($2, name), "
            f"description = coalesce($3, description) WHERE id = $1 RETURNING {_VA_COLUMNS}",
            va_id,
            name,
            description,
        )
    assert row is not None
    return _va(row)


async def synced_by_name(conn: asyncpg.Connection, account_id: int) -> bool:
    """Whether the account's virtual accounts are known by name at the other end of a
    sync: linked (or registering) to an upstream, or with satellites registered to it here
    (sql/008)."""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT FROM sync_links WHERE account_id = $1) "
        "OR EXISTS (SELECT FROM sync_pending_registrations WHERE account_id = $1) "
        "OR EXISTS (SELECT FROM satellites WHERE account_id = $1 AND revoked_at IS NULL)",
        account_id,
    )
    return found


async def get_virtual_account(
    conn: asyncpg.Connection, account_id: int, name: str, *, lock: RowLock
) -> VirtualAccount | None:
    row = await conn.fetchrow(
        f"SELECT {_VA_COLUMNS} FROM virtual_accounts "
        f"WHERE account_id = $1 AND lower(name) = lower($2){lock_clause(lock)}",
        account_id,
        name,
    )
    return _va(row) if row else None


async def share_lock_virtual_accounts(conn: asyncpg.Connection, va_ids: list[int]) -> set[int]:
    """Share-lock the virtual accounts in the order of their ids (the lock is taken above
    the sort); the ids of those that still exist."""
    rows = await conn.fetch(
        "SELECT id FROM virtual_accounts WHERE id = ANY($1::bigint[]) ORDER BY id FOR SHARE",
        va_ids,
    )
    return {int(r["id"]) for r in rows}


async def list_virtual_accounts(conn: asyncpg.Connection, account_id: int) -> list[VirtualAccount]:
    rows = await conn.fetch(
        f"SELECT {_VA_COLUMNS} FROM virtual_accounts WHERE account_id = $1 "
        f"ORDER BY is_default DESC, name",
        account_id,
    )
    return [_va(r) for r in rows]


async def all_virtual_accounts(conn: asyncpg.Connection) -> list[VirtualAccount]:
    """Every virtual account of every account, in id order (for the jobs that cross them)."""
    rows = await conn.fetch(f"SELECT {_VA_COLUMNS} FROM virtual_accounts ORDER BY id")
    return [_va(r) for r in rows]


async def virtual_account_holdings(conn: asyncpg.Connection, va_id: int) -> tuple[int, int, int]:
    """License lines, active (unrevoked, unexpired) tokens and registered products the
    virtual account holds."""
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM license_lines WHERE virtual_account_id = $1) AS lines, "
        "(SELECT count(*) FROM registration_tokens WHERE virtual_account_id = $1 "
        " AND revoked_at IS NULL AND expires_at > now()) AS tokens, "
        "(SELECT count(*) FROM product_instances WHERE virtual_account_id = $1 "
        " AND status = 'registered') "
        # (at an upstream: its satellites' products in it count too)
        "+ (SELECT count(*) FROM satellite_products WHERE virtual_account_id = $1 "
        " AND status = 'registered') AS products",
        va_id,
    )
    assert row is not None
    return int(row["lines"]), int(row["tokens"]), int(row["products"])


async def export_controlled_holdings(
    conn: asyncpg.Connection, account_id: int
) -> tuple[int, int, int]:
    """Active export-controlled tokens, export-restricted lines and export keys granted
    (live) of an account."""
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM registration_tokens t JOIN virtual_accounts va "
        " ON va.id = t.virtual_account_id WHERE va.account_id = $1 AND t.export_controlled "
        " AND t.revoked_at IS NULL AND t.expires_at > now()) AS tokens, "
        "(SELECT count(*) FROM license_lines l JOIN virtual_accounts va "
        " ON va.id = l.virtual_account_id WHERE va.account_id = $1 AND l.export_restricted) "
        " AS lines, "
        "(SELECT count(*) FROM export_keys k JOIN virtual_accounts va "
        " ON va.id = k.virtual_account_id WHERE va.account_id = $1 AND k.status = 'granted') "
        " AS keys",
        account_id,
    )
    assert row is not None
    return int(row["tokens"]), int(row["lines"]), int(row["keys"])


async def delete_virtual_account(conn: asyncpg.Connection, va_id: int) -> None:
    await conn.execute("DELETE FROM virtual_accounts WHERE id = $1", va_id)
