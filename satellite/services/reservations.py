"""Specific license reservation (SLR), the server's side.

An admin enters a product's request code and the licenses to reserve; the counts leave
the virtual account's pool at once (refused beyond what is free; two reservations racing
for the last licenses are serialized on the virtual account's row, so one of them wins),
and the answer is a signed authorization code for the product. Updating a reservation
issues a new code and keeps the larger of the old and new counts until the product's
confirmation code is entered. A return code, from the product that gave its licenses back
(or never installed its code), releases everything and removes the product instance; a
product that cannot make one (failed, destroyed) may be force-removed with a reason.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import structlog

from satellite.config import TimerSettings
from satellite.crypto.keys import ServerKeys
from satellite.domain.access import Principal
from satellite.domain.clock import utc_now
from satellite.domain.models import ProductInstance, udi_label
from satellite.domain.reservation import LicenseRequest, Reservation, ReservedLine
from satellite.errors import Conflict, InvalidInput
from satellite.services import audit, horizon, scope
from satellite.services import reservation_checks as checks
from satellite.services.licenses import LicenseService
from satellite.services.reservation_reads import ReservationReads
from satellite.storage import product_instances, reservations
from satellite.storage.db import Connection, Database
from satellite_protocol.catalog import Catalog
from satellite_protocol.crypto.slr import (
    AuthorizationCode,
    CodeError,
    Entitlement,
    ProductCode,
    decode_product_code,
    decode_request_code,
    issue_authorization_code,
    public_key_pem,
    udi_text,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ReservationRequest:
    request_code: str
    licenses: list[LicenseRequest]


@dataclass(frozen=True)
class Issued:
    """An authorization code issued for a product's reservation."""

    product: ProductInstance
    reservation: Reservation
    code: AuthorizationCode


@dataclass(frozen=True)
class Ended:
    """A reservation ended: by a return code or by force."""

    product: ProductInstance
    released: dict[str, int]


class ReservationService(ReservationReads):
    def __init__(
        self,
        db: Database,
        keys: ServerKeys,
        catalog: Catalog,
        licenses: LicenseService,
        timers: TimerSettings,
    ) -> None:
        self._db = db
        self._keys = keys
        self._catalog = catalog
        self._licenses = licenses
        self._timers = timers

    def signing_public_key(self) -> str:
        """PEM of the key authorization codes are signed with (what products trust)."""
        return public_key_pem(self._keys.signing_key.public_key())

    def _issue(
        self,
        instance: ProductInstance,
        lines: list[ReservedLine],
        after: int,
        now: dt.datetime,
    ) -> AuthorizationCode:
        """A signed code for ``lines``, its timestamp later than ``after`` (codes of one
        product are ordered: the product refuses an older one)."""
        entitlements = []
        for line in lines:
            entry = self._catalog.get(line.tag)
            entitlements.append(
                Entitlement(
                    tag=line.tag,
                    count=line.quantity,
                    start_date=line.start_date,
                    end_date=line.end_date,
                    license_type=line.license_type,
                    display_name=entry.display_name if entry else line.tag,
                    tag_description=entry.description if entry else line.tag,
                    subscription_id=line.subscription_id or "",
                )
            )
        timestamp = max(int(now.timestamp() * 1000), after + 1)
        return issue_authorization_code(
            self._keys.signing_key,
            instance.id,
            timestamp,
            tuple(entitlements),
            udi_text(instance.udi_pid, instance.udi_serial, instance.udi_uuid),
        )

    async def _issue_pending(
        self,
        conn: Connection,
        instance: ProductInstance,
        lines: list[ReservedLine],
        after: int,
        now: dt.datetime,
    ) -> tuple[AuthorizationCode, Reservation]:
        """A new code for ``lines``, recorded as the product's pending one; the reservation
        as it now stands (in transition until the code is confirmed)."""
        await horizon.require_in_step(
            conn, instance.account_id, now, self._timers.sync_horizon_days
        )
        authorization = self._issue(instance, lines, after, now)
        await reservations.set_pending(
            conn, instance.id, authorization.timestamp, authorization.text, lines, now
        )
        reservation = await reservations.get_reservation(conn, instance.id)
        assert reservation is not None
        return authorization, reservation

    # --- requests --------------------------------------------------------------------------

    async def reserve(
        self,
        principal: Principal,
        account: str,
        va: str,
        requests: list[ReservationRequest],
        *,
        field: str = "reservationRequests",
    ) -> list[Issued]:
        """Reserve licenses for each request code: all of them, or none."""
        if not requests:
            raise InvalidInput("send at least one reservation request", field=field)
        decoded = []
        for index, request in enumerate(requests):
            try:
                decoded.append(decode_request_code(request.request_code))
            except CodeError as exc:
                raise InvalidInput(
                    f"the reservation code is not valid: {exc}",
                    field=f"{field}[{index}].reservationCode",
                ) from exc
            checks.check_licenses(self._catalog, request.licenses, f"{field}[{index}].licenses")
        now = utc_now()
        issued: list[Issued] = []
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account)
            vacc = await checks.locked_virtual_account(conn, acc, va)
            for index, (request, code) in enumerate(zip(requests, decoded, strict=True)):
                where = f"{field}[{index}]"
                checks.check_export_allowed(
                    self._catalog, acc, request.licenses, f"{where}.licenses"
                )
                await checks.check_unused(
                    conn, acc, code.nonce, code.udi_pid, code.udi_serial, where
                )
                lines = await checks.plan(
                    conn,
                    self._licenses,
                    self._catalog,
                    vacc,
                    request.licenses,
                    None,
                    f"{where}.licenses",
                    now,
                )
                await reservations.insert_reserved_instance(
                    conn,
                    conflict=(
                        f"product PID:{code.udi_pid} SN:{code.udi_serial} (or its request code) "
                        "was reserved or registered at the same time: look it up, or request "
                        "a new code on the product",
                        f"{where}.reservationCode",
                    ),
                    product_instance_id=code.nonce,
                    va_id=vacc.id,
                    udi=(code.udi_pid, code.udi_serial, code.udi_uuid),
                    product_type=code.product_type,
                    public_key=code.public_key,
                    request_code=request.request_code.strip(),
                    now=now,
                )
                instance = await product_instances.get_instance(conn, code.nonce)
                assert instance is not None
                authorization, reservation = await self._issue_pending(
                    conn, instance, lines, 0, now
                )
                await audit.record(
                    conn,
                    principal,
                    "reservation.created",
                    f"{account}/{va}/{instance.id}",
                    account_id=acc.id,
                    udi=udi_label(instance),
                    reserved=reservation.held(),
                    authorization_code_timestamp=authorization.timestamp,
                )
                issued.append(Issued(instance, reservation, authorization))
            await self._licenses.refresh_alerts(conn, acc.id, vacc.id, vacc.name, now)
        log.info("reservation.created", account=account, virtual_account=va, count=len(issued))
        return issued

    async def update(
        self,
        principal: Principal,
        account: str,
        va: str,
        product_instance_id: str,
        wanted: list[LicenseRequest],
        *,
        field: str = "licenses",
    ) -> Issued:
        """A new authorization code with ``wanted`` as the product's reserved licenses; the
        reservation is in transition (holding the larger counts) until it is confirmed."""
        checks.check_licenses(self._catalog, wanted, field)
        now = utc_now()
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account)
            vacc = await checks.locked_virtual_account(conn, acc, va)
            checks.check_export_allowed(self._catalog, acc, wanted, field)
            instance, reservation = await checks.reserved_instance(
                conn, vacc, product_instance_id, "productInstanceId"
            )
            if reservation.in_transition:
                raise Conflict(
                    f"the reservation of product instance {product_instance_id} is in transition: "
                    "enter the product's confirmation code for the last authorization code "
                    "first "
                    "(or download that code again)",
                    field="productInstanceId",
                )
            lines = await checks.plan(
                conn, self._licenses, self._catalog, vacc, wanted, reservation, field, now
            )
            authorization, updated = await self._issue_pending(
                conn, instance, lines, reservation.latest_timestamp, now
            )
            await audit.record(
                conn,
                principal,
                "reservation.updated",
                f"{account}/{va}/{instance.id}",
                account_id=acc.id,
                udi=udi_label(instance),
                confirmed=reservation.confirmed(),
                requested=updated.requested(),
                authorization_code_timestamp=authorization.timestamp,
            )
            await self._licenses.refresh_alerts(conn, acc.id, vacc.id, vacc.name, now)
        log.info("reservation.updated", account=account, virtual_account=va, product=instance.id)
        return Issued(instance, updated, authorization)

    async def confirm(
        self, principal: Principal, account: str, va: str, code: str, *, field: str
    ) -> tuple[ProductInstance, Reservation]:
        """The product installed the pending code: the reservation settles on it."""
        now = utc_now()
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account)
            vacc = await checks.locked_virtual_account(conn, acc, va)
            instance, reservation, confirmation = await checks.product_code(
                conn, vacc, "confirmation", code, field
            )
            if confirmation.timestamp == reservation.current_timestamp:
                raise Conflict(
                    "this confirmation code was entered already: the reservation is settled",
                    field=field,
                )
            if confirmation.timestamp != reservation.pending_timestamp:
                raise Conflict(
                    "this confirmation code is for an authorization code that is not the one "
                    "awaiting confirmation (an older one?)",
                    field=field,
                )
            await reservations.settle(conn, instance.id, now)
            settled = await reservations.get_reservation(conn, instance.id)
            assert settled is not None
            await audit.record(
                conn,
                principal,
                "reservation.confirmed",
                f"{account}/{va}/{instance.id}",
                account_id=acc.id,
                udi=udi_label(instance),
                reserved=settled.held(),
                released={
                    tag: n - settled.held().get(tag, 0)
                    for tag, n in reservation.held().items()
                    if n > settled.held().get(tag, 0)
                },
                authorization_code_timestamp=confirmation.timestamp,
            )
            await self._licenses.refresh_alerts(conn, acc.id, vacc.id, vacc.name, now)
        log.info("reservation.confirmed", account=account, virtual_account=va, product=instance.id)
        return instance, settled

    async def _end(
        self,
        conn: Connection,
        principal: Principal,
        account_id: int,
        target: str,
        instance: ProductInstance,
        reservation: Reservation,
        action: str,
        status: str,
        now: dt.datetime,
        **details: object,
    ) -> Ended:
        released = reservation.held()
        await reservations.end_reservation(conn, instance.id, status, now)
        await product_instances.end_instance(conn, instance.id, "removed", now)
        await audit.record(
            conn,
            principal,
            action,
            target,
            account_id=account_id,
            udi=udi_label(instance),
            released=released,
            **details,
        )
        ended = await product_instances.get_instance(conn, instance.id)
        assert ended is not None
        return Ended(ended, released)

    async def return_licenses(
        self, principal: Principal, account: str, va: str, code: str, *, field: str
    ) -> Ended:
        """A return code from the product: its licenses go back, the product is removed."""
        now = utc_now()
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account)
            vacc = await checks.locked_virtual_account(conn, acc, va)
            instance, reservation, returned = await checks.product_code(
                conn, vacc, "return", code, field
            )
            ended = await self.end_with_return_code(
                conn, principal, acc.id, f"{account}/{va}", instance, reservation, returned, now
            )
            await self._licenses.refresh_alerts(conn, acc.id, vacc.id, vacc.name, now)
        log.info("reservation.returned", account=account, virtual_account=va, product=instance.id)
        return ended

    async def end_with_return_code(
        self,
        conn: Connection,
        principal: Principal,
        account_id: int,
        where: str,
        instance: ProductInstance,
        reservation: Reservation,
        returned: ProductCode,
        now: dt.datetime,
        field: str = "returnCode",
    ) -> Ended:
        """Within the caller's transaction: the verified return code ``returned`` ends the
        reservation of ``product`` (locked by the caller)."""
        if not reservation.issued(returned.timestamp):
            raise Conflict(
                "this return code is for an authorization code that was replaced: make one "
                "on the product for its current code",
                field=field,
            )
        return await self._end(
            conn,
            principal,
            account_id,
            f"{where}/{instance.id}",
            instance,
            reservation,
            "reservation.returned",
            "returned",
            now,
            authorization_code_timestamp=returned.timestamp,
        )

    async def verified_return_code(
        self, conn: Connection, instance: ProductInstance, text: str, field: str
    ) -> tuple[Reservation, ProductCode]:
        """For a removal that names ``product`` (locked by the caller) with a return code:
        the product's reservation and the code, verified with the product's key."""
        reservation = await reservations.get_reservation(conn, instance.id, for_update=True)
        if reservation is None or reservation.status != "active":
            raise InvalidInput(
                f"{udi_label(instance)} holds no reservation: it takes no return code", field=field
            )
        try:
            returned = decode_product_code("return", text)
            if returned.piid != instance.id:
                raise CodeError("it was made for another product instance")
            returned.verify(reservation.public_key)
        except CodeError as exc:
            raise InvalidInput(f"the return code is not valid: {exc}", field=field) from exc
        return reservation, returned

    async def force_remove(
        self, principal: Principal, account: str, va: str, product_instance_id: str, reason: str
    ) -> Ended:
        """A reserved product that cannot make a return code (failed, destroyed): its
        licenses go back and it is removed; the reason is kept in the audit log."""
        if not reason.strip():
            raise InvalidInput(
                "say why the product is removed without a return code", field="reason"
            )
        now = utc_now()
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account)
            vacc = await checks.locked_virtual_account(conn, acc, va)
            instance, reservation = await checks.reserved_instance(
                conn, vacc, product_instance_id, "productInstanceId"
            )
            ended = await self._end(
                conn,
                principal,
                acc.id,
                f"{account}/{va}/{instance.id}",
                instance,
                reservation,
                "reservation.force_removed",
                "removed",
                now,
                reason=reason.strip(),
            )
            await self._licenses.refresh_alerts(conn, acc.id, vacc.id, vacc.name, now)
        log.info(
            "reservation.force_removed",
            account=account,
            virtual_account=va,
            product=product_instance_id,
        )
        return ended
