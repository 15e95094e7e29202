"""Two transactions that lock rows in opposite order: PostgreSQL aborts one of them
(deadlock detected). The loser's caller gets "busy, retry" (503 with Retry-After), never a
driver error that the HTTP layer would answer with a 500."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import asyncpg
import msgspec
import pytest

from satellite.config import DatabaseSettings
from satellite.errors import DatabaseBusy, DatabaseUnavailable
from satellite.http.problems import from_domain_error
from satellite.storage.db import Database
from tests.conftest import dsn_for


async def test_a_deadlock_is_database_busy_and_a_503_with_retry_after(db_dsn: str) -> None:
    db = await Database.connect(db_dsn, DatabaseSettings(pool_max_size=3))
    try:
        async with db.transaction() as conn:
            await conn.execute("CREATE TABLE crossing (id int PRIMARY KEY)")
            await conn.execute("INSERT INTO crossing VALUES (1), (2)")
        both_hold_one = asyncio.Barrier(2)

        async def lock(first: int, second: int) -> None:
            async with db.transaction() as conn:
                await conn.execute("SELECT 1 FROM crossing WHERE id = $1 FOR UPDATE", first)
                await both_hold_one.wait()
                await conn.execute("SELECT 1 FROM crossing WHERE id = $1 FOR UPDATE", second)

        outcomes = await asyncio.wait_for(
            asyncio.gather(lock(1, 2), lock(2, 1), return_exceptions=True), timeout=30
        )
    finally:
        await db.close()
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(refused) == 1, outcomes
    assert isinstance(refused[0], DatabaseBusy), repr(refused[0])

    response = from_domain_error(refused[0])
    assert response.status == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert response.body is not None
    problem = msgspec.json.decode(bytes(response.body))  # type: ignore[arg-type]
    assert problem["type"].endswith("database-busy")
    assert "retry" in problem["detail"]


async def test_a_serialization_failure_is_database_busy(db_dsn: str) -> None:
    db = await Database.connect(db_dsn, DatabaseSettings(pool_max_size=3))
    try:
        async with db.transaction() as conn:
            await conn.execute("CREATE TABLE tally (n int)")
            await conn.execute("INSERT INTO tally VALUES (0)")
        both_read = asyncio.Barrier(2)

        async def bump() -> None:
            async with db.connection() as conn, conn.transaction(isolation="serializable"):
                await conn.fetchval("SELECT sum(n) FROM tally")
                await both_read.wait()
                await conn.execute("INSERT INTO tally VALUES (1)")

        outcomes = await asyncio.wait_for(
            asyncio.gather(bump(), bump(), return_exceptions=True), timeout=30
        )
    finally:
        await db.close()
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(refused) == 1, outcomes
    assert isinstance(refused[0], DatabaseBusy), repr(refused[0])


async def test_a_database_that_refuses_connections_is_unavailable_not_a_driver_error(
    db_dsn: str,
) -> None:
    # (ALTER DATABASE … ALLOW_CONNECTIONS false, as an operator does before maintenance:
    # PostgreSQL answers a new connection with "database … is not currently accepting
    # connections", SQLSTATE 55000.)
    db = await Database.connect(db_dsn, DatabaseSettings(pool_min_size=1, pool_max_size=1))
    admin = await asyncpg.connect(dsn_for(db_dsn, "postgres"))
    name = await admin.fetchval("SELECT $1::text", urlsplit(db_dsn).path.lstrip("/"))
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        for _ in range(2):  # the held connection is gone; then a new one is refused
            with pytest.raises(DatabaseUnavailable):
                async with db.connection() as conn:
                    await conn.fetchval("SELECT 1")
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
        await db.close()


async def test_a_connection_cut_within_a_transaction_is_database_unavailable(
    db_dsn: str,
) -> None:
    """The server ends the connection of a transaction (an administrator, a restart): its
    caller gets "unavailable" (503), not the driver's complaint about the rollback it
    could not send (a 500)."""
    db = await Database.connect(db_dsn, DatabaseSettings(pool_max_size=3))
    try:
        with pytest.raises(DatabaseUnavailable):
            async with db.transaction() as conn:
                await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        async with db.transaction() as conn:  # (the pool opens another)
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await db.close()
