"""The daemon's watch over its embedded PostgreSQL: when the postmaster dies (kill -9, OOM
killer), it is started again on the same socket, so the pool reconnects by itself and the
daemon serves again within seconds instead of answering 503 until someone runs pg_ctl."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Literal

import msgspec
import structlog

from satellite.errors import StateDirError
from satellite.storage.embedded import EmbeddedPostgres
from satellite_protocol.backoff import Backoff

log = structlog.get_logger(__name__)

State = Literal["running", "restarting"]

CHECK_SECONDS = 1.0
# Waits between failed starts: a killed server's backends may hold its shared memory for a
# moment; a server that cannot start at all is retried at most every 30 s (and the systemd
# watchdog, which stops while the daemon is not ready, restarts the daemon).
RESTART_BACKOFF = Backoff(0.5, 30.0)


class SupervisorStatus(msgspec.Struct, frozen=True):
    """What ``/readyz`` shows of the embedded PostgreSQL (no paths, no error text)."""

    state: State
    restarts: int
    failed_starts: int


class PostgresSupervisor:
    def __init__(
        self,
        embedded: EmbeddedPostgres,
        *,
        check_seconds: float = CHECK_SECONDS,
        backoff: Backoff = RESTART_BACKOFF,
    ) -> None:
        self._embedded = embedded
        self._check_seconds = check_seconds
        self._backoff = backoff
        self._state: State = "running"
        self._restarts = 0
        self._failed_starts = 0  # since it last died
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def status(self) -> SupervisorStatus:
        return SupervisorStatus(self._state, self._restarts, self._failed_starts)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop watching; a start under way is let finish (the daemon then stops the server
        as it would have)."""
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        died_at = 0.0
        while not self._stop.is_set():
            wait = self._check_seconds
            if not await asyncio.to_thread(self._embedded.running):
                if self._state == "running":
                    died_at = time.monotonic()
                    self._state, self._failed_starts = "restarting", 0
                    log.error("embedded_postgres.died", pgdata=str(self._embedded.pgdata))
                wait = await self._restart(died_at)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)

    async def _restart(self, died_at: float) -> float:
        """One start attempt; the seconds to wait before looking again."""
        try:
            await asyncio.to_thread(self._embedded.restart_if_dead)
        except StateDirError as exc:
            self._failed_starts += 1
            wait = self._backoff.wait(self._failed_starts)
            log.warning(
                "embedded_postgres.restart_failed",
                attempt=self._failed_starts,
                retry_in_seconds=round(wait, 1),
                error=exc.detail,
            )
            return wait
        self._state = "running"
        self._restarts += 1
        log.warning(
            "embedded_postgres.restarted",
            restarts=self._restarts,
            down_seconds=round(time.monotonic() - died_at, 1),
        )
        return self._check_seconds
