"""License pools per virtual account, and the account's license positions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace

from satellite.domain.access import Principal
from satellite.domain.alerts import AlertDetails, AlertType
from satellite.domain.compliance import (
    LineValues,
    PoolLine,
    PoolState,
    Position,
    line_status,
    positions_for_virtual_account,
    positions_of_tags,
)
from satellite.domain.models import Account, ProductInstance, Severity, VirtualAccount
from satellite.domain.paging import page
from satellite.errors import Conflict, InvalidInput, NotFound
from satellite.services import audit, scope
from satellite.storage import (
    accounts,
    alerts,
    export_keys,
    licenses,
    locks,
    reservations,
    usage_totals,
)
from satellite.storage.db import Connection, Database
from satellite_protocol.catalog import Catalog

EXPIRY_WARNING = dt.timedelta(days=30)
# + virtual account id: the advisory lock under which the virtual account's pool alerts
# are raised and cleared, so that each refresh reads what the ones before it committed
# (sync's locks are 0x5A7E_2000_0000 + account id). Taken after the virtual account's row
# lock where a change holds that, and for several virtual accounts in the order of ids.
POOL_ALERT_LOCK_BASE = 0x5A7E_3000_0000
SHORTAGE: AlertType = "Insufficient Licenses"  # a shortage alert's type (severity Major)


def _shortage_key(va_id: int, tag: str) -> str:
    return f"pool:{va_id}:shortage:{tag}"


def _shortage_details(key: str, positions: list[Position]) -> AlertDetails:
    """The details of the shortage alert ``key`` (of ``_shortages``' answer for these
    positions): the tag and how many more are in use or reserved than available."""
    tag = key.partition(":shortage:")[2]
    position = next(p for p in positions if p.tag == tag)
    return {"tag": tag, "short": -position.available}


def today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _require_export_allowed(account: Account, values: LineValues) -> None:
    if values.export_restricted and not account.export_controlled_allowed:
        raise InvalidInput(
            f"account {account.name!r} is not allowed export-controlled functionality, "
            "so it cannot hold export-restricted licenses",
            field="exportRestricted",
        )


class LicenseService:
    def __init__(
        self, db: Database, catalog: Catalog, today: Callable[[], dt.date] = today_utc
    ) -> None:
        self._db = db
        self._catalog = catalog
        self._today = today

    def today(self) -> dt.date:
        """The date license lines are judged at (TERM start and end dates)."""
        return self._today()

    def _validate(self, values: LineValues) -> LineValues:
        """Check a line against the catalog and the type rules; fill in catalog defaults."""
        entry = self._catalog.get(values.tag)
        if entry is None:
            raise InvalidInput(
                f"tag {values.tag!r} is not in the license catalog", field="entitlementTag"
            )
        if entry.license_type is not None and values.license_type != entry.license_type:
            raise InvalidInput(
                f"{entry.display_name} is sold only as {entry.license_type}, "
                f"not as {values.license_type}",
                field="licenseType",
            )
        if values.license_type == "PERPETUAL" and values.end_date is not None:
            raise InvalidInput("a PERPETUAL license has no end date", field="endDate")
        if values.license_type != "PERPETUAL" and values.end_date is None:
            raise InvalidInput(
                f"a {values.license_type} license needs an end date", field="endDate"
            )
        if values.start_date and values.end_date and values.start_date > values.end_date:
            raise InvalidInput("startDate is after endDate", field="startDate")
        if values.export_restricted is None:
            values = replace(values, export_restricted=entry.export_restricted)
        return values

    async def pool(self, principal: Principal, account: str, va: str) -> list[PoolLine]:
        async with self._db.connection() as conn:
            acc = await scope.readable_account(conn, principal, account)
            vacc = await scope.virtual_account(conn, acc, va)
            return await licenses.lines_of_virtual_account(conn, vacc.id)

    async def add_line(
        self, principal: Principal, account: str, va: str, values: LineValues
    ) -> PoolLine:
        values = self._validate(values)
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account)
            _require_export_allowed(acc, values)
            vacc = await scope.virtual_account(conn, acc, va, lock="share")
            line = await licenses.insert_line(conn, vacc.id, values)
            await audit.record(
                conn,
                principal,
                "license.added",
                f"{account}/{va}/{line.id}",
                account_id=acc.id,
                tag=line.tag,
                quantity=line.quantity,
                license_type=line.license_type,
            )
            await self.refresh_alerts(conn, acc.id, vacc.id, vacc.name)
            return line

    async def _local_line(self, conn: Connection, va_id: int, line_id: int) -> PoolLine:
        line = await licenses.get_line(conn, va_id, line_id, for_update=True)
        if line is None:
            raise NotFound(f"license line {line_id} not found", field="lineId")
        if not line.editable:
            raise Conflict(
                f"license line {line_id} comes from the upstream and is read-only here; "
                "change it at the upstream and sync",
                field="lineId",
            )
        return line

    async def update_line(
        self, principal: Principal, account: str, va: str, line_id: int, values: LineValues
    ) -> PoolLine:
        values = self._validate(values)
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account)
            _require_export_allowed(acc, values)
            vacc = await self._locked_for_lowering(conn, acc, va)
            before = await self._local_line(conn, vacc.id, line_id)
            line = await licenses.update_line(conn, vacc.id, line_id, values)
            await self._require_holdings_covered(conn, vacc.id, vacc.name, line_id, {before.tag})
            await audit.record(
                conn,
                principal,
                "license.updated",
                f"{account}/{va}/{line_id}",
                account_id=acc.id,
                tag=line.tag,
                quantity_before=before.quantity,
                quantity=line.quantity,
            )
            await self.refresh_alerts(conn, acc.id, vacc.id, vacc.name)
            return line

    async def remove_line(self, principal: Principal, account: str, va: str, line_id: int) -> None:
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account)
            vacc = await self._locked_for_lowering(conn, acc, va)
            line = await self._local_line(conn, vacc.id, line_id)
            await licenses.delete_line(conn, vacc.id, line_id)
            await self._require_holdings_covered(conn, vacc.id, vacc.name, line_id, {line.tag})
            await audit.record(
                conn,
                principal,
                "license.removed",
                f"{account}/{va}/{line_id}",
                account_id=acc.id,
                tag=line.tag,
                quantity=line.quantity,
            )
            await self.refresh_alerts(conn, acc.id, vacc.id, vacc.name)

    @staticmethod
    async def _locked_for_lowering(conn: Connection, account: Account, name: str) -> VirtualAccount:
        """The virtual account of a pool line that may be lowered or removed, locked as for
        a reservation: the holdings of a tag are checked against all its lines, so two such
        changes run one after the other (at once, each saw the other's line still there
        and both passed)."""
        va = await scope.virtual_account(conn, account, name)
        if not await reservations.lock_virtual_account(conn, va.id):
            raise NotFound(
                f"virtual account {name!r} not found in account {account.name!r}",
                field="virtualAccount",
            )
        return va

    async def _require_holdings_covered(
        self, conn: Connection, va_id: int, va_name: str, line_id: int, tags: set[str]
    ) -> None:
        """After pool line ``line_id`` of ``tags`` was removed or lowered (in the caller's
        transaction, the virtual account locked against reservations): what the tag's
        reservations hold and the export keys granted out of the pool must still be covered
        by what is purchased, else the change is refused (reservations are returned, keys
        given back first). The rule is per tag, so other lines of the tag may cover them."""
        positions = await self.virtual_account_positions(conn, va_id, va_name)
        for position in positions:
            held = position.reserved + position.exported
            if position.tag not in tags or held <= position.purchased:
                continue
            holders = []
            if position.reserved:
                holders.append(f"{position.reserved} reserved (specific license reservation)")
            if position.exported:
                holders.append(f"{position.exported} export key(s) granted")
            raise Conflict(
                f"license line {line_id}: of {position.tag} in virtual account {va_name!r}, "
                f"{' and '.join(holders)} would be covered by only {position.purchased} "
                "without it: return the reservations or the products' export keys first "
                "(or add licenses of the tag)",
                field="lineId",
            )

    async def positions(
        self,
        principal: Principal,
        account: str,
        va_names: list[str] | None,
        *,
        limit: int = -1,
        offset: int = 0,
    ) -> tuple[int, list[Position]]:
        """The account's (virtual account, tag) positions in a stable order: the total, and
        the page of ``limit`` (-1: all) from ``offset``."""
        async with self._db.connection() as conn:
            acc = await scope.readable_account(conn, principal, account)
            vas = await accounts.list_virtual_accounts(conn, acc.id)
            if va_names is not None:
                vas = scope.named_virtual_accounts(vas, va_names, account)
            vas.sort(key=lambda va: va.name)
            by_va = await self.positions_of(conn, vas)
        result = [position for va in vas for position in by_va[va.id]]
        return len(result), page(result, limit, offset)

    async def positions_of(
        self, conn: Connection, vas: list[VirtualAccount], now: dt.datetime | None = None
    ) -> dict[int, list[Position]]:
        """The positions of these virtual accounts (of any accounts) at ``now`` (None: this
        moment), by virtual account id, within the caller's connection: four queries
        however many virtual accounts there are."""
        states = await self._pool_states(conn, [va.id for va in vas], now)
        return {va.id: self.state_positions(va.name, states[va.id], now) for va in vas}

    async def all_positions(self, conn: Connection) -> list[tuple[str, Position]]:
        """Every account's (virtual account, tag) positions as ``positions`` counts them,
        with the account's name, within the caller's transaction (what the metrics show:
        no caller, no account scope)."""
        names = {acc.id: acc.name for acc in await accounts.list_accounts(conn, None)}
        vas = sorted(
            await accounts.all_virtual_accounts(conn),
            key=lambda va: (names[va.account_id], va.name),
        )
        by_va = await self.positions_of(conn, vas)
        return [(names[va.account_id], position) for va in vas for position in by_va[va.id]]

    def date_at(self, now: dt.datetime | None) -> dt.date:
        """The date pools are judged at for ``now`` (None: this moment)."""
        return self._today() if now is None else now.astimezone(dt.UTC).date()

    async def pool_state(
        self, conn: Connection, va_id: int, now: dt.datetime | None = None
    ) -> PoolState:
        """What one virtual account's positions at ``now`` (None: this moment) are computed
        from, within the caller's transaction. (A usage report reads them with its usage
        statement: storage/usage_report.py.)"""
        return (await self._pool_states(conn, [va_id], now))[va_id]

    async def _pool_states(
        self, conn: Connection, va_ids: list[int], now: dt.datetime | None
    ) -> dict[int, PoolState]:
        """``pool_state`` of each of these virtual accounts, by id, in four queries."""
        lines = await licenses.lines_by_virtual_account(conn, va_ids)
        in_use = await usage_totals.in_use_by_virtual_account(
            conn, va_ids, dt.datetime.now(dt.UTC) if now is None else now
        )
        reserved = await reservations.reserved_by_virtual_account(conn, va_ids, self.date_at(now))
        exported = await export_keys.granted_by_virtual_account(conn, va_ids)
        return {
            va_id: PoolState(
                lines.get(va_id, []),
                reserved.get(va_id, {}),
                in_use.get(va_id, {}),
                exported.get(va_id, {}),
            )
            for va_id in va_ids
        }

    def state_positions(
        self, va_name: str, state: PoolState, now: dt.datetime | None = None
    ) -> list[Position]:
        return positions_for_virtual_account(
            va_name,
            self._catalog,
            state.lines,
            self.date_at(now),
            reserved=state.reserved,
            in_use=state.in_use,
            exported=state.exported,
        )

    async def virtual_account_positions(
        self, conn: Connection, va_id: int, va_name: str, now: dt.datetime | None = None
    ) -> list[Position]:
        """One virtual account's positions at ``now`` (None: this moment), within the
        caller's transaction."""
        state = await self.pool_state(conn, va_id, now)
        return self.state_positions(va_name, state, now)

    @staticmethod
    def shortage_alert_open(va_id: int, open_alerts: list[str]) -> bool:
        """Whether a shortage alert of the virtual account is among the keys of its open
        alerts (less in use can only end or lessen a shortage: without one, it has nothing
        to change)."""
        prefix = _shortage_key(va_id, "")
        return any(key.startswith(prefix) for key in open_alerts)

    def _shortages(self, va_id: int, positions: list[Position]) -> dict[str, str]:
        """The "Insufficient Licenses" alerts these positions call for: message by key."""
        return {
            _shortage_key(va_id, p.tag): f"{self._catalog.display_name(p.tag)}: "
            f"{-p.available} more in use or reserved than available"
            for p in positions
            if p.status == "Out Of Compliance"
        }

    def shortage_begins_or_ends(
        self,
        va_id: int,
        va_name: str,
        state: PoolState,
        changes: dict[str, int],
        now: dt.datetime,
    ) -> bool:
        """Whether ``changes`` (per tag) of what is in use, after which ``state`` was read,
        begin or end a shortage of those tags or of the tags they borrow from or lend to
        (judged on ``state`` with and without them): then ``refresh_shortages`` of those
        tags brings their alerts up to date. Else nothing needs to be read or written: this
        is asked of every usage report that changes a product's usage, and a shortage that
        only grows or shrinks would otherwise have every report of the virtual account wait
        in turn for its pool alert lock. The count in an open alert's message then waits
        for the next refresh (a change of the pool or its reservations, a deregistration, a
        shortage of the tag or of a related one beginning or ending, the pool-alerts job)."""
        tags = set(changes)
        before = dict(state.in_use)
        for tag, change in changes.items():
            before[tag] = before.get(tag, 0) - change
        today = self.date_at(now)
        after = positions_of_tags(va_name, self._catalog, tags, state, today)
        earlier = replace(state, in_use={tag: n for tag, n in before.items() if n})
        was = positions_of_tags(va_name, self._catalog, tags, earlier, today)
        return self._shortages(va_id, after).keys() != self._shortages(va_id, was).keys()

    async def refresh_shortages(
        self,
        conn: Connection,
        account_id: int,
        va_id: int,
        va_name: str,
        tags: set[str],
        now: dt.datetime | None = None,
    ) -> None:
        """Raise and clear the "Insufficient Licenses" alerts of ``tags`` and of the tags
        related to them through borrowing, as ``refresh_alerts`` would, after a change of
        usage in the caller's transaction. It takes the virtual account's pool alert lock
        (as ``refresh_alerts`` does), then reads the pool: each such refresh reads what the
        ones before it committed, so the last one leaves the alerts as the pool is."""
        await locks.transaction_lock(conn, POOL_ALERT_LOCK_BASE + va_id)
        state = await self.pool_state(conn, va_id, now)
        positions = positions_of_tags(va_name, self._catalog, tags, state, self.date_at(now))
        wanted = self._shortages(va_id, positions)
        for key, message in wanted.items():
            await alerts.raise_alert(
                conn,
                account_id=account_id,
                virtual_account_id=va_id,
                dedupe_key=key,
                message_type=SHORTAGE,
                severity="Major",
                source=va_name,
                message=message,
                details=_shortage_details(key, positions),
            )
        keys = (_shortage_key(va_id, tag) for tag in tags | {p.tag for p in positions})
        await alerts.clear_alerts(conn, account_id, sorted(k for k in keys if k not in wanted))

    async def refresh_shortages_of(
        self, conn: Connection, instance: ProductInstance, tags: set[str], now: dt.datetime
    ) -> None:
        """``refresh_shortages`` in the virtual account of ``instance``."""
        await self.refresh_shortages(
            conn,
            instance.account_id,
            instance.virtual_account_id,
            instance.virtual_account,
            tags,
            now,
        )

    async def refresh_alerts(
        self,
        conn: Connection,
        account_id: int,
        va_id: int,
        va_name: str,
        now: dt.datetime | None = None,
    ) -> None:
        """Raise and clear the pool alerts of one virtual account to match its positions at
        ``now`` (None: this moment): licenses short (what is in use and reserved counts),
        TERM lines expiring or expired. Under the virtual account's pool alert lock."""
        await locks.transaction_lock(conn, POOL_ALERT_LOCK_BASE + va_id)
        positions = await self.virtual_account_positions(conn, va_id, va_name, now)
        today = self.date_at(now)
        keep: list[str] = []

        async def open_alert(
            key: str,
            message_type: AlertType,
            severity: Severity,
            message: str,
            details: AlertDetails,
        ) -> None:
            keep.append(key)
            await alerts.raise_alert(
                conn,
                account_id=account_id,
                virtual_account_id=va_id,
                dedupe_key=key,
                message_type=message_type,
                severity=severity,
                source=va_name,
                message=message,
                details=details,
            )

        for key, message in self._shortages(va_id, positions).items():
            await open_alert(key, SHORTAGE, "Major", message, _shortage_details(key, positions))
        lines = sorted((line for p in positions for line in p.lines), key=lambda x: (x.tag, x.id))
        for line in lines:
            status = line_status(line, today)
            if line.end_date is None or status == "Pending":
                continue
            name = self._catalog.display_name(line.tag)
            details: AlertDetails = {
                "tag": line.tag,
                "quantity": line.quantity,
                "end_date": line.end_date.isoformat(),
            }
            if status == "Expired":
                await open_alert(
                    f"pool:{va_id}:expired:{line.id}",
                    "Licenses Expired",
                    "Minor",
                    f"{line.quantity} {name} expired on {line.end_date.isoformat()}",
                    details,
                )
            elif line.end_date - today <= EXPIRY_WARNING:
                await open_alert(
                    f"pool:{va_id}:expiring:{line.id}",
                    "Licenses Expiring",
                    "Minor",
                    f"{line.quantity} {name} expire on {line.end_date.isoformat()}",
                    details,
                )
        await alerts.clear_alerts_except(conn, account_id, f"pool:{va_id}:", keep)
