"""Sync answers: the upstream's answer is verified with the upstream key pinned at
registration before anything in it is read, must answer a sync request this satellite
wrote (the request's digest is in it), and is applied in one transaction: the upstream's
pool lines, account flags, and the acknowledgement. The same answer imported twice
changes nothing; an older one is stale."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

from satellite.crypto import bundles
from satellite.domain.access import Principal, system_actor
from satellite.domain.clock import utc_now
from satellite.domain.compliance import LineValues
from satellite.domain.sync import SyncLink, SyncMode, SyncOperation
from satellite.errors import Conflict, NotFound, SatelliteError
from satellite.services import audit, scope
from satellite.storage import accounts, alerts
from satellite.storage import sync as storage
from satellite.storage.db import Connection
from sync import bundle
from sync.bundle import (
    BundleError,
    LicenseRecord,
    RegistrationAnswer,
    SyncAnswer,
    VirtualAccountRecord,
)
from sync.satellite.base import FAILED_ALERT, Imported, SatelliteBase, log
from sync.spool import Incoming

EXPORT_WITHDRAWN_ALERT = "sync-export-withdrawn"  # export control: the upstream withdrew it


class SyncAnswers(SatelliteBase):
    async def import_answer(
        self, principal: Principal, path: Path, account: str | None = None
    ) -> Imported:
        """Disconnected mode, last step: apply the upstream's answer (for ``account``, when
        the caller names it: the admin API does, the host CLI need not)."""
        expected = None
        if account is not None:
            async with self._db.connection() as conn:
                _, expected = await self._link(conn, principal, account)
        self._require_satellite()
        return await self._import(principal, path, "disconnected", "import", expected)

    async def import_stream(
        self, principal: Principal, account: str, chunks: AsyncIterator[bytes]
    ) -> Imported:
        """``import_answer`` of an answer arriving over HTTP: the account and the answer's
        header are checked before the rest of it is taken in."""
        async with self._db.connection() as conn:
            _, link = await self._link(conn, principal, account)
        incoming = Incoming(chunks)
        header = await incoming.header()
        if not isinstance(header, SyncAnswer) or header.satellite_id != link.satellite_id:
            raise BundleError(
                f"this is not an answer for account {link.account!r} of this satellite: "
                "import the answer to a request exported here"
            )
        with self.spool.files("answer") as (path,):
            await incoming.save(path, self._settings.sync.max_bundle_bytes)
            return await self._import(principal, path, "disconnected", "import", link)

    async def _import(
        self,
        principal: Principal,
        path: Path,
        mode: SyncMode,
        operation: SyncOperation,
        expected: SyncLink | None,
    ) -> Imported:
        started = utc_now()
        try:
            header, link = await self._answered_link(principal, path, expected)
        except SatelliteError as exc:
            if expected is not None:  # (connected mode: the answer came for this link)
                await self._record_failure(expected, mode, operation, started, exc)
            raise
        try:
            imported = await self._apply(link, header, path, mode, operation, started)
        except SatelliteError as exc:
            await self._record_failure(link, mode, operation, started, exc)
            raise
        log.info(
            "sync.imported",
            account=link.account,
            sequence=imported.sequence,
            repeated=imported.repeated,
            **imported.counts,
        )
        return imported

    async def _answered_link(
        self, principal: Principal, path: Path, expected: SyncLink | None
    ) -> tuple[SyncAnswer, SyncLink]:
        """The answer's header (not yet verified) and the link it names, which must be
        ``expected`` when given and one the caller may change."""
        header = bundle.read_header(path)
        if isinstance(header, RegistrationAnswer):
            raise BundleError(
                "this file answers a registration request: complete the registration with "
                "'satellite sync register --answer FILE'"
            )
        if not isinstance(header, SyncAnswer):
            raise BundleError(
                "this file is a request, not an upstream's answer: carry it to the upstream "
                "('satellite sync answer' there)"
            )
        async with self._db.connection() as conn:
            link = await storage.link_of_satellite(conn, header.satellite_id, lock=None)
            if link is None or (expected is not None and link.account_id != expected.account_id):
                raise BundleError(
                    f"this answer is for satellite {header.satellite_id} (account "
                    f"{header.upstream_account!r} at the upstream), not for this satellite: "
                    "import the answer to a request exported here"
                )
            await scope.writable_account(conn, principal, link.account, lock=None)
        return header, link

    async def _apply(
        self,
        link: SyncLink,
        seen: SyncAnswer,
        path: Path,
        mode: SyncMode,
        operation: SyncOperation,
        started: dt.datetime,
    ) -> Imported:
        try:
            key = bundles.public_key_from_pem(link.upstream_key)
        except ValueError as exc:  # pinned at registration; cannot happen unless edited
            raise BundleError(f"the pinned upstream key is not usable: {exc}") from exc
        verified = await asyncio.to_thread(
            bundle.verify, path, key, self._settings.sync.max_bundle_bytes
        )
        header = bundle.signed_header(verified, seen)
        now = utc_now()
        async with self._db.transaction() as conn:
            link = await self._locked_link(conn, link.account_id)
            if header.sequence == link.applied_sequence and verified.digest == link.applied_digest:
                return Imported(link.account, header.sequence, True)
            if header.sequence <= link.applied_sequence:
                raise Conflict(
                    f"stale answer: it answers request {header.sequence}, and the answer to "
                    f"request {link.applied_sequence} was imported already (an old or replayed "
                    "file): export a new request and import its answer"
                )
            request = await storage.written_sync_request(conn, link.account_id, header.sequence)
            if request is None or request.digest.hex() != header.request_digest:
                raise Conflict(
                    f"this answer is for a request {header.sequence} that this satellite did "
                    f"not export (its last request is {link.request_sequence}): answer the "
                    "latest request exported here"
                )
            counts = await self._apply_pools(conn, link, verified, header)
            await storage.record_applied(
                conn, link.account_id, header.sequence, verified.digest, request.through_xid, now
            )
            await self._history(conn, link, mode, operation, started, header.sequence, counts)
            await alerts.clear_alerts_except(conn, link.account_id, FAILED_ALERT, [])
            await audit.record(
                conn,
                system_actor("sync"),
                "sync.applied",
                f"{link.account}/sync",
                account_id=link.account_id,
                sequence=header.sequence,
                mode=mode,
                **counts,
            )
        return Imported(link.account, header.sequence, False, counts)

    @staticmethod
    async def _locked_link(conn: Connection, account_id: int) -> SyncLink:
        link = await storage.get_link(conn, account_id, lock="update")
        if link is None:
            raise NotFound("the account is no longer registered with an upstream")
        return link

    async def _apply_pools(
        self,
        conn: Connection,
        link: SyncLink,
        verified: bundle.VerifiedBundle,
        header: SyncAnswer,
    ) -> dict[str, int]:
        """The upstream's lines replace the lines that came from it; local lines stay."""
        wanted: dict[str, dict[int, LineValues]] = {}
        descriptions: dict[str, str] = {}
        for batch in bundle.records(verified):
            for record in batch:
                if isinstance(record, VirtualAccountRecord):
                    descriptions[record.name] = record.description
                    wanted.setdefault(record.name, {})
                elif isinstance(record, LicenseRecord):
                    wanted.setdefault(record.virtual_account, {})[record.id] = LineValues(
                        tag=record.tag_,
                        quantity=record.quantity,
                        license_type=record.license_type,
                        start_date=record.start_date,
                        end_date=record.end_date,
                        subscription_id=record.subscription_id,
                        export_restricted=record.export_restricted,
                    )
                else:
                    raise BundleError("an answer carries only virtual accounts and licenses")
        counts = {"added": 0, "changed": 0, "removed": 0, "virtualAccountsCreated": 0}
        if await storage.set_export_controlled_allowed(
            conn, link.account_id, header.export_controlled_allowed
        ):
            counts["flagsChanged"] = 1
            if not header.export_controlled_allowed:
                await self._export_withdrawn(conn, link)
        # Keyed by the name in lower case: virtual account names are one ignoring case.
        existing = {
            v.name.lower(): v for v in await accounts.list_virtual_accounts(conn, link.account_id)
        }
        wanted_by_key = {name.lower(): lines for name, lines in wanted.items()}
        for name in sorted(wanted):
            if name.lower() not in existing:
                existing[name.lower()] = await accounts.insert_virtual_account(
                    conn, link.account_id, name, descriptions.get(name, ""), False
                )
                counts["virtualAccountsCreated"] += 1
        # In the order of their ids, as a license transfer and the pool alerts job go
        # through virtual accounts: taking the alert rows of two virtual accounts in the
        # opposite order of a transfer between them deadlocked the two.
        for key, va in sorted(existing.items(), key=lambda item: item[1].id):
            lines = wanted_by_key.get(key, {})
            have = await storage.upstream_lines(conn, va.id)
            put = [(i, values) for i, values in sorted(lines.items()) if have.get(i) != values]
            if put:
                await storage.put_upstream_lines(conn, va.id, put)
                added = sum(i not in have for i, _ in put)
                counts["added"] += added
                counts["changed"] += len(put) - added
            changed = bool(put)
            gone = sorted(set(have) - set(lines))
            if gone:
                await storage.delete_upstream_lines(conn, va.id, gone)
                counts["removed"] += len(gone)
                changed = True
            if changed:
                await self._licenses.refresh_alerts(conn, link.account_id, va.id, va.name)
        return counts

    @staticmethod
    async def _export_withdrawn(conn: Connection, link: SyncLink) -> None:
        """The upstream decides the account's flag; what the account still holds of
        export-controlled functionality is for its admins to wind down: say so."""
        tokens, lines, keys = await accounts.export_controlled_holdings(conn, link.account_id)
        if tokens or lines or keys:
            await alerts.raise_alert(
                conn,
                account_id=link.account_id,
                virtual_account_id=None,
                dedupe_key=EXPORT_WITHDRAWN_ALERT,
                message_type="ExportControlWithdrawn",
                severity="Major",
                source="sync",
                message=(
                    "the upstream no longer allows this account export-controlled "
                    f"functionality; it still has {keys} export key(s) granted, {tokens} "
                    f"export-controlled token(s) and {lines} export-restricted line(s): "
                    "have the products return their keys, and revoke the tokens"
                ),
                details={"export_keys": keys, "tokens": tokens, "lines": lines},
            )
