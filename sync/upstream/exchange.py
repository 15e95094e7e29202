"""Answering a satellite's sync request: verified with the key of the satellite it names
before anything in it is read, applied (the satellite's products and usage mirrored here)
and answered (this upstream's pools and flags for the account) in one transaction. The
answer to the last request is kept: the same request sent again (an answer lost on the
way) gets the same answer and changes nothing; an older request is refused as stale."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

from satellite.domain.access import Principal
from satellite.domain.sync import RegisteredSatellite
from satellite.errors import Conflict
from satellite.services import audit
from satellite.storage import accounts, licenses, product_instances, upstream
from satellite.storage.db import Connection
from sync import bundle
from sync.bundle import (
    BundleError,
    DepartureRecord,
    LicenseRecord,
    ProductRecord,
    SyncAnswer,
    SyncRequest,
    UsageRecord,
    VirtualAccountRecord,
)
from sync.upstream.base import Answered, UpstreamBase, refuse_revoked, satellite_actor

MAX_NEW_VIRTUAL_ACCOUNTS = 100  # a request creates at most this many here


class Exchange(UpstreamBase):
    async def _exchange(
        self, path: Path, header: SyncRequest, principal: Principal | None
    ) -> tuple[Answered, bytes]:
        known = await self._sender(header.satellite_id, principal)
        verified = await self._verify(path, known.public_key)
        header = bundle.signed_header(verified, header)
        now = self._clock()
        async with self._db.transaction() as conn:
            # The account first: two satellites of one account share its usage totals.
            await accounts.get_account(conn, known.account, lock="update")
            sat = await upstream.get_satellite(conn, known.id, lock="update")
            assert sat is not None
            refuse_revoked(sat)  # (revoked meanwhile)
            if header.sequence == sat.last_sequence and verified.digest == sat.last_digest:
                assert sat.last_answer is not None
                answered = Answered("sync", sat.id, sat.account, header.sequence, True, {})
                return answered, sat.last_answer
            if header.sequence <= sat.last_sequence:
                raise Conflict(
                    f"stale request: this is request {header.sequence} of satellite {sat.id}, "
                    f"and request {sat.last_sequence} was answered already (a replayed or old "
                    "file): export a new request at the satellite and answer that one"
                )
            counts = await self._apply(conn, sat, verified)
            answer, records = await self._answer_for(conn, sat, header, verified, now)
            data = self._signed(answer, records)
            await upstream.record_answer(conn, sat.id, header.sequence, verified.digest, data, now)
            counts["licenses"] = sum(isinstance(r, LicenseRecord) for r in records)
            await audit.record(
                conn,
                principal or satellite_actor(sat.id),
                "satellite.synced",
                f"{sat.account}/satellites/{sat.id}",
                account_id=sat.account_id,
                sequence=header.sequence,
                **counts,
            )
        return Answered("sync", sat.id, sat.account, header.sequence, False, counts), data

    async def _apply(
        self, conn: Connection, sat: RegisteredSatellite, verified: bundle.VerifiedBundle
    ) -> dict[str, int]:
        """The satellite's products and usage become what the request says; what left it
        leaves the mirror (and a virtual account it deleted goes, when nothing else holds
        anything in it here)."""
        # Keyed by the name in lower case: virtual account names are one ignoring case.
        vas: dict[str, int] = {
            v.name.lower(): v.id for v in await accounts.list_virtual_accounts(conn, sat.account_id)
        }
        named: set[str] = set()
        created = 0

        async def va_id(name: str, description: str = "") -> int:
            nonlocal created
            key = name.lower()
            named.add(key)
            if key not in vas:
                if created == MAX_NEW_VIRTUAL_ACCOUNTS:
                    raise BundleError(
                        f"the request creates more than {MAX_NEW_VIRTUAL_ACCOUNTS} virtual "
                        "accounts at once"
                    )
                made = await accounts.insert_virtual_account(
                    conn, sat.account_id, name, description, False
                )
                vas[key] = made.id
                created += 1
            return vas[key]

        await upstream.start_product_batch(conn)
        usage: dict[tuple[int, str], upstream.UsageRow] = {}
        departed_products: list[str] = []
        departed_vas: list[str] = []
        for batch in bundle.records(verified):
            rows: list[upstream.ProductRow] = []
            for record in batch:
                if isinstance(record, VirtualAccountRecord):
                    await va_id(record.name, record.description)
                elif isinstance(record, UsageRecord):
                    key = (await va_id(record.virtual_account), record.tag_)
                    if key in usage:
                        raise BundleError(
                            f"the request reports tag {record.tag_} of virtual account "
                            f"{record.virtual_account!r} twice"
                        )
                    usage[key] = (*key, record.in_use, record.reserved, record.exported)
                elif isinstance(record, ProductRecord):
                    rows.append(_product_row(record, await va_id(record.virtual_account)))
                elif isinstance(record, DepartureRecord):
                    if record.what == "product":
                        departed_products.append(_product_id(record.key))
                    else:
                        departed_vas.append(record.key)
                else:
                    raise BundleError("a sync request carries no license lines")
            if rows:
                await upstream.stage_products(conn, rows)
        # Departures first: a product that left and came back is in the staged products.
        left = await upstream.forget_mirrored(conn, sat.id, departed_products)
        merged = await upstream.merge_products(conn, sat.id)
        await upstream.replace_usage(conn, sat.id, list(usage.values()))
        gone = 0
        for departed in departed_vas:
            va_key = departed.lower()
            if va_key in named or va_key not in vas:
                continue  # named again by the request, or gone here already
            if await accounts.virtual_account_holdings(conn, vas[va_key]) == (0, 0, 0):
                await product_instances.forget_ended_instances(conn, vas[va_key])
                await accounts.delete_virtual_account(conn, vas[va_key])
                gone += 1
            # (else it stays: it holds licenses, tokens or products here, and the answer
            # brings it back to the satellite with them)
        return {
            "products": merged,
            "productsLeft": left,
            "usageRows": len(usage),
            "virtualAccountsCreated": created,
            "virtualAccountsDeleted": gone,
        }

    async def _answer_for(
        self,
        conn: Connection,
        sat: RegisteredSatellite,
        header: SyncRequest,
        verified: bundle.VerifiedBundle,
        now: dt.datetime,
    ) -> tuple[SyncAnswer, list[bundle.Record]]:
        acc = await accounts.get_account(conn, sat.account, lock=None)
        assert acc is not None
        records: list[bundle.Record] = [
            VirtualAccountRecord(name=va.name, description=va.description)
            for va in await accounts.list_virtual_accounts(conn, acc.id)
        ]
        for line in await licenses.lines_of_account(conn, acc.id, None):
            records.append(
                LicenseRecord(
                    id=line.id,
                    virtual_account=line.virtual_account,
                    tag_=line.tag,
                    quantity=line.quantity,
                    license_type=line.license_type,
                    start_date=line.start_date,
                    end_date=line.end_date,
                    subscription_id=line.subscription_id,
                    export_restricted=line.export_restricted,
                )
            )
        answer = SyncAnswer(
            satellite_id=sat.id,
            sequence=header.sequence,
            request_digest=verified.digest_hex,
            upstream_account=acc.name,
            export_controlled_allowed=acc.export_controlled_allowed,
            created_at=now,
        )
        return answer, records


def _product_id(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError as exc:
        raise BundleError(f"product id {text!r} is not a UUID") from exc


def _product_row(record: ProductRecord, va_id: int) -> upstream.ProductRow:
    product_id = uuid.UUID(_product_id(record.id))
    reservation = None
    if record.reservation is not None:
        reservation = {
            "status": record.reservation,
            "reserved": [
                {
                    "tag": r.tag,
                    "quantity": r.quantity,
                    "licenseType": r.license_type,
                    "endDate": r.end_date.isoformat() if r.end_date else None,
                    "stage": r.stage,
                }
                for r in record.reserved
            ],
        }
    return (
        product_id,
        va_id,
        record.pid,
        record.serial_number,
        record.uuid,
        record.product_type,
        record.product_version,
        record.hostname,
        record.ip_address,
        record.export_controlled,
        record.status,
        record.registered_at,
        record.ended_at,
        record.export_keys,
        reservation,
    )
