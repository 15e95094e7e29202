"""What every step of the satellite's side of sync shares: its collaborators, the link of
an account, and where a step's outcome is recorded (status, history, alerts)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import structlog

from satellite.config import Settings
from satellite.crypto.keys import ServerKeys
from satellite.domain.access import Principal
from satellite.domain.alerts import detail_text
from satellite.domain.clock import utc_now
from satellite.domain.models import Account
from satellite.domain.sync import HistoryEntry, SyncLink, SyncMode, SyncOperation
from satellite.errors import Conflict, InvalidInput, SatelliteError
from satellite.services import scope
from satellite.services.licenses import LicenseService
from satellite.storage import accounts, alerts
from satellite.storage import sync as storage
from satellite.storage.db import Connection, Database
from satellite_protocol import outbound
from sync.spool import Spool
from sync.transport import UpstreamClient

log = structlog.get_logger("sync.satellite")
FAILED_ALERT = "sync-failed"


def key_context(account_id: int) -> bytes:
    return f"sync-key:{account_id}".encode()


def check_upstream_url(url: str) -> None:
    """An upstream URL that cannot name a server is the caller's input (a label too long
    was a 500 from the resolver, a port beyond 65535 a 502 as if the upstream were down)."""
    refusal = outbound.url_refusal(url)
    if refusal is not None:
        raise InvalidInput(f"the upstream {refusal.removeprefix('the ')}", field="upstream")
    if "@" in urlsplit(url).netloc:
        # The upstream knows a satellite by its signed bundles; a password in the URL would
        # only be stored in the audit log and repeated in error messages.
        raise InvalidInput(
            "the upstream URL must hold no user name or password (a proxy's credentials "
            "go in sync.proxy_username and sync.proxy_password_file)",
            field="upstream",
        )


@dataclass(frozen=True)
class Imported:
    account: str
    sequence: int
    repeated: bool  # the answer was applied before: nothing changed
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SyncStatus:
    account: str
    link: SyncLink | None
    pending_registration: bool
    history: list[HistoryEntry]  # a page of it, the latest first
    history_total: int
    authorizations_until: dt.datetime | None  # the horizon, for a linked account
    horizon_passed: bool
    upstream_fingerprint: str | None  # of the pinned upstream key


class SatelliteBase:
    """The state the satellite side's parts share (each part is a class over this one;
    ``sync.satellite.SatelliteSync`` puts them together)."""

    def __init__(
        self,
        db: Database,
        keys: ServerKeys,
        licenses: LicenseService,
        settings: Settings,
        client: UpstreamClient | None = None,
    ) -> None:
        self._db = db
        self._keys = keys
        self._licenses = licenses
        self._settings = settings
        self._client = client or UpstreamClient(settings.sync)
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self.spool = Spool(settings)

    def _require_satellite(self) -> None:
        """(Checked after the account: to a caller who may not see it, it does not exist.)"""
        if self._settings.role != "satellite":
            raise Conflict(
                'this server\'s role is "upstream": only a satellite registers and syncs '
                "with an upstream"
            )

    async def account_or_only(self, principal: Principal, account: str | None) -> str:
        """``account``, or the one account the caller sees when it is left out."""
        if account is not None:
            return account
        async with self._db.connection() as conn:
            visible = await accounts.list_accounts(
                conn, None if principal.is_system_admin else principal.account_ids
            )
        if len(visible) != 1:
            raise InvalidInput(
                f"there are {len(visible)} accounts: name one with --account", field="account"
            )
        return visible[0].name

    async def _link(
        self, conn: Connection, principal: Principal, account: str
    ) -> tuple[Account, SyncLink]:
        acc = await scope.writable_account(conn, principal, account)
        self._require_satellite()
        link = await storage.get_link(conn, acc.id, lock=None)
        if link is None:
            raise Conflict(
                f"account {acc.name!r} is not registered with an upstream: run "
                "'satellite sync register' first",
                field="account",
            )
        return acc, link

    async def _history(
        self,
        conn: Connection,
        link: SyncLink,
        mode: SyncMode,
        operation: SyncOperation,
        started: dt.datetime,
        sequence: int | None,
        counts: dict[str, int],
        error: str | None = None,
    ) -> None:
        await storage.insert_history(
            conn,
            link.account_id,
            mode=mode,
            operation=operation,
            started_at=started,
            finished_at=utc_now(),
            outcome="failure" if error else "success",
            sequence=sequence,
            counts=counts,
            error=error,
        )

    async def _record_failure(
        self,
        link: SyncLink,
        mode: SyncMode,
        operation: SyncOperation,
        started: dt.datetime,
        error: SatelliteError,
    ) -> None:
        """What went wrong, where the operator looks: status, history, an alert."""
        now = utc_now()
        async with self._db.transaction() as conn:
            await storage.record_attempt(conn, link.account_id, now, error.detail, None)
            await self._history(conn, link, mode, operation, started, None, {}, error.detail)
            await alerts.raise_alert(
                conn,
                account_id=link.account_id,
                virtual_account_id=None,
                dedupe_key=FAILED_ALERT,
                message_type="SyncFailed",
                severity="Major",
                source="sync",
                message=f"sync with the upstream failed ({operation}): {error.detail}",
                details={"operation": operation, "error": detail_text(error.detail)},
            )
        # A scheduled sync's failure is for the log; an operator's gets the error itself.
        report = log.warning if mode == "connected" else log.info
        report("sync.failed", account=link.account, operation=operation, error=error.detail)
