"""What the scheduled jobs do as time passes: the rules behind each run.

Each public method is one run of one job as at ``now``. It takes the job's PostgreSQL
advisory lock in its transaction (pool-alerts, a transaction per virtual account: for its
session), so with several daemons on one database one node runs the job each time; the
others find the lock taken and get None back. A run records what changed with its audit
events in that same transaction, and is idempotent: a second run at the same time finds
nothing new to record.

Virtual accounts are always refreshed in id order and products locked in id order, so
two jobs (or a job and a request) cannot deadlock on the same rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from satellite.config import ConsoleSettings, TimerSettings
from satellite.domain.access import system_actor
from satellite.domain.expiry import CERTIFICATE_WARNING, ProductInstanceTimers
from satellite.services import audit, exports
from satellite.services.envelope import NONCE_LIFETIME
from satellite.services.licenses import LicenseService
from satellite.storage import (
    accounts,
    alerts,
    expiry,
    limits,
    locks,
    nonces,
    product_instances,
    sessions,
    usage,
)
from satellite.storage.db import Connection, Database

JobName = Literal[
    "expire-registrations",
    "expire-authorizations",
    "certificate-alerts",
    "pool-alerts",
    "forget-nonces",
    "forget-usage-history",
    "forget-rate-limits",
    "forget-sessions",
    "sync",
    "sync-alerts",
    "usage-rollup",
]
# One advisory lock key per job, shared by every satellite process on the database
# (the migration lock is 0x5A7E_0001).
LOCK_KEYS: dict[JobName, int] = {
    "expire-registrations": 0x5A7E_1001,
    "expire-authorizations": 0x5A7E_1002,
    "certificate-alerts": 0x5A7E_1003,
    "pool-alerts": 0x5A7E_1004,
    "forget-nonces": 0x5A7E_1005,
    "forget-usage-history": 0x5A7E_1006,
    "sync-alerts": 0x5A7E_1007,
    "forget-rate-limits": 0x5A7E_1008,
    "forget-sessions": 0x5A7E_1009,
    "usage-rollup": 0x5A7E_1060,  # (services.usage)
    # "sync" locks per account (sync.satellite.connected.LOCK_BASE), for as long as the
    # exchange takes.
}
# Usage reports forgotten per run at most, so that one run stays a short transaction; at
# one run an hour that is far more than products report.
USAGE_REPORTS_FORGOTTEN_PER_RUN = 100_000
# Rate-limit counters forgotten per run at most (a flood of guesses from many addresses
# leaves a row per address); what is left is forgotten by the next run.
RATE_LIMITS_FORGOTTEN_PER_RUN = 100_000
# Console sessions forgotten per run at most (one a sign-in; the rest waits for the next run).
SESSIONS_FORGOTTEN_PER_RUN = 100_000
# Daily usage rows forgotten per run at most (one a virtual account and tag a day: a day of
# 1 000 virtual accounts of 10 tags is 10 000).
USAGE_DAYS_FORGOTTEN_PER_RUN = 100_000
AUTHORIZATION_EXPIRED = "authorization-expired:"  # alert key prefix, + product id
CERTIFICATE_EXPIRING = "certificate-expiring:"  # alert key prefix, + product id
SCHEDULER = system_actor("scheduler")


@dataclass(frozen=True)
class JobReport:
    """What one run did (for the log): counts by what they count."""

    job: JobName
    counts: dict[str, int]


def _date(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).date().isoformat()


async def run_locked(
    db: Database, job: JobName, work: Callable[[Connection], Awaitable[dict[str, int]]]
) -> JobReport | None:
    """One run of ``job``: ``work`` in one transaction under the job's advisory lock, its
    counts as the report; None when another node holds the lock (that node does the work)."""
    async with db.transaction() as conn:
        if not await locks.try_transaction_lock(conn, LOCK_KEYS[job]):
            return None
        return JobReport(job, await work(conn))


class MaintenanceService:
    def __init__(
        self,
        db: Database,
        licenses: LicenseService,
        timers: TimerSettings,
        console: ConsoleSettings,
    ) -> None:
        self._db = db
        self._licenses = licenses
        self._timers = timers
        self._session_idle = dt.timedelta(minutes=console.session_idle_minutes)
        self._session_absolute = dt.timedelta(hours=console.session_absolute_hours)

    async def _run(
        self, job: JobName, work: Callable[[Connection], Awaitable[dict[str, int]]]
    ) -> JobReport | None:
        return await run_locked(self._db, job, work)

    async def _refresh_pools(
        self, conn: Connection, instances: list[ProductInstanceTimers], now: dt.datetime
    ) -> None:
        """Refresh the pool alerts of the virtual accounts these products are in."""
        vas = {(p.virtual_account_id, p.account_id, p.virtual_account) for p in instances}
        for va_id, account_id, va_name in sorted(vas):
            await self._licenses.refresh_alerts(conn, account_id, va_id, va_name, now)

    async def _sync_product_alerts(
        self,
        conn: Connection,
        prefix: str,
        instances: list[ProductInstanceTimers],
        raise_one: Callable[[ProductInstanceTimers, str], Awaitable[None]],
    ) -> None:
        """One open alert per product listed (key: prefix + product id); the others with
        that prefix, whose cause is gone, are cleared."""
        by_account: dict[int, list[ProductInstanceTimers]] = {}
        for instance in instances:
            by_account.setdefault(instance.account_id, []).append(instance)
        open_before = await alerts.accounts_with_open_alerts(conn, prefix)
        for account_id in sorted(set(by_account) | set(open_before)):
            keep = []
            for instance in by_account.get(account_id, []):
                key = prefix + instance.id
                keep.append(key)
                await raise_one(instance, key)
            await alerts.clear_alerts_except(conn, account_id, prefix, keep)

    async def expire_registrations(self, now: dt.datetime) -> JobReport | None:
        """Registrations whose ID certificate expired end as 'registration_expired': their
        usage stops counting, their export keys go back to the pool (with an alert, as on
        deregistration) and their next request is refused."""

        async def work(conn: Connection) -> dict[str, int]:
            ended = await expiry.end_expired_registrations(conn, now)
            for instance in ended:
                await audit.record(
                    conn,
                    SCHEDULER,
                    "product.registration_expired",
                    instance.target,
                    account_id=instance.account_id,
                    udi=f"PID:{instance.udi_pid} SN:{instance.udi_serial}",
                    certificate_expired_at=instance.certificate_expires_at.isoformat(),
                )
            released = 0
            for instance in ended:
                keys = await exports.release(conn, SCHEDULER, instance, "registration expired", now)
                released += len(keys)
            await self._refresh_pools(conn, ended, now)
            return {"expired": len(ended), "export_keys_released": released}

        return await self._run("expire-registrations", work)

    async def expire_authorizations(self, now: dt.datetime) -> JobReport | None:
        """Record each authorization not renewed within its validity (its usage stops
        counting) and keep an "Authorization Expired" alert open per such
        product until it renews, deregisters or ends."""

        async def work(conn: Connection) -> dict[str, int]:
            lapsed = await expiry.lapsed_authorizations(conn, now)
            new = [p for p in lapsed if not p.lapse_is_recorded]
            for instance in new:
                await audit.record(
                    conn,
                    SCHEDULER,
                    "product.authorization_expired",
                    instance.target,
                    account_id=instance.account_id,
                    udi=f"PID:{instance.udi_pid} SN:{instance.udi_serial}",
                    authorization_expired_at=instance.authorization_expires_at.isoformat(),
                )
            await expiry.record_authorization_lapses(conn, [p.id for p in new], now)

            async def raise_one(instance: ProductInstanceTimers, key: str) -> None:
                await alerts.raise_alert(
                    conn,
                    account_id=instance.account_id,
                    virtual_account_id=instance.virtual_account_id,
                    dedupe_key=key,
                    message_type="Authorization Expired",
                    severity="Major",
                    source=instance.name,
                    message=f"{instance.name} has not renewed its authorization, which expired "
                    f"on {_date(instance.authorization_expires_at)}: its license usage no "
                    "longer counts until it renews",
                    details={
                        "product": instance.name,
                        "expired_on": _date(instance.authorization_expires_at),
                    },
                )

            await self._sync_product_alerts(conn, AUTHORIZATION_EXPIRED, lapsed, raise_one)
            await self._refresh_pools(conn, new, now)
            return {"expired": len(new), "lapsed": len(lapsed)}

        return await self._run("expire-authorizations", work)

    async def certificate_alerts(self, now: dt.datetime) -> JobReport | None:
        """A "Certificate Expiring" alert per product whose ID certificate expires within
        the warning period; cleared once it renews its registration (or ends)."""

        async def work(conn: Connection) -> dict[str, int]:
            expiring = await expiry.certificates_expiring(conn, now, now + CERTIFICATE_WARNING)

            async def raise_one(instance: ProductInstanceTimers, key: str) -> None:
                await alerts.raise_alert(
                    conn,
                    account_id=instance.account_id,
                    virtual_account_id=instance.virtual_account_id,
                    dedupe_key=key,
                    message_type="Certificate Expiring",
                    severity="Minor",
                    source=instance.name,
                    message=f"the ID certificate of {instance.name} expires on "
                    f"{_date(instance.certificate_expires_at)}: unless the product renews its "
                    "registration by then, it must register again with a token",
                    details={
                        "product": instance.name,
                        "expires_on": _date(instance.certificate_expires_at),
                    },
                )

            await self._sync_product_alerts(conn, CERTIFICATE_EXPIRING, expiring, raise_one)
            return {"expiring": len(expiring)}

        return await self._run("certificate-alerts", work)

    async def pool_alerts(self, now: dt.datetime) -> JobReport | None:
        """Refresh the pool alerts of every virtual account as at ``now``: TERM lines and
        authorizations expire with time, not only when something changes.

        One transaction per virtual account, so that a virtual account done is not held
        (its pool alert lock) until the last one is: a usage report that begins a
        shortage would wait for the whole run. The job's lock is a session lock instead,
        held on this connection across those transactions."""
        key = LOCK_KEYS["pool-alerts"]
        async with self._db.connection() as conn:
            if not await locks.try_session_lock(conn, key):
                return None
            try:
                vas = await accounts.all_virtual_accounts(conn)
                for va in vas:  # (in id order)
                    async with conn.transaction():
                        # A virtual account deleted since the list has no alerts to refresh.
                        if await accounts.share_lock_virtual_accounts(conn, [va.id]):
                            await self._licenses.refresh_alerts(
                                conn, va.account_id, va.id, va.name, now
                            )
            finally:
                await locks.release_session_lock(conn, key)
        return JobReport("pool-alerts", {"virtual_accounts": len(vas)})

    async def forget_nonces(self, now: dt.datetime) -> JobReport | None:
        """Forget used device nonces older than twice their lifetime (refused as stale
        anyway, so no replay can come through)."""

        async def work(conn: Connection) -> dict[str, int]:
            before = now - dt.timedelta(seconds=2 * NONCE_LIFETIME)
            return {"forgotten": await nonces.forget_used_nonces(conn, before)}

        return await self._run("forget-nonces", work)

    async def forget_usage_history(self, now: dt.datetime) -> JobReport | None:
        """Forget usage reports older than the history keeps (a product's current usage is
        not history: it stays), and the daily usage rows of days before the history's
        first day (``services.usage``)."""

        async def work(conn: Connection) -> dict[str, int]:
            since = now - dt.timedelta(days=self._timers.usage_history_days)
            forgotten = await product_instances.forget_usage_reports(
                conn, since, USAGE_REPORTS_FORGOTTEN_PER_RUN
            )
            days = await usage.forget_days(
                conn, since.astimezone(dt.UTC).date(), USAGE_DAYS_FORGOTTEN_PER_RUN
            )
            return {"forgotten": forgotten, "usage_days_forgotten": days}

        return await self._run("forget-usage-history", work)

    async def forget_rate_limits(self, now: dt.datetime) -> JobReport | None:
        """Forget rate-limit counters whose window ended (the next attempt would start a new
        window anyway)."""

        async def work(conn: Connection) -> dict[str, int]:
            forgotten = await limits.forget_ended(conn, now, RATE_LIMITS_FORGOTTEN_PER_RUN)
            return {"forgotten": forgotten}

        return await self._run("forget-rate-limits", work)

    async def forget_sessions(self, now: dt.datetime) -> JobReport | None:
        """Forget console sessions that ended (idle or too old) without a sign-out: nobody
        can resume them, and a user who never comes back would otherwise leave them."""

        async def work(conn: Connection) -> dict[str, int]:
            forgotten = await sessions.forget_ended(
                conn,
                seen_before=now - self._session_idle,
                begun_before=now - self._session_absolute,
                limit=SESSIONS_FORGOTTEN_PER_RUN,
            )
            return {"forgotten": forgotten}

        return await self._run("forget-sessions", work)
