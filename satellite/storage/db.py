"""The asyncpg pool and transaction helpers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal, cast

import asyncpg

from satellite.config import DatabaseSettings
from satellite.errors import DatabaseUnavailable

Connection = asyncpg.Connection  # re-exported so services can type their arguments
RowLock = Literal["share", "update"] | None
_LOCK_CLAUSES = {None: "", "share": " FOR SHARE", "update": " FOR UPDATE"}


def lock_clause(lock: RowLock) -> str:
    return _LOCK_CLAUSES[lock]


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Reset a connection returned to the pool: nothing to do beyond what asyncpg always
    does (roll back an open transaction). The satellite changes no session state (no SET,
    LISTEN or cursor outside a transaction; its session advisory locks, the migrations' and
    each sync run's, are released in a finally), so asyncpg's default reset query would be
    one more round trip per request for nothing."""


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class Database:
    """A pool; services take connections or transactions from it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, dsn: str, settings: DatabaseSettings) -> Database:
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=settings.pool_min_size,
                max_size=settings.pool_max_size,
                timeout=settings.connect_timeout_seconds,
                init=_init_connection,
                reset=_keep_session,
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseUnavailable(f"cannot connect to the database: {exc}") from exc
        return cls(pool)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._pool.acquire() as conn:
            # The pool hands out proxies with the Connection interface.
            yield cast(asyncpg.Connection, conn)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield cast(asyncpg.Connection, conn)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[asyncpg.Connection]:
        """A read-only transaction that sees one snapshot throughout (long reads)."""
        async with (
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield cast(asyncpg.Connection, conn)

    async def close(self) -> None:
        await self._pool.close()
