"""The asyncpg pool and transaction helpers."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Literal, cast

import asyncpg
import structlog
from asyncpg.connection import LoggedQuery

from satellite.config import DatabaseSettings
from satellite.errors import DatabaseBusy, DatabaseUnavailable

log = structlog.get_logger(__name__)

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


# Getting a connection failed: the server is not there (no socket, refused, timed out) or
# not taking connections (starting, shutting down, full, or the database closed to new
# connections: ALLOW_CONNECTIONS false, SQLSTATE 55000, the only such error at connect).
_CONNECT_FAILED = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.ObjectNotInPrerequisiteStateError,
)
# A connection held went away under a statement: the server died, was stopped or restarted.
_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
)
# PostgreSQL aborted the transaction in favour of another: it wrote nothing, and running
# it again would very likely pass.
_ABORTED_FOR_ANOTHER = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


def _closed(conn: asyncpg.Connection) -> bool:
    """Whether the connection went away. (The pool takes back one its server ended at
    once: its proxy then refuses every call, is_closed too.)"""
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:
        return True


class _Quiet:
    """At most one log line a second while the database is away (every request that needs
    it fails the same way; the access log already counts them)."""

    every_seconds = 1.0

    def __init__(self) -> None:
        self._last = -self.every_seconds
        self._suppressed = 0

    def warn(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last < self.every_seconds:
            self._suppressed += 1
            return
        # The driver's text names hosts and paths: the log has it, the caller gets a sentence.
        log.warning(
            "database.unavailable",
            error=str(exc),
            error_type=type(exc).__name__,
            suppressed=self._suppressed,
        )
        self._last, self._suppressed = now, 0


class Database:
    """A pool; services take connections or transactions from it."""

    def __init__(self, pool: asyncpg.Pool, acquire_timeout: float | None = None) -> None:
        """``acquire_timeout``: seconds a caller waits for a connection of the pool (None:
        as long as it takes)."""
        self._pool = pool
        self._acquire_timeout = acquire_timeout
        self._quiet = _Quiet()
        self._on_acquire: Callable[[float], None] | None = None
        self._on_query: Callable[[LoggedQuery], None] | None = None

    def observe_acquire(self, on_acquire: Callable[[float], None] | None) -> None:
        """Tell ``on_acquire`` how many seconds each wait for a pooled connection took (the
        metrics' histogram; a wait that fails is not told)."""
        self._on_acquire = on_acquire

    def observe_queries(self, on_query: Callable[[LoggedQuery], None] | None) -> None:
        """Tell ``on_query`` every statement run on a connection taken from now on (each is
        one round trip to the server, a transaction's BEGIN and COMMIT included): what a
        request costs the database, as the tests count it."""
        self._on_query = on_query

    @property
    def pool_size(self) -> int:
        """Connections the pool holds open now."""
        return self._pool.get_size()

    @property
    def pool_max_size(self) -> int:
        return self._pool.get_max_size()

    @property
    def pool_in_use(self) -> int:
        """Connections of the pool taken by a caller now."""
        return self._pool.get_size() - self._pool.get_idle_size()

    def _unavailable(self, exc: BaseException) -> DatabaseUnavailable:
        self._quiet.warn(exc)
        return DatabaseUnavailable("the database cannot be reached; try again shortly")

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
        # Waiting for a pooled connection is bounded too: when the database hangs (a dead
        # disk, a partition to its host) every connection hangs with it, and the requests
        # behind them get their 503 instead of waiting for ever.
        return cls(pool, settings.connect_timeout_seconds)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection from the pool; a database that cannot be reached, or that goes away
        while the connection is in use, is DatabaseUnavailable (never a driver error)."""
        started = time.perf_counter()
        try:
            proxy = await self._pool.acquire(timeout=self._acquire_timeout)
        except _CONNECT_FAILED as exc:
            raise self._unavailable(exc) from exc
        if self._on_acquire is not None:
            self._on_acquire(time.perf_counter() - started)
        # The pool hands out proxies with the Connection interface.
        conn = cast(asyncpg.Connection, proxy)
        on_query = self._on_query
        if on_query is not None:
            conn.add_query_logger(on_query)
        try:
            yield conn
        except _CONNECTION_LOST as exc:
            raise self._unavailable(exc) from exc
        except _ABORTED_FOR_ANOTHER as exc:
            log.warning("database.transaction_aborted", error_type=type(exc).__name__)
            raise DatabaseBusy(
                "the database set this request aside for another one at the same time "
                "(nothing was changed): retry it"
            ) from exc
        except asyncpg.QueryCanceledError as exc:
            # A statement timeout (the metrics' reads set one): nothing was changed.
            raise DatabaseBusy(
                "the database took too long to answer (nothing was changed): retry it"
            ) from exc
        except asyncpg.InterfaceError as exc:
            if not _closed(conn):
                raise  # a misuse of the driver, not the database going away
            raise self._unavailable(exc) from exc
        except asyncpg.InternalClientError as exc:
            # Seen on a connection whose server died under it ("another operation is in
            # progress"): its protocol state is lost, so it is never used again.
            conn.terminate()
            raise self._unavailable(exc) from exc
        finally:
            if on_query is not None:
                conn.remove_query_logger(on_query)
            # A connection that died is dropped by the pool, which opens a new one when
            # asked next; what releasing it raises then changes nothing.
            with contextlib.suppress(*_CONNECT_FAILED, asyncpg.InterfaceError):
                await self._pool.release(proxy)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[asyncpg.Connection]:
        """A read-only transaction that sees one snapshot throughout (long reads)."""
        async with (
            self.connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield conn

    async def close(self) -> None:
        await self._pool.close()
