"""What a reservation must pass before anything is reserved or released: the licenses it
names, what is free in the pool (and which lines take it), whether the product and its
request code are unused, and the product's codes verified with its key. Called by the
reservation service inside its transactions, with the virtual account locked."""

from __future__ import annotations

import datetime as dt

from satellite.domain.compliance import Position
from satellite.domain.models import Account, ProductInstance, VirtualAccount
from satellite.domain.reservation import LicenseRequest, Reservation, ReservedLine, allocate
from satellite.errors import Conflict, ExportAccountNotAllowed, InvalidInput, NotFound
from satellite.services import scope
from satellite.services.licenses import LicenseService
from satellite.storage import licenses, product_instances, reservations
from satellite.storage.db import Connection
from satellite_protocol.catalog import Catalog
from satellite_protocol.crypto.slr import CodeError, ProductCode, decode_product_code


async def locked_virtual_account(conn: Connection, account: Account, name: str) -> VirtualAccount:
    """The virtual account, locked for changes to its reservations until the transaction
    ends (not share-locked first: two transactions upgrading it would deadlock)."""
    va = await scope.virtual_account(conn, account, name)
    if not await reservations.lock_virtual_account(conn, va.id):
        raise NotFound(
            f"virtual account {name!r} not found in account {account.name!r}",
            field="virtualAccount",
        )
    return va


def check_export_allowed(
    catalog: Catalog, account: Account, wanted: list[LicenseRequest], field: str
) -> None:
    """An export authorization-key license reserved enables an export-controlled feature
    on the product: only for accounts allowed such features."""
    if account.export_controlled_allowed:
        return
    for index, item in enumerate(wanted):
        entry = catalog.get(item.tag)
        if entry is not None and entry.export_restricted:
            raise ExportAccountNotAllowed(
                f"account {account.name!r} is not allowed export-controlled functionality: "
                f"it cannot reserve {entry.display_name}",
                field=f"{field}[{index}].entitlementTag",
            )


def check_licenses(catalog: Catalog, wanted: list[LicenseRequest], field: str) -> None:
    if not wanted:
        raise InvalidInput("name at least one license to reserve", field=field)
    seen: set[str] = set()
    for index, item in enumerate(wanted):
        where = f"{field}[{index}].entitlementTag"
        if item.tag not in catalog:
            raise InvalidInput(f"tag {item.tag!r} is not in the license catalog", field=where)
        if item.tag in seen:
            raise InvalidInput(f"tag {item.tag!r} is named twice", field=where)
        seen.add(item.tag)


async def plan(
    conn: Connection,
    licenses_service: LicenseService,
    catalog: Catalog,
    va: VirtualAccount,
    wanted: list[LicenseRequest],
    updated: Reservation | None,
    field: str,
    now: dt.datetime,
) -> list[ReservedLine]:
    """The pool lines that ``wanted`` takes; Conflict naming the first license that is
    not free. ``updated``: the settled reservation being updated (its licenses stay on
    their lines up to the new counts; only an increase takes more, and is checked)."""
    today = now.date()
    product_instance_id = updated.product_id if updated else None
    current = updated.confirmed(today) if updated else {}
    kept: dict[int, int] = {}
    for line in updated.current if updated else ():
        if line.counts_on(today):
            kept[line.line_id] = kept.get(line.line_id, 0) + line.quantity
    positions: dict[str, Position] = {
        p.tag: p
        for p in await licenses_service.virtual_account_positions(conn, va.id, va.name, now)
    }
    lines = await licenses.lines_of_virtual_account(conn, va.id)
    held_on_lines: dict[int, int] = {}
    for other in await reservations.active_reservations_of_virtual_account(conn, va.id):
        if other.product_id == product_instance_id:
            continue
        for line_id, quantity in other.held_on_lines().items():
            held_on_lines[line_id] = held_on_lines.get(line_id, 0) + quantity
    taken: list[ReservedLine] = []
    for index, item in enumerate(wanted):
        position = positions.get(item.tag)
        free = position.free if position else 0
        more = item.quantity - current.get(item.tag, 0)
        if more > free:
            raise Conflict(
                f"{catalog.display_name(item.tag)}: {item.quantity} asked, "
                f"{free + current.get(item.tag, 0)} free to reserve in virtual account "
                f"{va.name!r} (reservations never borrow from a higher tier "
                "or a version-independent license)",
                field=f"{field}[{index}].quantity",
            )
        lines_taken = allocate(
            item.tag, item.quantity, lines, held_on_lines, today, item.precedence, kept
        )
        if lines_taken is None:
            raise Conflict(
                f"{catalog.display_name(item.tag)}: the active pool lines cannot "
                f"hold {item.quantity} more reserved licenses",
                field=f"{field}[{index}].quantity",
            )
        taken.extend(lines_taken)
    return taken


async def check_unused(
    conn: Connection, account: Account, nonce: str, udi_pid: str, udi_serial: str, where: str
) -> None:
    """Conflict when the request code was used already or the UDI is live; a virtual
    account is named only when it is one of ``account``'s (nothing of other accounts
    shows through)."""
    field = f"{where}.reservationCode"
    used = await product_instances.get_instance(conn, nonce)
    if used is not None:
        if used.account_id == account.id:
            raise Conflict(
                f"this request code was used already (in virtual account "
                f"{used.virtual_account!r}): request a new one on the product",
                field=field,
            )
        raise Conflict(
            "this request code cannot be used: request a new one on the product",
            field=field,
        )
    live = await product_instances.live_instance_by_udi(conn, udi_pid, udi_serial)
    if live is not None:
        where_live = (
            f" (in virtual account {live.virtual_account!r})"
            if live.account_id == account.id
            else ""
        )
        raise Conflict(
            f"product PID:{udi_pid} SN:{udi_serial} is registered already{where_live}: "
            "return or remove it first",
            field=field,
        )


async def reserved_instance(
    conn: Connection, va: VirtualAccount, product_instance_id: str, field: str
) -> tuple[ProductInstance, Reservation]:
    """The live reserved product of ``va``, locked."""
    instance = await product_instances.get_instance(conn, product_instance_id, for_update=True)
    reservation = await reservations.get_reservation(conn, product_instance_id, for_update=True)
    if (
        instance is None
        or instance.virtual_account_id != va.id
        or reservation is None
        or reservation.status != "active"
        or instance.status != "registered"
    ):
        raise NotFound(
            f"product instance {product_instance_id!r} holds no reservation in virtual account "
            f"{va.name!r}",
            field=field,
        )
    return instance, reservation


async def product_code(
    conn: Connection,
    va: VirtualAccount,
    kind: str,
    text: str,
    field: str,
) -> tuple[ProductInstance, Reservation, ProductCode]:
    """A confirmation or return code, verified with its product's key before use."""
    try:
        code = decode_product_code("confirmation" if kind == "confirmation" else "return", text)
    except CodeError as exc:
        raise InvalidInput(f"the {kind} code is not valid: {exc}", field=field) from exc
    instance, reservation = await reserved_instance(conn, va, code.piid, field)
    try:
        code.verify(reservation.public_key)
    except CodeError as exc:
        raise InvalidInput(str(exc), field=field) from exc
    return instance, reservation, code
