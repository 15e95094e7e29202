"""What specific license reservations (SLR) an admin reads: a virtual account's
reservations, and a reservation's latest authorization code. (The changes are
``satellite.services.reservations``, whose service has these reads too.)"""

from __future__ import annotations

from satellite.domain.access import Principal
from satellite.domain.models import ProductInstance
from satellite.domain.paging import sql_limit
from satellite.domain.reservation import Reservation
from satellite.errors import InvalidInput, NotFound
from satellite.services import scope
from satellite.storage import product_instances, reservations
from satellite.storage.db import Database

# Which reservations a list holds: the active ones (awaiting confirmation, reserved, in
# transition), or every one, with those returned or removed.
LIST_STATUSES = ("active", "all")


class ReservationReads:
    _db: Database

    async def list_reservations(
        self,
        principal: Principal,
        account: str,
        va: str,
        *,
        status: str,
        limit: int,
        offset: int,
    ) -> tuple[int, list[tuple[ProductInstance, Reservation]]]:
        """The virtual account's reservations with their products, newest first: the total
        and one page."""
        wanted = status.strip().lower()
        if wanted not in LIST_STATUSES:
            raise InvalidInput(f"status {status!r} is not active or all", field="status")
        async with self._db.connection() as conn:
            acc = await scope.readable_account(conn, principal, account)
            vacc = await scope.virtual_account(conn, acc, va)
            total, found = await reservations.reservations_of_virtual_account(
                conn,
                vacc.id,
                active_only=wanted == "active",
                limit=sql_limit(limit),
                offset=offset,
            )
            instances = await product_instances.get_instances(
                conn, [reservation.product_id for reservation in found]
            )
        # (A product missing is one forgotten since, its reservation with it.)
        listed = [(instances[r.product_id], r) for r in found if r.product_id in instances]
        return total, listed

    async def authorization_code(
        self, principal: Principal, account: str, va: str, product_instance_id: str
    ) -> tuple[ProductInstance, str]:
        """The latest authorization code of a reservation (the pending one if any)."""
        async with self._db.connection() as conn:
            acc = await scope.readable_account(conn, principal, account)
            vacc = await scope.virtual_account(conn, acc, va)
            instance = await product_instances.get_instance(conn, product_instance_id)
            reservation = await reservations.get_reservation(conn, product_instance_id)
            if (
                instance is None
                or instance.virtual_account_id != vacc.id
                or reservation is None
                or reservation.status != "active"
                or reservation.latest_code is None
            ):
                raise NotFound(
                    f"product instance {product_instance_id!r} holds no reservation in virtual "
                    f"account {va!r}",
                    field="productInstanceId",
                )
            return instance, reservation.latest_code
