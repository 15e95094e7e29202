"""Reading an account's alerts."""

from __future__ import annotations

from satellite.domain.access import Principal
from satellite.domain.models import Alert
from satellite.services import scope
from satellite.storage import alerts
from satellite.storage.db import Database


class AlertService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list_alerts(
        self,
        principal: Principal,
        account: str,
        limit: int,
        include_cleared: bool = False,
        offset: int = 0,
    ) -> tuple[int, list[Alert]]:
        """How many there are, and newest first ``limit`` of them (-1: all) from ``offset``."""
        async with self._db.connection() as conn:
            acc = await scope.readable_account(conn, principal, account)
            total = await alerts.count_alerts(conn, acc.id, include_cleared)
            return total, await alerts.list_alerts(conn, acc.id, limit, offset, include_cleared)
