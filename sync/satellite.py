"""The satellite's side of sync: registration with an upstream, then requests and answers.

One code path for both modes: a request bundle is exported to a file, and an answer bundle
is imported from a file. Connected mode only adds the transport in between (``sync now``
and the scheduled job); disconnected mode leaves the carrying to an operator.

* A request carries the account's virtual accounts, its usage per virtual account and tag,
  and every product changed since the upstream acknowledged (sql/008_sync.sql).
* An answer is verified with the upstream key pinned at registration before anything in it
  is read, must answer a request this satellite exported (the request's digest is in it),
  and is applied in one transaction: the upstream's pool lines, account flags, and the
  acknowledgement. The same answer imported twice changes nothing; an older one is stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog

from satellite.config import Settings
from satellite.crypto import bundles
from satellite.crypto.keys import ServerKeys
from satellite.crypto.secrets import decrypt, encrypt, secret_digest
from satellite.domain.access import Principal, system_actor
from satellite.domain.compliance import LineValues
from satellite.domain.models import Account, Severity
from satellite.domain.sync import (
    HistoryEntry,
    SyncLink,
    SyncMode,
    WrittenSyncRequest,
    horizon_passed,
)
from satellite.errors import Conflict, InvalidInput, NotFound, SatelliteError
from satellite.protocol import outbound
from satellite.protocol.backoff import Backoff
from satellite.services import audit, scope
from satellite.services.licenses import LicenseService
from satellite.services.maintenance import LOCK_KEYS, JobReport
from satellite.storage import accounts, alerts, locks
from satellite.storage import sync as storage
from satellite.storage.db import Connection, Database
from sync import bundle
from sync.bundle import (
    BundleError,
    DepartureRecord,
    LicenseRecord,
    ProductRecord,
    RegistrationAnswer,
    RegistrationRequest,
    ReservedLicense,
    SyncAnswer,
    SyncRequest,
    UsageRecord,
    VirtualAccountRecord,
)
from sync.spool import Incoming, Spool, partial_path, write_atomically
from sync.transport import (
    EXCHANGE_PATH,
    REGISTER_PATH,
    UpstreamClient,
    UpstreamRefused,
    UpstreamUnreachable,
)

log = structlog.get_logger("sync.satellite")
LOCK_BASE = 0x5A7E_2000_0000  # + account id: one sync of an account at a time, cluster-wide
HISTORY_SHOWN = 20
FAILED_ALERT = "sync-failed"
HORIZON_ALERT = "sync-horizon"
EXPORT_WITHDRAWN_ALERT = "sync-export-withdrawn"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_context(account_id: int) -> bytes:
    return f"sync-key:{account_id}".encode()


def _check_upstream_url(url: str) -> None:
    """An upstream URL that cannot name a server is the caller's input (a label too long
    was a 500 from the resolver, a port beyond 65535 a 502 as if the upstream were down)."""
    refusal = outbound.url_refusal(url)
    if refusal is not None:
        raise InvalidInput(f"the upstream {refusal.removeprefix('the ')}", field="upstream")
    if "@" in urlsplit(url).netloc:
        # The upstream knows a satellite by its signed bundles; a password in the URL would
        # only be stored in the audit log and repeated in error messages.
        raise InvalidInput(
            "the upstream URL must hold no user name or password (a proxy's credentials "
            "go in sync.proxy_username and sync.proxy_password_file)",
            field="upstream",
        )


@dataclass(frozen=True)
class Imported:
    account: str
    sequence: int
    repeated: bool  # the answer was applied before: nothing changed
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SyncStatus:
    account: str
    link: SyncLink | None
    pending_registration: bool
    history: list[HistoryEntry]
    authorizations_until: dt.datetime | None  # the horizon, for a linked account
    horizon_passed: bool
    upstream_fingerprint: str | None  # of the pinned upstream key


class SyncInProgress(Conflict):
    """A sync of this account is running (here or on another node): try again later."""


class SatelliteSync:
    def __init__(
        self,
        db: Database,
        keys: ServerKeys,
        licenses: LicenseService,
        settings: Settings,
        client: UpstreamClient | None = None,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        self._db = db
        self._keys = keys
        self._licenses = licenses
        self._settings = settings
        self._client = client or UpstreamClient(settings.sync)
        self._clock = clock
        self._sleep = asyncio.sleep
        self.spool = Spool(settings)

    def _require_satellite(self) -> None:
        """(Checked after the account: to a caller who may not see it, it does not exist.)"""
        if self._settings.role != "satellite":
            raise Conflict(
                'this server\'s role is "upstream": only a satellite registers and syncs '
                "with an upstream"
            )

    # --- registration ----------------------------------------------------------------------

    async def request_registration(
        self,
        principal: Principal,
        account: str,
        *,
        token: str,
        name: str,
        upstream_url: str | None,
        out: Path,
    ) -> None:
        """Write a registration request for the account to ``out`` (to carry to the
        upstream, or to send it); its key waits here for the answer. Asked again with the
        same token (an answer was lost), it writes the same request."""
        token = token.strip()
        if not token:
            raise InvalidInput("the satellite token is empty", field="token")
        token_digest = secret_digest(token)
        now = self._clock()
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account, lock="update")
            self._require_satellite()
            link = await storage.get_link(conn, acc.id, lock=None)
            if link is not None:
                raise Conflict(
                    f"account {acc.name!r} is registered with its upstream already "
                    f"(satellite {link.satellite_id})",
                    field="account",
                )
            context = _key_context(acc.id)
            earlier = await storage.pending_request(conn, acc.id, token_digest, upstream_url)
            if earlier is not None:
                # The same token again: the same request (the upstream answers it again; a
                # new request would need a new token, the first one being spent).
                write_atomically(out, decrypt(self._keys.token_key, earlier, context).encode())
                return
            key = bundles.new_key()
            request = RegistrationRequest(
                name=name,
                local_account=acc.name,
                token=token,
                public_key=bundles.public_pem(key.public_key()),
                created_at=now,
            )
            buffer = io.BytesIO()
            digest = bundle.BundleWriter(buffer, request).finish(key)
            write_atomically(out, buffer.getvalue())
            await storage.put_pending_registration(
                conn,
                acc.id,
                private_key=encrypt(
                    self._keys.token_key, bundles.private_key_pem(key).decode("ascii"), context
                ),
                request=encrypt(self._keys.token_key, buffer.getvalue().decode("ascii"), context),
                token_digest=token_digest,
                request_digest=digest,
                upstream_url=upstream_url,
                now=now,
            )
            await audit.record(
                conn,
                principal,
                "sync.registration_requested",
                f"{acc.name}/sync",
                account_id=acc.id,
                upstream_url=upstream_url,
            )

    async def complete_registration(
        self,
        principal: Principal,
        account: str,
        answer: Path,
        expected_fingerprint: str | None = None,
    ) -> SyncLink:
        """Apply the upstream's answer to the pending registration: the link is made and the
        upstream's key pinned. With ``expected_fingerprint`` (what `satellite sync
        fingerprint` prints at the upstream), a key with another fingerprint is refused."""
        self._require_satellite()
        header = bundle.read_header(answer)
        if not isinstance(header, RegistrationAnswer):
            raise BundleError(
                "this file is not the answer to a registration request (for a sync answer, "
                "use 'satellite sync import')"
            )
        try:
            upstream_key = bundles.public_key_from_pem(header.upstream_key)
            fingerprint = bundles.pinned_key_fingerprint(header.upstream_key)
        except ValueError as exc:
            raise BundleError(f"the upstream key in the answer is not usable: {exc}") from exc
        if expected_fingerprint is not None and not bundles.fingerprints_equal(
            fingerprint, expected_fingerprint
        ):
            raise BundleError(
                f"the answer's upstream key has fingerprint {fingerprint}, not the expected "
                f"{expected_fingerprint.strip()}: it does not come from that upstream",
                field="upstreamFingerprint",
            )
        # Signed with the key it pins: what this satellite trusts from now on.
        verified = await asyncio.to_thread(
            bundle.verify, answer, upstream_key, self._settings.sync.max_bundle_bytes
        )
        header = bundle.signed_header(verified, header)
        now = self._clock()
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account, lock="update")
            pending = await storage.take_pending_registration(conn, acc.id)
            if pending is None:
                raise Conflict(
                    f"no registration of account {acc.name!r} is waiting for an answer: "
                    "write a registration request first ('satellite sync register')",
                    field="account",
                )
            sealed, request_digest, upstream_url = pending
            if header.request_digest != request_digest.hex():
                raise BundleError(
                    "this answer is for another registration request (an older one, or "
                    "another satellite's): carry the latest request to the upstream and "
                    "import its answer"
                )
            await storage.insert_link(
                conn,
                account_id=acc.id,
                satellite_id=header.satellite_id,
                upstream_url=upstream_url,
                upstream_account=header.upstream_account,
                upstream_key=header.upstream_key,
                private_key=sealed,
                certificate=header.certificate,
                now=now,
            )
            await audit.record(
                conn,
                principal,
                "sync.registered",
                f"{acc.name}/sync",
                account_id=acc.id,
                satellite_id=header.satellite_id,
                upstream_account=header.upstream_account,
                upstream_url=upstream_url,
                answer=verified.digest_hex,
            )
            link = await storage.get_link(conn, acc.id, lock=None)
        assert link is not None
        log.info("sync.registered", account=acc.name, satellite=link.satellite_id)
        return link

    async def register_online(
        self,
        principal: Principal,
        account: str,
        *,
        upstream_url: str,
        token: str,
        name: str,
        expected_fingerprint: str | None = None,
    ) -> SyncLink:
        _check_upstream_url(upstream_url)
        with self.spool.files("registration.request", "registration.answer") as (request, answer):
            await self.request_registration(
                principal, account, token=token, name=name, upstream_url=upstream_url, out=request
            )
            await self._client.post_bundle(upstream_url, REGISTER_PATH, request, answer)
            return await self.complete_registration(
                principal, account, answer, expected_fingerprint
            )

    async def set_upstream_url(self, principal: Principal, account: str, url: str | None) -> None:
        """Connected mode (a URL) or disconnected mode (None) for a registered account."""
        if url is not None:
            _check_upstream_url(url)
        async with self._db.transaction() as conn:
            acc, _ = await self._link(conn, principal, account)
            await storage.set_upstream_url(conn, acc.id, url)
            await audit.record(
                conn,
                principal,
                "sync.upstream_set",
                f"{acc.name}/sync",
                account_id=acc.id,
                upstream_url=url,
            )

    async def unregister(self, principal: Principal, account: str) -> None:
        """The account is no longer linked to its upstream (e.g. revoked there): it may
        register again. Lines that came from the upstream stay, read-only, until the next
        link's first answer replaces them."""
        async with self._db.transaction() as conn:
            acc, link = await self._link(conn, principal, account)
            await storage.delete_link(conn, acc.id)
            await alerts.clear_alerts_except(conn, acc.id, "sync-", [])
            await audit.record(
                conn,
                principal,
                "sync.unregistered",
                f"{acc.name}/sync",
                account_id=acc.id,
                satellite_id=link.satellite_id,
            )

    async def account_or_only(self, principal: Principal, account: str | None) -> str:
        """``account``, or the one account the caller sees when it is left out."""
        if account is not None:
            return account
        async with self._db.connection() as conn:
            visible = await accounts.list_accounts(
                conn, None if principal.is_system_admin else principal.account_ids
            )
        if len(visible) != 1:
            raise InvalidInput(
                f"there are {len(visible)} accounts: name one with --account", field="account"
            )
        return visible[0].name

    # --- requests --------------------------------------------------------------------------

    async def _link(
        self, conn: Connection, principal: Principal, account: str
    ) -> tuple[Account, SyncLink]:
        acc = await scope.writable_account(conn, principal, account)
        self._require_satellite()
        link = await storage.get_link(conn, acc.id, lock=None)
        if link is None:
            raise Conflict(
                f"account {acc.name!r} is not registered with an upstream: run "
                "'satellite sync register' first",
                field="account",
            )
        return acc, link

    async def write_sync_request(
        self, principal: Principal, account: str, out: Path
    ) -> WrittenSyncRequest:
        """Disconnected mode, step one: the request, to carry to the upstream."""
        async with self._db.connection() as conn:
            _, link = await self._link(conn, principal, account)
        started = self._clock()
        try:
            request = await self._write_sync_request(link, out)
        except SatelliteError as exc:
            await self._record_failure(link, "disconnected", "export", started, exc)
            raise
        async with self._db.transaction() as conn:
            await self._history(conn, link, "disconnected", "export", started, request.sequence, {})
        return request

    async def _write_sync_request(self, link: SyncLink, out: Path) -> WrittenSyncRequest:
        async with self._db.transaction() as conn:
            sequence, since = await storage.next_request_sequence(conn, link.account_id)
        key = bundles.load_private_key(
            decrypt(self._keys.token_key, link.private_key, _key_context(link.account_id)).encode(
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
                async for row in storage.changed_products(conn, link.account_id, since):
                    writer.write(_product_record(row))
                    products += 1
                digest = writer.finish(key)
            partial.replace(out)  # whole, or not at all
        request = WrittenSyncRequest(sequence=sequence, digest=digest, through_xid=through)
        async with self._db.transaction() as conn:
            await storage.record_request(conn, link.account_id, request, now)
        log.info(
            "sync.exported",
            account=link.account,
            sequence=sequence,
            products=products,
            since=since,
            through=through,
        )
        return request

    # --- answers ---------------------------------------------------------------------------

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
        operation: str,
        expected: SyncLink | None,
    ) -> Imported:
        started = self._clock()
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
        operation: str,
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
        now = self._clock()
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
            )

    # --- connected mode --------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _exclusive(self, link: SyncLink) -> AsyncIterator[None]:
        """One sync of an account at a time among every node on the database."""
        key = LOCK_BASE + link.account_id
        async with self._db.connection() as conn:
            if not await locks.try_session_lock(conn, key):
                raise SyncInProgress(
                    f"a sync of account {link.account!r} is running already: try again later"
                )
            try:
                yield
            finally:
                await locks.release_session_lock(conn, key)

    async def sync_now(self, principal: Principal, account: str) -> Imported:
        """Connected mode, at once: export, send, import the answer."""
        async with self._db.connection() as conn:
            _, link = await self._link(conn, principal, account)
        if link.upstream_url is None:
            raise Conflict(
                f"account {link.account!r} syncs in disconnected mode (it was registered by "
                "file): export a request with 'satellite sync export', or set the upstream "
                "URL with 'satellite sync connect'",
                field="account",
            )
        imported = await self._connected(principal, link, "sync-now")
        assert imported is not None  # (only a scheduled run can find its run claimed)
        return imported

    async def _connected(
        self, principal: Principal, link: SyncLink, operation: str, *, scheduled: bool = False
    ) -> Imported | None:
        """Export, send, import, with the account's sync lock held. A scheduled run first
        claims the run (None: another node has done it this time)."""
        assert link.upstream_url is not None
        started = self._clock()
        async with self._exclusive(link):
            interval = dt.timedelta(minutes=self._settings.timers.sync_interval_minutes)
            async with self._db.transaction() as conn:
                if scheduled and not await storage.claim_run(
                    conn, link.account_id, started, started + interval
                ):
                    return None
                await storage.record_attempt(conn, link.account_id, started, None, None)
            with self.spool.files("request", "answer") as (request_path, answer_path):
                try:
                    await self._write_sync_request(link, request_path)
                    await self._send(link.upstream_url, request_path, answer_path)
                except SatelliteError as exc:
                    await self._record_failure(link, "connected", operation, started, exc)
                    raise
                return await self._import(principal, answer_path, "connected", operation, link)

    async def _send(self, url: str, request: Path, answer: Path) -> None:
        """POST the request; transient failures are retried with a doubling, jittered wait."""
        settings = self._settings.sync
        backoff = Backoff(settings.retry_backoff_seconds, math.inf)
        for attempt in range(1, settings.attempts + 1):
            try:
                await self._client.post_bundle(url, EXCHANGE_PATH, request, answer)
                return
            except (UpstreamUnreachable, UpstreamRefused) as exc:
                transient = isinstance(exc, UpstreamUnreachable) or exc.status >= 500
                if not transient or attempt == settings.attempts:
                    raise
                wait = backoff.wait(attempt)
                log.warning("sync.retrying", attempt=attempt, wait_seconds=wait, error=exc.detail)
                await self._sleep(wait)

    async def run_scheduled(self) -> JobReport:
        """The scheduled job: every account linked in connected mode syncs, once per
        interval among all the nodes on the database (the first to claim the run does it)."""
        if self._settings.role != "satellite":
            return JobReport("sync", {})
        async with self._db.connection() as conn:
            linked = await storage.links(conn)
        done = {"synced": 0, "failed": 0, "skipped": 0}
        for link in linked:
            if link.upstream_url is None:
                continue
            try:
                synced = await self._connected(
                    system_actor("scheduler"), link, "scheduled", scheduled=True
                )
                done["synced" if synced else "skipped"] += 1
            except SyncInProgress:
                done["skipped"] += 1
            except SatelliteError:
                done["failed"] += 1  # recorded in the link's status, history and alerts
            except Exception as exc:
                log.exception("sync.failed_unexpectedly", account=link.account)
                await self._record_failure(
                    link,
                    "connected",
                    "scheduled",
                    self._clock(),
                    SatelliteError(f"internal error ({type(exc).__name__}); the log has details"),
                )
                done["failed"] += 1
        return JobReport("sync", done)

    # --- status ----------------------------------------------------------------------------

    async def _history(
        self,
        conn: Connection,
        link: SyncLink,
        mode: SyncMode,
        operation: str,
        started: dt.datetime,
        sequence: int | None,
        counts: dict[str, Any],
        error: str | None = None,
    ) -> None:
        await storage.insert_history(
            conn,
            link.account_id,
            mode=mode,
            operation=operation,
            started_at=started,
            finished_at=self._clock(),
            outcome="failure" if error else "success",
            sequence=sequence,
            counts=counts,
            error=error,
        )

    async def _record_failure(
        self,
        link: SyncLink,
        mode: SyncMode,
        operation: str,
        started: dt.datetime,
        error: SatelliteError,
    ) -> None:
        """What went wrong, where the operator looks: status, history, an alert."""
        now = self._clock()
        async with self._db.transaction() as conn:
            await storage.record_attempt(conn, link.account_id, now, error.detail, None)
            await self._history(conn, link, mode, operation, started, None, {}, error.detail)
            await alerts.raise_alert(
                conn,
                account_id=link.account_id,
                virtual_account_id=None,
                dedupe_key=FAILED_ALERT,
                message_type="SyncFailed",
                severity="Major",
                source="sync",
                message=f"sync with the upstream failed ({operation}): {error.detail}",
            )
        # A scheduled sync's failure is for the log; an operator's gets the error itself.
        report = log.warning if mode == "connected" else log.info
        report("sync.failed", account=link.account, operation=operation, error=error.detail)

    async def status(self, principal: Principal, account: str) -> SyncStatus:
        async with self._db.connection() as conn:
            acc = await scope.readable_account(conn, principal, account)
            link = await storage.get_link(conn, acc.id, lock=None)
            pending = await storage.has_pending_registration(conn, acc.id)
            history = await storage.history(conn, acc.id, HISTORY_SHOWN)
        until = None
        passed = False
        if link is not None:
            horizon = self._settings.timers.sync_horizon_days
            until = link.in_step_since() + dt.timedelta(days=horizon)
            passed = horizon_passed(link.in_step_since(), self._clock(), horizon)
        fingerprint = bundles.pinned_key_fingerprint(link.upstream_key) if link else None
        return SyncStatus(acc.name, link, pending, history, until, passed, fingerprint)

    async def horizon_alerts(self, now: dt.datetime) -> JobReport | None:
        """Warn before the horizon and when it has passed; clear when in step again."""
        horizon = self._settings.timers.sync_horizon_days
        warning = self._settings.sync.horizon_warning_days
        raised = 0
        async with self._db.transaction() as conn:
            if not await locks.try_transaction_lock(conn, LOCK_KEYS["sync-alerts"]):
                return None
            linked = await storage.links(conn)
            for link in linked:
                since = link.in_step_since()
                keep: list[str] = []
                severity: Severity
                if horizon_passed(since, now, horizon):
                    keep = [HORIZON_ALERT]
                    severity, kind = "Critical", "SyncHorizonPassed"
                    message = (
                        f"no sync with the upstream since {since:%Y-%m-%d}: more than "
                        f"{horizon} days, so this satellite grants no new authorizations; "
                        "sync now (or import an answer) to resume"
                    )
                elif horizon_passed(since, now, max(horizon - warning, 0)):
                    keep = [HORIZON_ALERT]
                    severity, kind = "Major", "SyncOverdue"
                    until = since + dt.timedelta(days=horizon)
                    message = (
                        f"no sync with the upstream since {since:%Y-%m-%d}: from "
                        f"{until:%Y-%m-%d} this satellite grants no new authorizations "
                        "unless it syncs"
                    )
                if keep:
                    raised += await alerts.raise_alert(
                        conn,
                        account_id=link.account_id,
                        virtual_account_id=None,
                        dedupe_key=HORIZON_ALERT,
                        message_type=kind,
                        severity=severity,
                        source="sync",
                        message=message,
                    )
                await alerts.clear_alerts_except(conn, link.account_id, HORIZON_ALERT, keep)
        return JobReport("sync-alerts", {"linked": len(linked), "raised": raised})


def _product_record(row: Any) -> ProductRecord:
    return ProductRecord(
        id=row["id"],
        virtual_account=row["virtual_account"],
        pid=row["udi_pid"],
        serial_number=row["udi_serial"],
        uuid=row["udi_uuid"],
        product_type=row["product_type"],
        product_version=row["product_version"],
        hostname=row["hostname"],
        ip_address=row["ip_address"],
        export_controlled=row["export_controlled"],
        status=row["status"],
        registered_at=row["registered_at"],
        ended_at=row["ended_at"],
        reservation=row["reservation"],
        reserved=[
            ReservedLicense(
                tag=r["tag"],
                quantity=r["quantity"],
                license_type=r["licenseType"],
                end_date=dt.date.fromisoformat(r["endDate"]) if r["endDate"] else None,
                stage=r["stage"],
            )
            for r in row["reserved"]
        ],
        export_keys=row["export_keys"],
    )
