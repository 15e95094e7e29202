"""Connected mode: the sync request sent to the upstream and its answer imported at once,
by an operator (``sync now``) or by the scheduled job, one sync of an account at a time
among every node on the database."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import AsyncIterator
from pathlib import Path

from satellite.domain.access import Principal, system_actor
from satellite.domain.clock import utc_now
from satellite.domain.sync import SyncLink, SyncOperation
from satellite.errors import Conflict, SatelliteError
from satellite.services.maintenance import JobReport
from satellite.storage import locks
from satellite.storage import sync as storage
from satellite_protocol.backoff import Backoff
from sync.satellite.answers import SyncAnswers
from sync.satellite.base import Imported, log
from sync.satellite.requests import SyncRequests
from sync.transport import EXCHANGE_PATH, UpstreamRefused, UpstreamUnreachable

LOCK_BASE = 0x5A7E_2000_0000  # + account id: one sync of an account at a time, cluster-wide


class SyncInProgress(Conflict):
    """A sync of this account is running (here or on another node): try again later."""


class ConnectedMode(SyncRequests, SyncAnswers):
    @contextlib.asynccontextmanager
    async def _exclusive(self, link: SyncLink) -> AsyncIterator[None]:
        """One sync of an account at a time among every node on the database."""
        key = LOCK_BASE + link.account_id
        async with self._db.connection() as conn:
            if not await locks.try_session_lock(conn, key):
                raise SyncInProgress(
                    f"a sync of account {link.account!r} is running already: try again later"
                )
            try:
                yield
            finally:
                await locks.release_session_lock(conn, key)

    async def sync_now(self, principal: Principal, account: str) -> Imported:
        """Connected mode, at once: write the sync request, send it, import the answer."""
        async with self._db.connection() as conn:
            _, link = await self._link(conn, principal, account)
        if link.upstream_url is None:
            raise Conflict(
                f"account {link.account!r} syncs in disconnected mode (it was registered by "
                "file): export a request with 'satellite sync export', or set the upstream "
                "URL with 'satellite sync connect'",
                field="account",
            )
        imported = await self._connected(principal, link, "sync-now")
        assert imported is not None  # (only a scheduled run can find its run claimed)
        return imported

    async def _connected(
        self,
        principal: Principal,
        link: SyncLink,
        operation: SyncOperation,
        *,
        scheduled: bool = False,
    ) -> Imported | None:
        """Write the sync request, send it, import the answer, with the account's sync lock
        held. A scheduled run first claims the run (None: another node has done it this
        time)."""
        assert link.upstream_url is not None
        started = utc_now()
        async with self._exclusive(link):
            interval = dt.timedelta(minutes=self._settings.timers.sync_interval_minutes)
            async with self._db.transaction() as conn:
                if scheduled and not await storage.claim_run(
                    conn, link.account_id, started, started + interval
                ):
                    return None
                await storage.record_attempt(conn, link.account_id, started, None, None)
            with self.spool.files("request", "answer") as (request_path, answer_path):
                try:
                    await self._write_request(link, request_path)
                    await self._send(link.upstream_url, request_path, answer_path)
                except SatelliteError as exc:
                    await self._record_failure(link, "connected", operation, started, exc)
                    raise
                return await self._import(principal, answer_path, "connected", operation, link)

    async def _send(self, url: str, request: Path, answer: Path) -> None:
        """POST the request; transient failures are retried with a doubling, jittered wait."""
        settings = self._settings.sync
        backoff = Backoff(settings.retry_backoff_seconds, math.inf)
        for attempt in range(1, settings.attempts + 1):
            try:
                await self._client.post_bundle(url, EXCHANGE_PATH, request, answer)
                return
            except (UpstreamUnreachable, UpstreamRefused) as exc:
                transient = isinstance(exc, UpstreamUnreachable) or exc.status >= 500
                if not transient or attempt == settings.attempts:
                    raise
                wait = backoff.wait(attempt)
                log.warning("sync.retrying", attempt=attempt, wait_seconds=wait, error=exc.detail)
                await self._sleep(wait)

    async def run_scheduled(self) -> JobReport:
        """The scheduled job: every account linked in connected mode syncs, once per
        interval among all the nodes on the database (the first to claim the run does it)."""
        if self._settings.role != "satellite":
            return JobReport("sync", {})
        async with self._db.connection() as conn:
            linked = await storage.links(conn)
        done = {"synced": 0, "failed": 0, "skipped": 0}
        for link in linked:
            if link.upstream_url is None:
                continue
            try:
                synced = await self._connected(
                    system_actor("scheduler"), link, "scheduled", scheduled=True
                )
                done["synced" if synced else "skipped"] += 1
            except SyncInProgress:
                done["skipped"] += 1
            except SatelliteError:
                done["failed"] += 1  # recorded in the link's status, history and alerts
            except Exception as exc:
                log.exception("sync.failed_unexpectedly", account=link.account)
                await self._record_failure(
                    link,
                    "connected",
                    "scheduled",
                    utc_now(),
                    SatelliteError(f"internal error ({type(exc).__name__}); the log has details"),
                )
                done["failed"] += 1
        return JobReport("sync", done)
