"""The upstream's side of sync: satellite tokens, registering satellites, answering them.

A request is verified with the key of the satellite it names before anything in it is
read; it is applied and answered in one transaction. The answer to the last request is
kept: the same request sent again (an answer lost on the way) gets the same answer and
changes nothing; an older request is refused as stale.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from satellite.config import Settings
from satellite.crypto.bundles import (
    pinned_key_fingerprint,
    public_key_from_pem,
    satellite_certificate,
)
from satellite.crypto.keys import ServerKeys
from satellite.crypto.pki import to_pem
from satellite.crypto.secrets import random_secret, secret_digest
from satellite.domain.access import Principal
from satellite.domain.sync import RegisteredSatellite, SatelliteToken
from satellite.errors import Conflict, Forbidden, InvalidInput, NotFound
from satellite.services import audit, scope
from satellite.storage import accounts, licenses, product_instances, upstream
from satellite.storage.db import Connection, Database
from sync import bundle
from sync.bundle import (
    BundleError,
    DepartureRecord,
    LicenseRecord,
    ProductRecord,
    RegistrationAnswer,
    RegistrationRequest,
    SyncAnswer,
    SyncRequest,
    UsageRecord,
    VirtualAccountRecord,
)
from sync.spool import Incoming, Spool

log = structlog.get_logger("sync.upstream")
SATELLITE_CERTIFICATE_VALIDITY = dt.timedelta(days=5 * 365)
MAX_NEW_VIRTUAL_ACCOUNTS = 100  # a request creates at most this many here
REGISTRATION_MAX_BYTES = 64 * 1024  # a registration request is one line and a signature


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class NewSatelliteToken:
    token: SatelliteToken
    secret: str  # shown once


@dataclass(frozen=True)
class Answered:
    kind: str  # "registration" or "sync"
    satellite_id: str
    account: str
    sequence: int
    repeated: bool  # the same request again: the answer given before
    counts: dict[str, int]


class UpstreamSync:
    def __init__(
        self,
        db: Database,
        keys: ServerKeys,
        settings: Settings,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        self._db = db
        self._keys = keys
        self._settings = settings
        self._clock = clock
        self.spool = Spool(settings)

    def now(self) -> dt.datetime:
        return self._clock()

    def fingerprint(self) -> str:
        """What a satellite's operator checks when it pins this upstream's key."""
        return pinned_key_fingerprint(_public_pem(self._keys))

    def _require_upstream(self) -> None:
        """(Checked after the account: to a caller who may not see it, it does not exist.)"""
        if self._settings.role != "upstream":
            raise Conflict(
                "this server's role is satellite: satellites register and sync with a server "
                'whose role is "upstream"'
            )

    # --- satellite tokens ------------------------------------------------------------------

    async def create_token(
        self, principal: Principal, account: str, description: str, expires_days: int | None
    ) -> NewSatelliteToken:
        days = expires_days or self._settings.timers.token_expiry_days
        if not 1 <= days <= 365:
            raise InvalidInput("a satellite token expires after 1 to 365 days", field="expiresDays")
        secret = "sat-" + random_secret()  # "sat-": tells it from a product token
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account)
            self._require_upstream()
            token = await upstream.insert_token(
                conn,
                acc.id,
                secret_digest(secret),
                description,
                principal.actor,
                self._clock() + dt.timedelta(days=days),
            )
            await audit.record(
                conn,
                principal,
                "satellite_token.created",
                f"{acc.name}/satellite-tokens/{token.id}",
                account_id=acc.id,
            )
        return NewSatelliteToken(token, secret)

    async def list_tokens(self, principal: Principal, account: str) -> list[SatelliteToken]:
        async with self._db.connection() as conn:
            acc = await scope.readable_account(conn, principal, account)
            return await upstream.tokens_of_account(conn, acc.id)

    async def revoke_token(self, principal: Principal, account: str, token_id: str) -> None:
        async with self._db.transaction() as conn:
            acc = await scope.writable_account(conn, principal, account)
            self._require_upstream()
            if not (
                token_id.isascii()
                and token_id.isdigit()
                and await upstream.revoke_token(conn, acc.id, int(token_id))
            ):
                raise NotFound(f"no active satellite token {token_id}", field="tokenId")
            await audit.record(
                conn,
                principal,
                "satellite_token.revoked",
                f"{acc.name}/satellite-tokens/{token_id}",
                account_id=acc.id,
            )

    # --- what the upstream knows of its satellites -----------------------------------------

    async def satellites(self, principal: Principal, account: str) -> list[RegisteredSatellite]:
        async with self._db.connection() as conn:
            acc = await scope.readable_account(conn, principal, account)
            return await upstream.satellites_of_account(conn, acc.id)

    async def mirror(
        self, principal: Principal, account: str, satellite_id: str, limit: int, offset: int
    ) -> tuple[RegisteredSatellite, list[dict[str, Any]], list[dict[str, Any]]]:
        """A satellite's products (a page) and usage, as its last sync left them."""
        async with self._db.connection() as conn:
            acc = await scope.readable_account(conn, principal, account)
            sat = await upstream.get_satellite(conn, satellite_id, lock=None)
            if sat is None or sat.account_id != acc.id:
                raise NotFound(f"satellite {satellite_id} not found", field="satelliteId")
            products = await upstream.mirrored_products(conn, sat.id, limit, offset)
            usage = await upstream.mirrored_usage(conn, sat.id)
        return sat, [dict(r) for r in products], [dict(r) for r in usage]

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

    # --- answering -------------------------------------------------------------------------

    async def answer(self, request: Path, principal: Principal | None) -> tuple[Answered, bytes]:
        """Answer a registration request or a sync request: what was done, and the answer.

        ``principal`` is the operator who carried the file in (disconnected mode), who must
        be allowed to change the satellite's account; None when the satellite sent it
        itself (its signature is its credential).
        """
        self._require_upstream()
        header = bundle.read_header(request)
        if isinstance(header, RegistrationRequest):
            answered, data = await self._register(request, header, principal)
        elif isinstance(header, SyncRequest):
            answered, data = await self._exchange(request, header, principal)
        else:
            raise BundleError(_NOT_A_REQUEST)
        log.info(
            "sync.answered",
            kind=answered.kind,
            satellite=answered.satellite_id,
            sequence=answered.sequence,
            repeated=answered.repeated,
            **answered.counts,
        )
        return answered, data

    async def answer_stream(
        self,
        chunks: AsyncIterator[bytes],
        principal: Principal | None,
        only: type[RegistrationRequest | SyncRequest] | None = None,
    ) -> tuple[Answered, bytes]:
        """``answer`` for a request arriving over HTTP. Its header is read first: a
        registration request is small, and a sync request is taken in only from a
        satellite registered here (and, carried in by an operator, one they may change).
        ``only``: the one kind of request the endpoint takes."""
        self._require_upstream()
        incoming = Incoming(chunks)
        header = await incoming.header()
        if only is not None and not isinstance(header, only):
            raise BundleError(f"this endpoint takes a {only.__name__} bundle")
        limit = self._settings.sync.max_bundle_bytes
        if isinstance(header, RegistrationRequest):
            limit = REGISTRATION_MAX_BYTES
        elif isinstance(header, SyncRequest):
            await self._sender(header.satellite_id, principal)
        else:
            raise BundleError(_NOT_A_REQUEST)
        with self.spool.files("request") as (path,):
            await incoming.save(path, limit)
            return await self.answer(path, principal)

    async def _verify(self, path: Path, key_pem: str) -> bundle.VerifiedBundle:
        try:
            key = public_key_from_pem(key_pem)
        except ValueError as exc:
            raise BundleError(f"the bundle's key is not usable: {exc}") from exc
        return await asyncio.to_thread(
            bundle.verify, path, key, self._settings.sync.max_bundle_bytes
        )

    async def _register(
        self, path: Path, header: RegistrationRequest, principal: Principal | None
    ) -> tuple[Answered, bytes]:
        # Signed with the key it asks a certificate for: the satellite holds that key.
        verified = await self._verify(path, header.public_key)
        header = bundle.signed_header(verified, header)
        now = self._clock()
        async with self._db.transaction() as conn:
            earlier = await upstream.registration_answer(conn, verified.digest)
            if earlier is not None:
                sat = await upstream.get_satellite(conn, earlier[0], lock=None)
                assert sat is not None
                self._check_operator(principal, sat.account_id, sat.account)
                return Answered("registration", sat.id, sat.account, 0, True, {}), earlier[1]
            spent = await upstream.use_token(conn, secret_digest(header.token), now)
            if spent is None:
                raise Forbidden(
                    "the satellite token is not known here, or it was used, revoked or has "
                    "expired: create a new satellite token at the upstream"
                )
            account_id, account = spent
            self._check_operator(principal, account_id, account)
            satellite_id = str(uuid.uuid4())
            certificate = satellite_certificate(
                self._keys.ca_key,
                to_pem(self._keys.ca_cert),
                header.public_key,
                satellite_id,
                account,
                SATELLITE_CERTIFICATE_VALIDITY,
                now,
            )
            answer = RegistrationAnswer(
                satellite_id=satellite_id,
                request_digest=verified.digest_hex,
                upstream_account=account,
                certificate=certificate,
                upstream_key=_public_pem(self._keys),
                created_at=now,
            )
            data = self._signed(answer, [])
            await upstream.insert_satellite(
                conn,
                satellite_id=satellite_id,
                account_id=account_id,
                name=header.name,
                public_key=header.public_key,
                request_digest=verified.digest,
                answer=data,
                now=now,
            )
            await audit.record(
                conn,
                principal or _satellite_actor(satellite_id),
                "satellite.registered",
                f"{account}/satellites/{satellite_id}",
                account_id=account_id,
                name=header.name,
                local_account=header.local_account,
            )
        return Answered("registration", satellite_id, account, 0, False, {}), data

    async def _sender(self, satellite_id: str, principal: Principal | None) -> RegisteredSatellite:
        """The live satellite a sync request names (not yet verified to come from it), which
        the operator who carried it in may change."""
        async with self._db.connection() as conn:
            known = await upstream.get_satellite(conn, satellite_id, lock=None)
        if known is None:
            raise _unknown_satellite(satellite_id)
        self._check_operator(principal, known.account_id, known.account)
        _refuse_revoked(known)
        return known

    @staticmethod
    def _check_operator(principal: Principal | None, account_id: int, account: str) -> None:
        if principal is not None and not principal.may_write(account_id):
            # As everywhere: an account the caller may not see does not exist for them.
            if not principal.sees(account_id):
                raise NotFound("the bundle's account is not one of yours", field="account")
            raise Forbidden(f"role {principal.role} may not change account {account!r}")

    def _signed(self, header: bundle.Header, records: list[bundle.Record]) -> bytes:
        buffer = io.BytesIO()
        writer = bundle.BundleWriter(buffer, header)
        for record in records:
            writer.write(record)
        writer.finish(self._keys.signing_key)
        return buffer.getvalue()

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
            _refuse_revoked(sat)  # (revoked meanwhile)
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
                principal or _satellite_actor(sat.id),
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


_NOT_A_REQUEST = (
    "this file is an answer from an upstream, not a request: import it at the satellite "
    "('satellite sync import')"
)


def _refuse_revoked(sat: RegisteredSatellite) -> None:
    if sat.revoked_at is not None:
        raise Forbidden(
            f"satellite {sat.id} was revoked at the upstream on {sat.revoked_at:%Y-%m-%d}: "
            "unregister it ('satellite sync unregister') and register it again with a new "
            "satellite token"
        )


def _unknown_satellite(satellite_id: str) -> NotFound:
    return NotFound(
        f"satellite {satellite_id} is not registered here: register the satellite with this "
        "upstream first ('satellite sync register')"
    )


def _public_pem(keys: ServerKeys) -> str:
    return to_pem(keys.signing_cert)


def _satellite_actor(satellite_id: str) -> Principal:
    return Principal(kind="satellite", login=satellite_id, role="account-viewer")


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
