"""Usage reports: per virtual account and tag, day by day, for charting a quarter.

The ``usage-rollup`` job samples every virtual account's positions as the licenses view
counts them (``LicenseService.positions_of``: purchased, in use, reserved, available; in
use is product usage plus export keys granted, read from the running per-shard totals) and
folds the sample into the row of its UTC day (``storage.usage``). A day's peak is the
highest of that day's samples, so a peak between two runs is not seen; each row says how
many samples it rests on. Nothing is written on the usage-report path: the job reads what
the reports already keep. Rows older than ``timers.usage_history_days`` are forgotten by the
``forget-usage-history`` job.
"""

from __future__ import annotations

import datetime as dt

from satellite.domain.access import Principal
from satellite.services import scope
from satellite.services.licenses import LicenseService
from satellite.services.maintenance import JobReport, run_locked
from satellite.storage import accounts, usage
from satellite.storage.db import Connection, Database
from satellite.storage.usage import UsageDay, UsageSample


class UsageService:
    def __init__(self, db: Database, licenses: LicenseService) -> None:
        self._db = db
        self._licenses = licenses

    async def rollup(self, now: dt.datetime) -> JobReport | None:
        """One sample of every virtual account's positions at ``now``, folded into the rows
        of ``now``'s UTC day, in one transaction of a few statements (however many virtual
        accounts there are). None when another node holds the job's lock."""

        async def work(conn: Connection) -> dict[str, int]:
            vas = await accounts.all_virtual_accounts(conn)
            by_va = await self._licenses.positions_of(conn, vas, now)
            samples = [
                UsageSample(
                    virtual_account_id=va_id,
                    tag=position.tag,
                    in_use=position.in_use_total,
                    purchased=position.purchased,
                    reserved=position.reserved,
                    available=position.available,
                )
                for va_id, positions in by_va.items()
                for position in positions
            ]
            rows = await usage.record_samples(conn, samples, now)
            return {"virtual_accounts": len(vas), "rows": rows}

        return await run_locked(self._db, "usage-rollup", work)

    async def days(
        self,
        principal: Principal,
        account: str,
        first: dt.date,
        last: dt.date,
        *,
        virtual_account: str | None,
        tag: str | None,
        limit: int,
        offset: int,
    ) -> tuple[int, list[UsageDay]]:
        """The account's daily rows from ``first`` to ``last`` (inclusive), oldest first:
        the total and one page. A virtual account named must exist in the account."""
        async with self._db.connection() as conn:
            acc = await scope.readable_account(conn, principal, account)
            va_id = None
            if virtual_account is not None:
                va_id = (await scope.virtual_account(conn, acc, virtual_account)).id
            return await usage.days_of_account(
                conn,
                acc.id,
                first,
                last,
                va_id=va_id,
                tag=tag,
                limit=limit,
                offset=offset,
            )
