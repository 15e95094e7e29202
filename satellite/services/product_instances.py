"""Product instances as administrators see them: listed, shown, transferred, removed.

Products register, report and leave through the device API (``services.device_api``); here an
account's admins look at them, move them to another virtual account of the same account
(their usage goes with them) or remove them (their usage is released at once, and the
product's next device request is refused as ended). A change names its products by UDI
(as public clients do) or by product instance id (as the CLI does), and is all or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from satellite.domain.access import Principal
from satellite.domain.clock import utc_now
from satellite.domain.models import (
    Account,
    ProductInstance,
    ProductInstanceStatus,
    UsageRecord,
    VirtualAccount,
    udi_label,
)
from satellite.domain.reservation import Reservation
from satellite.errors import Conflict, InvalidInput, NotFound
from satellite.services import audit, exports, scope
from satellite.services.licenses import LicenseService
from satellite.services.reservations import ReservationService
from satellite.storage import accounts, export_keys, product_instances, reservations
from satellite.storage.db import Connection, Database

HISTORY_LENGTH = 50  # usage reports shown with a product
ALL_STATUSES = "all"


@dataclass(frozen=True)
class ProductInstanceFilter:
    """Which products of a virtual account to list, and which page of them."""

    status: str = "registered"  # a product status (any case), or "all"
    udi_pid: str | None = None
    udi_serial: str | None = None
    hostname: str | None = None  # a part of the host name, any case
    product_type: str | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True)
class ProductInstanceView:
    product: ProductInstance
    usage: dict[str, int]  # tag -> count, as last reported (empty once it ended)
    reservation: Reservation | None = None  # its specific license reservation, if any


@dataclass(frozen=True)
class ProductInstanceDetail:
    view: ProductInstanceView
    history: list[UsageRecord]  # newest first


@dataclass(frozen=True)
class ById:
    """A product named by its product instance id; its type, when given, must match."""

    product_id: str
    product_type: str | None = None
    return_code: str | None = None  # a reserved product is removed by its return code

    def describe(self) -> str:
        return f"product instance {self.product_id}"


@dataclass(frozen=True)
class ByUdi:
    """A product named by its UDI; its UUID and type, when given, must match too."""

    udi_pid: str
    udi_serial: str
    udi_uuid: str | None = None
    product_type: str | None = None
    return_code: str | None = None  # a reserved product is removed by its return code

    def describe(self) -> str:
        return f"product PID:{self.udi_pid} SN:{self.udi_serial}"


ProductRef = ById | ByUdi


@dataclass(frozen=True)
class Transfer:
    product: ProductRef
    target: str  # name of a virtual account of the same account


def parse_status(text: str) -> ProductInstanceStatus | None:
    """A status filter: one product status (any case, "_" or " "), or None for "all"."""
    value = text.strip().lower().replace(" ", "_")
    if value == ALL_STATUSES:
        return None
    statuses: tuple[ProductInstanceStatus, ...] = get_args(ProductInstanceStatus)
    for status in statuses:
        if value == status:
            return status
    choices = ", ".join([s.replace("_", " ").title() for s in statuses] + [ALL_STATUSES])
    raise InvalidInput(f"status {text!r} is not one of {choices}", field="status")


class ProductInstanceService:
    def __init__(
        self,
        db: Database,
        reservations: ReservationService,
        licenses: LicenseService,
    ) -> None:
        self._db = db
        self._reservations = reservations
        self._licenses = licenses

    @staticmethod
    async def _views(
        conn: Connection, instances: list[ProductInstance]
    ) -> list[ProductInstanceView]:
        ids = [p.id for p in instances]
        usage = await product_instances.usage_of_instances(conn, ids)
        held = await reservations.reservations_of_instances(conn, ids)
        return [ProductInstanceView(p, usage.get(p.id, {}), held.get(p.id)) for p in instances]

    async def list_instances(
        self, principal: Principal, account: str, va: str, query: ProductInstanceFilter
    ) -> tuple[int, list[ProductInstanceView]]:
        """The virtual account's products that match: the total and the requested page."""
        status = parse_status(query.status)
        async with self._db.connection() as conn:
            acc = await scope.readable_account(conn, principal, account)
            vacc = await scope.virtual_account(conn, acc, va)
            total, instances = await product_instances.list_instances(
                conn,
                vacc.id,
                status=status,
                udi_pid=query.udi_pid,
                udi_serial=query.udi_serial,
                hostname=query.hostname,
                product_type=query.product_type,
                limit=query.limit,
                offset=query.offset,
            )
            return total, await self._views(conn, instances)

    async def show(
        self, principal: Principal, account: str, va: str, product_instance_id: str
    ) -> ProductInstanceDetail:
        """One product of the virtual account, whatever its status, with its usage history."""
        async with self._db.connection() as conn:
            acc = await scope.readable_account(conn, principal, account)
            vacc = await scope.virtual_account(conn, acc, va)
            instance = await scope.product_instance(conn, vacc, product_instance_id)
            [view] = await self._views(conn, [instance])
            history = await product_instances.usage_history(conn, instance.id, HISTORY_LENGTH)
        return ProductInstanceDetail(view, history)

    async def _resolve(
        self, conn: Connection, va: VirtualAccount, refs: list[ProductRef], field: str
    ) -> list[ProductInstance]:
        """The registered products of ``va`` that ``refs`` name, locked, in the order named;
        NotFound naming the first that names none."""
        found = await product_instances.registered_instances_of_virtual_account(
            conn,
            va.id,
            ids=[r.product_id for r in refs if isinstance(r, ById)],
            udis=[(r.udi_pid, r.udi_serial) for r in refs if isinstance(r, ByUdi)],
        )
        by_id = {p.id: p for p in found}
        by_udi = {(p.udi_pid, p.udi_serial): p for p in found}
        result: list[ProductInstance] = []
        for index, ref in enumerate(refs):
            where = f"{field}[{index}]"
            missing = f"{ref.describe()} is not a registered product of virtual account {va.name!r}"
            if isinstance(ref, ById):
                instance = by_id.get(ref.product_id)
                if instance is None:
                    raise NotFound(missing, field=where)
            else:
                instance = by_udi.get((ref.udi_pid, ref.udi_serial))
                if instance is None:
                    raise NotFound(missing, field=f"{where}.sudi")
                if ref.udi_uuid is not None and ref.udi_uuid != instance.udi_uuid:
                    raise NotFound(
                        f"{missing} with UUID {ref.udi_uuid!r}", field=f"{where}.sudi.uuid"
                    )
            if ref.product_type is not None and ref.product_type != instance.product_type:
                raise NotFound(
                    f"{ref.describe()} of virtual account {va.name!r} is a "
                    f"{instance.product_type!r}, not a {ref.product_type!r}",
                    field=f"{where}.productTagName",
                )
            if any(p.id == instance.id for p in result):
                raise InvalidInput(f"{ref.describe()} is named twice", field=where)
            result.append(instance)
        return result

    async def _target(
        self, conn: Connection, account: Account, source: VirtualAccount, name: str, field: str
    ) -> VirtualAccount:
        va = await accounts.get_virtual_account(conn, account.id, name, lock=None)
        if va is None:
            raise NotFound(
                f"virtual account {name!r} not found in account {account.name!r}", field=field
            )
        if va.id == source.id:
            raise InvalidInput(
                f"the product is in virtual account {name!r} already; name another one",
                field=field,
            )
        return va

    async def transfer(
        self,
        principal: Principal,
        account: str,
        va: str,
        moves: list[Transfer],
        *,
        field: str = "productInstances",
    ) -> list[ProductInstanceView]:
        """Move each named registered product of ``va`` to its target virtual account of the
        same account, with its usage; all of them or, if one cannot move, none."""
        if not moves:
            raise InvalidInput("name at least one product to transfer", field=field)
        now = utc_now()
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account)
            source = await scope.virtual_account(conn, acc, va)
            targets: dict[str, VirtualAccount] = {}
            for index, move in enumerate(moves):
                if move.target not in targets:
                    targets[move.target] = await self._target(
                        conn, acc, source, move.target, f"{field}[{index}].targetVirtualAccount"
                    )
            # Kept from deletion until the commit, locked in the order of their ids as a
            # license transfer locks them (services/transfers.py): a device transfer and a
            # license transfer crossing between two virtual accounts cannot deadlock. The
            # virtual accounts before the products, as everywhere.
            named = {v.id for v in (source, *targets.values())}
            if await accounts.share_lock_virtual_accounts(conn, sorted(named)) != named:
                raise NotFound(
                    "a virtual account of the transfer was deleted meanwhile: retry",
                    field=field,
                )
            instances = await self._resolve(conn, source, [m.product for m in moves], field)
            held = await reservations.reservations_of_instances(conn, [p.id for p in instances])
            keys = await export_keys.live_keys_of_instances(conn, [p.id for p in instances])
            for index, instance in enumerate(instances):
                if instance.id in held and held[instance.id].status == "active":
                    raise Conflict(
                        f"{udi_label(instance)} holds a specific license reservation out of this "
                        "virtual account's pool: return it before moving the product",
                        field=f"{field}[{index}]",
                    )
                if instance.id in keys:
                    raise Conflict(
                        f"{udi_label(instance)} holds export keys out of this virtual "
                        f"account's pool ({', '.join(k.feature for k in keys[instance.id])}): "
                        "the product returns them before it moves",
                        field=f"{field}[{index}]",
                    )
            for instance, move in zip(instances, moves, strict=True):
                target = targets[move.target]
                await product_instances.move_instances(conn, [instance.id], target.id, now)
                await audit.record(
                    conn,
                    principal,
                    "product.transferred",
                    f"{account}/{target.name}/{instance.id}",
                    account_id=acc.id,
                    udi=udi_label(instance),
                    from_virtual_account=source.name,
                    to_virtual_account=target.name,
                )
            # Usage left one pool and joined others: their shortage alerts follow at once,
            # in the order of the ids as the locks (two crossing transfers both hold their
            # share locks, and took each other's alert rows in opposite orders).
            involved = {v.id: v for v in (source, *targets.values())}
            for va_id in sorted(involved):
                vacc = involved[va_id]
                await self._licenses.refresh_alerts(conn, acc.id, vacc.id, vacc.name, now)
            moved = [await product_instances.get_instance(conn, p.id) for p in instances]
            return await self._views(conn, [p for p in moved if p is not None])

    async def remove(
        self,
        principal: Principal,
        account: str,
        va: str,
        refs: list[ProductRef],
        *,
        field: str = "productInstancesRemoveRequests",
    ) -> list[ProductInstanceView]:
        """End each named registered product of ``va``: its usage is released at once and
        its next device request is refused. All of them or, if one is unknown, none."""
        if not refs:
            raise InvalidInput("name at least one product to remove", field=field)
        now = utc_now()
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account)
            vacc = await scope.virtual_account(conn, acc, va, lock="share")
            instances = await self._resolve(conn, vacc, refs, field)
            released = await product_instances.usage_of_instances(conn, [p.id for p in instances])
            held = await reservations.reservations_of_instances(conn, [p.id for p in instances])
            for index, (instance, ref) in enumerate(zip(instances, refs, strict=True)):
                return_code = ref.return_code
                where = f"{field}[{index}].returnCode"
                if return_code is not None:
                    reservation, code = await self._reservations.verified_return_code(
                        conn, instance, return_code, where
                    )
                    await self._reservations.end_with_return_code(
                        conn,
                        principal,
                        acc.id,
                        f"{account}/{va}",
                        instance,
                        reservation,
                        code,
                        now,
                        where,
                    )
                    continue
                if instance.id in held and held[instance.id].status == "active":
                    raise Conflict(
                        f"{udi_label(instance)} holds a specific license reservation: send the "
                        "product's returnCode, or force-remove it with a reason",
                        field=where,
                    )
                await exports.release(conn, principal, instance, "removed", now)
                await product_instances.end_instance(conn, instance.id, "removed", now)
                await audit.record(
                    conn,
                    principal,
                    "product.removed",
                    f"{account}/{va}/{instance.id}",
                    account_id=acc.id,
                    udi=udi_label(instance),
                    released_usage=released.get(instance.id, {}),
                )
            # Released usage and returned reservations may end a shortage (or its alert).
            await self._licenses.refresh_alerts(conn, acc.id, vacc.id, vacc.name, now)
            ended = [await product_instances.get_instance(conn, p.id) for p in instances]
            return await self._views(conn, [p for p in ended if p is not None])
