"""A product's usage report (device API): its usage becomes what it reports, the answer
says what is authorized. The busiest request, so its database work is one statement
(storage/usage_report.py) in the common case.

The request is verified before that statement with the product's key as this process
last saw it (the envelope keeps them by product instance id), and its nonce's MAC
checked; the statement refuses, writing nothing, unless under the product's lock that
still is its key, it is registered with a certificate that holds, and the nonce is
unused. A refused statement, a report that does not decode, or a nonce or url refused
after the key known here verified the request, is then told exactly as every signed
request's refusal is: by the envelope's checks (signed_by_instance), in a transaction
rolled back. The rare report that begins or ends a shortage refreshes the shortage alerts
in a transaction of its own right after, under the pool alert lock, which the statement
takes shared last: no report commits while a refresh reads the pool, and concurrent
reports each judge their change as before, before the lock. (A refresh that fails leaves
the alerts to the pool-alerts job; the report, taken, is answered.)
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import structlog

from satellite.domain.clock import utc_now
from satellite.errors import (
    BadNonce,
    BadSignature,
    DatabaseBusy,
    DatabaseUnavailable,
    InvalidInput,
)
from satellite.services.authorization import authorization
from satellite.services.device_usage import reported_usage
from satellite.services.envelope import NO_SUCH_INSTANCE, DeviceEnvelope, withholds_host
from satellite.services.licenses import POOL_ALERT_LOCK_BASE, LicenseService
from satellite.storage import product_instances, usage_report
from satellite.storage.db import Database
from satellite.storage.usage_report import Reported
from satellite_protocol import device as wire
from satellite_protocol.catalog import Catalog

log = structlog.get_logger(__name__)


class _StaleKey(Exception):
    """The key this process last saw may no longer be the product's (nothing was
    written): the report is tried once more with its key read again."""


class _Passed(Exception):
    """The envelope's checks passed (rolls their transaction back)."""


class UsageReports:
    def __init__(
        self,
        db: Database,
        envelope: DeviceEnvelope,
        licenses: LicenseService,
        catalog: Catalog,
        max_usage_tags: int,
        renewal_days: int,
    ) -> None:
        """``max_usage_tags``: the most tags one report may carry; ``renewal_days``: after
        how many days an authorization is renewed."""
        self._db = db
        self._envelope = envelope
        self._licenses = licenses
        self._catalog = catalog
        self._max_usage_tags = max_usage_tags
        self._renewal_days = renewal_days

    async def report(
        self, product_instance_id: str, message: dict[str, Any], path: str
    ) -> dict[str, str]:
        envelope = self._envelope
        header = envelope.signed_header(product_instance_id, message)
        known = envelope.known_key(product_instance_id)
        if known is not None:
            try:
                return await self._report(product_instance_id, message, path, header, known)
            except _StaleKey:
                # (The product renewed its registration through another process since.)
                envelope.forget_key(product_instance_id)
        stored = await self._stored_key(product_instance_id)
        return await self._report(product_instance_id, message, path, header, stored, fresh=True)

    async def _report(
        self,
        product_instance_id: str,
        message: dict[str, Any],
        path: str,
        header: dict[str, Any],
        jwk: dict[str, Any],
        *,
        fresh: bool = False,
    ) -> dict[str, str]:
        """The report, verified with ``jwk``: the key just read (``fresh``), else the one
        this process last saw, which raises _StaleKey where it may be no longer the key."""
        envelope = self._envelope
        try:
            payload = envelope.verify(message, jwk)
        except BadSignature:
            envelope.forget_key(product_instance_id)
            if fresh:
                raise
            raise _StaleKey from None
        envelope.remember_key(product_instance_id, jwk)
        try:
            nonce = envelope.check_nonce(header, path)
        except (BadNonce, BadSignature):
            if not fresh:  # (the key known here may be one the product no longer has)
                await self._refuse(product_instance_id, message, path)
            raise
        try:
            report = envelope.decode(payload, wire.UsageReport)
            usage = reported_usage(report, self._catalog, self._max_usage_tags)
        except InvalidInput:
            # (What the envelope refuses comes first, as for every signed request.)
            await self._refuse(product_instance_id, message, path)
            raise
        now = utc_now()
        async with self._db.connection() as conn:
            done = await usage_report.report_usage(
                conn,
                product_instance_id,
                jwk=jwk,
                nonce=nonce,
                forget_host=withholds_host(header),
                usage=usage,
                now=now,
                day=self._licenses.date_at(now),
                pool_lock_base=POOL_ALERT_LOCK_BASE,
            )
        if isinstance(done, Reported):
            return await self._answer(done, usage, nonce, path, now)
        if done.reason == "another key" and not fresh:
            raise _StaleKey
        await self._refuse(product_instance_id, message, path)
        # The product changed between two statements, each seeing it refuse for another
        # reason: nothing was written.
        raise DatabaseBusy("the product instance changed meanwhile (nothing was changed): retry")

    async def _stored_key(self, product_instance_id: str) -> dict[str, Any]:
        async with self._db.connection() as conn:
            jwk = await product_instances.public_jwk_of(conn, product_instance_id)
        if jwk is None:
            raise BadSignature(NO_SUCH_INSTANCE)
        return jwk

    async def _refuse(self, product_instance_id: str, message: dict[str, Any], path: str) -> None:
        """Raise what the envelope's checks refuse the request for, if anything (in a
        transaction rolled back: the nonce stays unused)."""
        try:
            async with self._db.transaction() as conn:
                await self._envelope.signed_by_instance(conn, product_instance_id, message, path)
                raise _Passed
        except _Passed:
            return

    async def _answer(
        self, done: Reported, usage: dict[str, int], nonce: str, path: str, now: dt.datetime
    ) -> dict[str, str]:
        """The signed answer to a report the statement took; a shortage it began or ended is
        told at once."""
        va_id, va_name = done.virtual_account_id, done.virtual_account
        changes = done.changes
        if (
            changes
            and not usage
            and not self._licenses.shortage_alert_open(va_id, done.open_alerts or [])
        ):
            changes = {}  # all of it released, and no shortage open that it could end
        answer = authorization(
            self._catalog,
            self._licenses,
            va_name,
            usage,
            done.pool,
            done.authorization_expires_at,
            self._renewal_days,
        )
        if changes and self._licenses.shortage_begins_or_ends(
            va_id, va_name, done.pool, changes, now
        ):
            try:
                async with self._db.transaction() as conn:
                    await self._licenses.refresh_shortages(
                        conn, done.account_id, va_id, va_name, set(changes), now
                    )
            except (DatabaseUnavailable, DatabaseBusy) as exc:
                # The report was taken: a 503 ("try again") would be untrue, and its retry
                # would change nothing to refresh. The pool-alerts job catches up.
                log.warning(
                    "usage_report.shortage_refresh_failed",
                    virtual_account_id=va_id,
                    error_type=type(exc).__name__,
                )
        return self._envelope.answer(nonce, path, answer)
