"""What the metrics show of the database, read at scrape time: product instances by state,
license positions per virtual account and tag, open alerts, the sync links' last runs, the
webhook deliveries waiting per account.

One read-only transaction (one snapshot) with a statement timeout, a few aggregated queries:
a scrape never waits long on a busy database, and never changes anything. The positions
are the licenses service's own (``LicenseService.all_positions``): the numbers the licenses
operation shows, counted by the same code.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from satellite.domain.compliance import Position
from satellite.services.licenses import LicenseService
from satellite.storage import metrics, sync
from satellite.storage.db import Database
from satellite_protocol.catalog import Catalog


@dataclass(frozen=True)
class SyncState:
    account: str
    age_seconds: float  # since the last successful sync (never: since the link was made)
    last_succeeded: bool  # the last attempt succeeded (False: it failed, or none was made)


@dataclass(frozen=True)
class DatabaseCounts:
    product_instances: dict[str, int]  # status -> how many
    positions: list[tuple[str, Position]]  # (account name, position), catalog tags only
    open_alerts: list[tuple[str, str, int]]  # (message type, severity, how many)
    sync: list[SyncState]
    # (account name, webhook deliveries pending, seconds since the oldest one's event)
    webhooks_pending: list[tuple[str, int, float]]
    read_seconds: float


class MetricsReader:
    def __init__(
        self,
        db: Database,
        licenses: LicenseService,
        catalog: Catalog,
        timeout_seconds: float,
    ) -> None:
        """``timeout_seconds``: how long each read (statement) may take before PostgreSQL
        cancels it (``DatabaseBusy``)."""
        self._db = db
        self._licenses = licenses
        self._catalog = catalog
        self._timeout_ms = max(1, round(timeout_seconds * 1000))

    async def read(self) -> DatabaseCounts:
        started = time.perf_counter()
        now = dt.datetime.now(dt.UTC)
        async with self._db.snapshot() as conn:
            await metrics.limit_statements(conn, self._timeout_ms)
            by_status = await metrics.product_instances_by_status(conn)
            positions = await self._licenses.all_positions(conn)
            alerts = await metrics.open_alerts_by_type(conn)
            links = await sync.links(conn)
            pending = await metrics.pending_deliveries_by_account(conn)
        return DatabaseCounts(
            product_instances=by_status,
            # (A label value per tag: only the catalog's, a bounded set.)
            positions=[(a, p) for a, p in positions if p.tag in self._catalog],
            open_alerts=alerts,
            sync=[
                SyncState(
                    account=link.account,
                    age_seconds=_seconds(now, link.last_success_at or link.registered_at),
                    last_succeeded=link.last_success_at is not None
                    and (link.last_error_at is None or link.last_error_at < link.last_success_at),
                )
                for link in links
            ],
            webhooks_pending=pending,
            read_seconds=time.perf_counter() - started,
        )


def _seconds(now: dt.datetime, since: dt.datetime) -> float:
    return max(0.0, (now - since).total_seconds())
