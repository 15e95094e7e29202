"""License transfer between the virtual accounts of an account.

A transfer moves free licenses (compliance.Position.free: purchased, less what is in use,
reserved, granted as export keys and lent to lower tiers) of a tag from one virtual
account's pool to another's. It takes them from particular pool lines, so that a TERM
line's dates and its subscription id go with them: the line keeps what stays, the target
gets a line with the same values (or the quantity joins a local line of the target that has
them all, so that licenses moved there and back end up on the line they left).

Which lines give: as specific license reservation takes them (domain.reservation.allocate),
LONGEST_TERM_FIRST unless the request says SHORTEST_TERM_FIRST, a PERPETUAL line counting
as the longest term. The target receives licenses that serve it as long as possible, which
is what a transfer to where licenses are needed is for, and a transfer never hands over
licenses about to run out, whose renewal is the source's business (its pool shows the
expiry). Only active lines give (a line that has not started or has ended holds no free
licenses), and never what a reservation holds on a line.

Every line of a request is one transaction, all or nothing. The virtual accounts it names
are locked in the order of their ids, as reservations lock one (FOR NO KEY UPDATE, which
pool changes' share locks wait for), before anything is counted: two transfers that race
for the last free licenses run one after the other, and the second counts what the first
left. Lines that came from the upstream belong to it: a satellite refuses to move them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import structlog

from satellite.domain.access import Principal
from satellite.domain.compliance import LicenseType, LineValues, PoolLine, Position
from satellite.domain.models import Account, VirtualAccount
from satellite.domain.reservation import Precedence, ReservedLine, allocate
from satellite.errors import Conflict, InvalidInput, NotFound
from satellite.services import audit, scope
from satellite.services.licenses import LicenseService
from satellite.storage import accounts, licenses, reservations
from satellite.storage.db import Connection, Database
from satellite_protocol.catalog import Catalog

log = structlog.get_logger(__name__)

FIELD = "licenses"


@dataclass(frozen=True)
class TransferItem:
    """One line of a transfer request."""

    license: str  # an entitlement tag or a catalog display name
    quantity: int
    target: str
    source: str | None = None  # None: the request's source
    license_type: LicenseType | None = None  # None: lines of any type
    precedence: Precedence = "LONGEST_TERM_FIRST"


@dataclass(frozen=True)
class MovedLine:
    """Licenses that left one pool line for another."""

    source_line_id: int
    target_line_id: int
    quantity: int
    license_type: LicenseType
    start_date: dt.date | None
    end_date: dt.date | None
    subscription_id: str | None


@dataclass(frozen=True)
class Transferred:
    tag: str
    quantity: int
    source: str
    target: str
    lines: list[MovedLine]


@dataclass(frozen=True)
class _Planned:
    index: int
    tag: str
    source: VirtualAccount
    target: VirtualAccount
    item: TransferItem

    @property
    def where(self) -> str:
        return f"{FIELD}[{self.index}]"


class LicenseTransferService:
    def __init__(self, db: Database, catalog: Catalog, licenses: LicenseService) -> None:
        self._db = db
        self._catalog = catalog
        self._licenses = licenses

    def _tag(self, name: str, field: str) -> str:
        if name in self._catalog:
            return name
        for entry in self._catalog:
            if entry.display_name == name:
                return entry.tag
        raise InvalidInput(
            f"license {name!r} is neither an entitlement tag nor a display name of the "
            "license catalog",
            field=field,
        )

    @staticmethod
    async def _named(conn: Connection, account: Account, name: str, field: str) -> VirtualAccount:
        va = await accounts.get_virtual_account(conn, account.id, name, lock=None)
        if va is None:
            raise NotFound(
                f"virtual account {name!r} not found in account {account.name!r}", field=field
            )
        return va

    async def _plan(
        self, conn: Connection, account: Account, items: list[TransferItem], source: str | None
    ) -> list[_Planned]:
        """Each line resolved, then every virtual account named locked in id order."""
        plan: list[_Planned] = []
        for index, item in enumerate(items):
            where = f"{FIELD}[{index}]"
            tag = self._tag(item.license, f"{where}.license")
            source_name = item.source or source
            if source_name is None:
                raise InvalidInput(
                    "say which virtual account the licenses leave: sourceVirtualAccount, "
                    "for the request or on the line",
                    field=f"{where}.sourceVirtualAccount",
                )
            from_va = await self._named(
                conn,
                account,
                source_name,
                f"{where}.sourceVirtualAccount" if item.source else "sourceVirtualAccount",
            )
            to_va = await self._named(conn, account, item.target, f"{where}.targetVirtualAccount")
            if from_va.id == to_va.id:
                raise InvalidInput(
                    f"the licenses are in virtual account {to_va.name!r} already; name another "
                    "target",
                    field=f"{where}.targetVirtualAccount",
                )
            plan.append(_Planned(index, tag, from_va, to_va, item))
        named = {p.source.id: p.source for p in plan} | {p.target.id: p.target for p in plan}
        for va_id in sorted(named):
            if not await reservations.lock_virtual_account(conn, va_id):
                raise NotFound(
                    f"virtual account {named[va_id].name!r} not found in account {account.name!r}",
                    field=FIELD,
                )
        return plan

    async def transfer(
        self,
        principal: Principal,
        account: str,
        items: list[TransferItem],
        source: str | None = None,
    ) -> list[Transferred]:
        """Move each line's quantity from its source to its target virtual account; all of
        them or, if one is not free, none (409 naming the line)."""
        if not items:
            raise InvalidInput("name at least one license to transfer", field=FIELD)
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account)
            plan = await self._plan(conn, acc, items, source)
            done: list[Transferred] = []
            for step in plan:
                moved = await self._move(conn, step)
                done.append(
                    Transferred(
                        step.tag, step.item.quantity, step.source.name, step.target.name, moved
                    )
                )
                common = {"tag": step.tag, "quantity": step.item.quantity}
                await audit.record(
                    conn,
                    principal,
                    "license.transferred_out",
                    f"{account}/{step.source.name}",
                    account_id=acc.id,
                    to_virtual_account=step.target.name,
                    lines=[m.source_line_id for m in moved],
                    **common,
                )
                await audit.record(
                    conn,
                    principal,
                    "license.transferred_in",
                    f"{account}/{step.target.name}",
                    account_id=acc.id,
                    from_virtual_account=step.source.name,
                    lines=[m.target_line_id for m in moved],
                    **common,
                )
            involved = {p.source.id: p.source for p in plan} | {p.target.id: p.target for p in plan}
            for va_id in sorted(involved):
                await self._licenses.refresh_alerts(conn, acc.id, va_id, involved[va_id].name)
        for item in done:
            log.info(
                "license.transferred",
                account=account,
                tag=item.tag,
                quantity=item.quantity,
                source=item.source,
                target=item.target,
            )
        return done

    def _not_free(self, step: _Planned, position: Position | None) -> Conflict:
        name = self._catalog.display_name(step.tag)
        asked = step.item.quantity
        if position is None:
            return Conflict(
                f"{step.where}: {name}: {asked} asked, virtual account {step.source.name!r} "
                "has none",
                field=step.where,
            )
        return Conflict(
            f"{step.where}: {name}: {asked} asked, {position.free} free in virtual account "
            f"{step.source.name!r} (of {position.purchased} purchased: {position.in_use} in "
            f"use, {position.reserved} reserved, {position.exported} export key(s) granted, "
            f"{sum(position.lent.values())} lent to lower tiers)",
            field=step.where,
        )

    async def _move(self, conn: Connection, step: _Planned) -> list[MovedLine]:
        today = self._licenses.today()
        source, target, item = step.source, step.target, step.item
        positions = await self._licenses.virtual_account_positions(conn, source.id, source.name)
        position = next((p for p in positions if p.tag == step.tag), None)
        if position is None or item.quantity > position.free:
            raise self._not_free(step, position)
        lines = [
            line
            for line in await licenses.lines_of_virtual_account(conn, source.id)
            if item.license_type in (None, line.license_type)
        ]
        held: dict[int, int] = {}
        for reservation in await reservations.active_reservations_of_virtual_account(
            conn, source.id
        ):
            for line_id, quantity in reservation.held_on_lines().items():
                held[line_id] = held.get(line_id, 0) + quantity
        local = [line for line in lines if line.source == "local"]
        taken = allocate(step.tag, item.quantity, local, held, today, item.precedence)
        if taken is None:
            raise self._not_on_lines(step, lines, held, today)
        by_id = {line.id: line for line in local}
        return [
            await self._move_piece(conn, source, by_id[piece.line_id], piece, target)
            for piece in taken
        ]

    def _not_on_lines(
        self, step: _Planned, lines: list[PoolLine], held: dict[int, int], today: dt.date
    ) -> Conflict:
        name = self._catalog.display_name(step.tag)
        item = step.item
        if allocate(step.tag, item.quantity, lines, held, today, item.precedence) is not None:
            return Conflict(
                f"{step.where}: {name}: the free licenses of virtual account "
                f"{step.source.name!r} are on lines that came from the upstream; they are the "
                "upstream's: transfer them there, and the next sync brings the change here",
                field=step.where,
            )
        kind = f"{item.license_type} " if item.license_type else ""
        return Conflict(
            f"{step.where}: {name}: the active {kind}lines of virtual account "
            f"{step.source.name!r} do not hold {item.quantity} licenses that no reservation "
            "holds",
            field=step.where,
        )

    @staticmethod
    async def _move_piece(
        conn: Connection,
        source: VirtualAccount,
        line: PoolLine,
        piece: ReservedLine,
        target: VirtualAccount,
    ) -> MovedLine:
        left = line.quantity - piece.quantity
        if left:
            await licenses.set_quantity(conn, source.id, line.id, left)
        else:
            await licenses.delete_line(conn, source.id, line.id)
        values = LineValues(
            tag=line.tag,
            quantity=piece.quantity,
            license_type=line.license_type,
            start_date=line.start_date,
            end_date=line.end_date,
            subscription_id=line.subscription_id,
            export_restricted=line.export_restricted,
        )
        joined = await licenses.local_line_like(conn, target.id, values)
        if joined is None:
            target_id = (await licenses.insert_line(conn, target.id, values)).id
        else:
            await licenses.set_quantity(
                conn, target.id, joined.id, joined.quantity + piece.quantity
            )
            target_id = joined.id
        return MovedLine(
            source_line_id=line.id,
            target_line_id=target_id,
            quantity=piece.quantity,
            license_type=line.license_type,
            start_date=line.start_date,
            end_date=line.end_date,
            subscription_id=line.subscription_id,
        )
