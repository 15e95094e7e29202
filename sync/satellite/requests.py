"""Sync requests: what the satellite tells its upstream, written to a file as one signed
bundle (the account's virtual accounts, its usage per virtual account and tag, what left
it, and every product changed since the upstream acknowledged; sql/008_sync.sql)."""

from __future__ import annotations

from pathlib import Path

from satellite.crypto import bundles
from satellite.crypto.secrets import decrypt
from satellite.domain.access import Principal
from satellite.domain.sync import ChangedProductInstance, SyncLink, WrittenSyncRequest
from satellite.errors import SatelliteError
from satellite.storage import accounts
from satellite.storage import sync as storage
from sync import bundle
from sync.bundle import (
    DepartureRecord,
    ProductRecord,
    ReservedLicense,
    SyncRequest,
    UsageRecord,
    VirtualAccountRecord,
)
from sync.satellite.base import SatelliteBase, key_context, log
from sync.spool import partial_path


class SyncRequests(SatelliteBase):
    async def write_request(
        self, principal: Principal, account: str, out: Path
    ) -> WrittenSyncRequest:
        """Disconnected mode, step one: the sync request, to carry to the upstream."""
        async with self._db.connection() as conn:
            _, link = await self._link(conn, principal, account)
        started = self._clock()
        try:
            request = await self._write_request(link, out)
        except SatelliteError as exc:
            await self._record_failure(link, "disconnected", "export", started, exc)
            raise
        async with self._db.transaction() as conn:
            await self._history(conn, link, "disconnected", "export", started, request.sequence, {})
        return request

    async def _write_request(self, link: SyncLink, out: Path) -> WrittenSyncRequest:
        async with self._db.transaction() as conn:
            sequence, since = await storage.next_request_sequence(conn, link.account_id)
        key = bundles.load_private_key(
            decrypt(self._keys.token_key, link.private_key, key_context(link.account_id)).encode(
                "ascii"
            )
        )
        now = self._clock()
        products = 0
        async with self._db.snapshot() as conn:
            through = await storage.snapshot_watermark(conn)
            header = SyncRequest(
                satellite_id=link.satellite_id,
                sequence=sequence,
                local_account=link.account,
                since=since,
                through=through,
                created_at=now,
            )
            partial = partial_path(out)
            with partial.open("wb") as handle:
                writer = bundle.BundleWriter(handle, header)
                vas = await accounts.list_virtual_accounts(conn, link.account_id)
                for va in vas:
                    writer.write(VirtualAccountRecord(name=va.name, description=va.description))
                for va in vas:
                    # As the licenses view counts them (the upstream's shows the same).
                    positions = await self._licenses.virtual_account_positions(
                        conn, va.id, va.name, now
                    )
                    for p in positions:
                        if p.in_use or p.reserved or p.exported:
                            writer.write(
                                UsageRecord(
                                    virtual_account=va.name,
                                    tag_=p.tag,
                                    in_use=p.in_use,
                                    reserved=p.reserved,
                                    exported=p.exported,
                                )
                            )
                for what, gone in await storage.departures(conn, link.account_id, since):
                    writer.write(DepartureRecord(what=what, key=gone))
                async for product in storage.changed_products(conn, link.account_id, since):
                    writer.write(_product_record(product))
                    products += 1
                digest = writer.finish(key)
            partial.replace(out)  # whole, or not at all
        request = WrittenSyncRequest(sequence=sequence, digest=digest, through_xid=through)
        async with self._db.transaction() as conn:
            await storage.record_request(conn, link.account_id, request, now)
        log.info(
            "sync.request_written",
            account=link.account,
            sequence=sequence,
            products=products,
            since=since,
            through=through,
        )
        return request


def _product_record(product: ChangedProductInstance) -> ProductRecord:
    return ProductRecord(
        id=product.id,
        virtual_account=product.virtual_account,
        pid=product.udi_pid,
        serial_number=product.udi_serial,
        uuid=product.udi_uuid,
        product_type=product.product_type,
        product_version=product.product_version,
        hostname=product.hostname,
        ip_address=product.ip_address,
        export_controlled=product.export_controlled,
        status=product.status,
        registered_at=product.registered_at,
        ended_at=product.ended_at,
        reservation=product.reservation,
        reserved=[
            ReservedLicense(
                tag=r.tag,
                quantity=r.quantity,
                license_type=r.license_type,
                end_date=r.end_date,
                stage=r.stage,
            )
            for r in product.reserved
        ],
        export_keys=product.export_keys,
    )
