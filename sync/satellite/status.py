"""What an operator sees of an account's sync: its link, history and horizon; and the
alerts before and after the authorization horizon passes."""

from __future__ import annotations

import datetime as dt

from satellite.crypto import bundles
from satellite.domain.access import Principal
from satellite.domain.alerts import AlertDetails, AlertType
from satellite.domain.clock import utc_now
from satellite.domain.models import Severity
from satellite.domain.sync import horizon_passed
from satellite.services import scope
from satellite.services.maintenance import LOCK_KEYS, JobReport
from satellite.storage import alerts, locks
from satellite.storage import sync as storage
from sync.satellite.base import SatelliteBase, SyncStatus

HISTORY_SHOWN = 20
HORIZON_ALERT = "sync-horizon"


class SyncStatusReports(SatelliteBase):
    async def status(
        self, principal: Principal, account: str, history_offset: int = 0
    ) -> SyncStatus:
        """The account's link and its history, ``HISTORY_SHOWN`` entries from
        ``history_offset`` (the latest first)."""
        async with self._db.connection() as conn:
            acc = await scope.readable_account(conn, principal, account)
            link = await storage.get_link(conn, acc.id, lock=None)
            pending = await storage.has_pending_registration(conn, acc.id)
            history = await storage.history(conn, acc.id, HISTORY_SHOWN, history_offset)
            total = await storage.history_count(conn, acc.id)
        until = None
        passed = False
        if link is not None:
            horizon = self._settings.timers.sync_horizon_days
            until = link.in_step_since() + dt.timedelta(days=horizon)
            passed = horizon_passed(link.in_step_since(), utc_now(), horizon)
        fingerprint = bundles.pinned_key_fingerprint(link.upstream_key) if link else None
        return SyncStatus(acc.name, link, pending, history, total, until, passed, fingerprint)

    async def horizon_alerts(self, now: dt.datetime) -> JobReport | None:
        """Warn before the horizon and when it has passed; clear when in step again."""
        horizon = self._settings.timers.sync_horizon_days
        warning = self._settings.sync.horizon_warning_days
        raised = 0
        async with self._db.transaction() as conn:
            if not await locks.try_transaction_lock(conn, LOCK_KEYS["sync-alerts"]):
                return None
            linked = await storage.links(conn)
            for link in linked:
                since = link.in_step_since()
                keep: list[str] = []
                severity: Severity
                kind: AlertType
                details: AlertDetails
                if horizon_passed(since, now, horizon):
                    keep = [HORIZON_ALERT]
                    severity, kind = "Critical", "SyncHorizonPassed"
                    message = (
                        f"no sync with the upstream since {since:%Y-%m-%d}: more than "
                        f"{horizon} days, so this satellite grants no new authorizations; "
                        "sync now (or import an answer) to resume"
                    )
                    details = {"since": f"{since:%Y-%m-%d}", "days": horizon}
                elif horizon_passed(since, now, max(horizon - warning, 0)):
                    keep = [HORIZON_ALERT]
                    severity, kind = "Major", "SyncOverdue"
                    until = since + dt.timedelta(days=horizon)
                    message = (
                        f"no sync with the upstream since {since:%Y-%m-%d}: from "
                        f"{until:%Y-%m-%d} this satellite grants no new authorizations "
                        "unless it syncs"
                    )
                    details = {"since": f"{since:%Y-%m-%d}", "until": f"{until:%Y-%m-%d}"}
                if keep:
                    raised += await alerts.raise_alert(
                        conn,
                        account_id=link.account_id,
                        virtual_account_id=None,
                        dedupe_key=HORIZON_ALERT,
                        message_type=kind,
                        severity=severity,
                        source="sync",
                        message=message,
                        details=details,
                    )
                await alerts.clear_alerts_except(conn, link.account_id, HORIZON_ALERT, keep)
        return JobReport("sync-alerts", {"linked": len(linked), "raised": raised})
