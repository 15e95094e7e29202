"""What the upstream knows of its satellites: the live and revoked ones, each one's
products and usage as its last sync left them; and revoking one."""

from __future__ import annotations

from satellite.domain.access import Principal
from satellite.domain.sync import MirroredProduct, MirroredUsage, RegisteredSatellite
from satellite.errors import NotFound
from satellite.services import audit, scope
from satellite.storage import upstream
from sync.upstream.base import UpstreamBase


class Satellites(UpstreamBase):
    async def satellites(self, principal: Principal, account: str) -> list[RegisteredSatellite]:
        async with self._db.connection() as conn:
            acc = await scope.readable_account(conn, principal, account)
            return await upstream.satellites_of_account(conn, acc.id)

    async def mirror(
        self, principal: Principal, account: str, satellite_id: str, limit: int, offset: int
    ) -> tuple[RegisteredSatellite, list[MirroredProduct], list[MirroredUsage]]:
        """A satellite's products (a page) and usage, as its last sync left them."""
        async with self._db.connection() as conn:
            acc = await scope.readable_account(conn, principal, account)
            sat = await upstream.get_satellite(conn, satellite_id, lock=None)
            if sat is None or sat.account_id != acc.id:
                raise NotFound(f"satellite {satellite_id} not found", field="satelliteId")
            products = await upstream.mirrored_products(conn, sat.id, limit, offset)
            usage = await upstream.mirrored_usage(conn, sat.id)
        return sat, products, usage

    async def revoke_satellite(self, principal: Principal, account: str, satellite_id: str) -> None:
        """No more syncs from this satellite (its key leaked, it was retired); what it
        reported leaves this upstream's view and counts."""
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account, lock="update")
            self._require_upstream()
            if not await upstream.revoke_satellite(conn, acc.id, satellite_id, self._clock()):
                raise NotFound(f"no live satellite {satellite_id}", field="satelliteId")
            await audit.record(
                conn,
                principal,
                "satellite.revoked",
                f"{acc.name}/satellites/{satellite_id}",
                account_id=acc.id,
            )
