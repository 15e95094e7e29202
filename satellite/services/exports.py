"""Export-controlled features, the server's side.

A registered product asks for an export-controlled feature by name (the catalog names the
export authorization-key license that enables it). The request is granted only when the
product's account is allowed export-controlled functionality, the product registered with
a token that allows it, and a license of the key's tag is free in its virtual account
(never borrowed from a higher tier): one license then leaves the pool for the product,
and the answer carries an export authorization key signed by the server for this product
and this feature. Grants are counted with the virtual account's row locked (the lock
reservations take too), so two products racing for the last key cannot both win.

The product gives the key back with a return. When the product leaves (deregistered,
removed, registered again without export-controlled features or elsewhere) its keys are
released to the pool in that transaction, and an alert tells the account's admins: the
product keeps the features enabled and raises SmartLicenseExportControlNotAllowed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
import structlog

from satellite.config import TimerSettings
from satellite.crypto.keys import ServerKeys
from satellite.domain.access import Principal, product_actor
from satellite.domain.alerts import AlertType
from satellite.domain.clock import utc_now
from satellite.domain.models import ExportKey, ExportKeyEndReason, ProductInstance, udi_label
from satellite.errors import (
    Conflict,
    ExportAccountNotAllowed,
    ExportKeyUnavailable,
    ExportRegistrationNotAllowed,
    UnknownExportFeature,
)
from satellite.services import audit, horizon, scope
from satellite.services.envelope import DeviceEnvelope
from satellite.services.licenses import LicenseService
from satellite.storage import accounts, alerts, export_keys, product_instances, reservations
from satellite.storage.db import Connection, Database
from satellite_protocol import device as wire
from satellite_protocol.catalog import Catalog, CatalogEntry
from satellite_protocol.crypto import jose

log = structlog.get_logger(__name__)

ALARM = "SmartLicenseExportControlNotAllowed"
ALERT_TYPE: AlertType = "Export Control Not Allowed"


class KeyHolder(Protocol):
    """What ``release`` needs to know of a product (a ProductInstance, or a product as the
    scheduled jobs see it)."""

    @property
    def id(self) -> str: ...
    @property
    def account_id(self) -> int: ...
    @property
    def virtual_account_id(self) -> int: ...
    @property
    def virtual_account(self) -> str: ...
    @property
    def udi_pid(self) -> str: ...
    @property
    def udi_serial(self) -> str: ...


async def release(
    conn: Connection,
    actor: Principal,
    instance: KeyHolder,
    cause: ExportKeyEndReason,
    now: dt.datetime,
) -> list[ExportKey]:
    """Within the caller's transaction (the product's row locked): the product's granted
    export keys are released, their licenses back in the pool; audited, and an alert for
    the account. ``cause``: what the product went through ("deregistered", ...)."""
    ended = await export_keys.end_keys(conn, instance.id, "released", cause, now)
    if not ended:
        return []
    features = [key.feature for key in ended]
    await audit.record(
        conn,
        actor,
        "export.released",
        f"{instance.virtual_account}/{instance.id}",
        account_id=instance.account_id,
        udi=udi_label(instance),
        cause=cause,
        features=features,
        key_ids=[key.id for key in ended],
    )
    await alerts.raise_alert(
        conn,
        account_id=instance.account_id,
        virtual_account_id=instance.virtual_account_id,
        dedupe_key=f"export:{instance.id}",
        message_type=ALERT_TYPE,
        severity="Major",
        source=instance.virtual_account,
        message=(
            f"{udi_label(instance)} held export-controlled feature(s) {', '.join(features)} "
            f"({cause}): their export keys went back to the pool; the product keeps the "
            f"feature(s) enabled and raises {ALARM} to its administrator"
        ),
        details={
            "product": udi_label(instance),
            "features": ", ".join(features),
            "cause": cause,
            "alarm": ALARM,
        },
    )
    log.info(
        "export.released", product=instance.id, cause=cause, features=features, count=len(ended)
    )
    return ended


@dataclass(frozen=True)
class ExportKeyPage:
    total: int
    keys: list[ExportKey]


class ExportService:
    def __init__(
        self,
        db: Database,
        keys: ServerKeys,
        catalog: Catalog,
        licenses: LicenseService,
        envelope: DeviceEnvelope,
        timers: TimerSettings,
    ) -> None:
        self._db = db
        self._keys = keys
        self._catalog = catalog
        self._licenses = licenses
        self._envelope = envelope
        self._timers = timers

    def _entry(self, feature: str) -> CatalogEntry:
        entry = self._catalog.export_key(feature)
        if entry is None:
            known = ", ".join(self._catalog.export_features()) or "none"
            raise UnknownExportFeature(
                f"no export authorization key enables feature {feature!r} (known: {known})",
                field="feature",
            )
        return entry

    def _signed_key(self, instance: ProductInstance, key: ExportKey) -> dict[str, str]:
        claims = wire.ExportKeyClaims(
            key_id=key.id,
            product_instance_id=instance.id,
            udi=wire.Udi(
                udi_pid=instance.udi_pid, udi_serial=instance.udi_serial, udi_uuid=instance.udi_uuid
            ),
            feature=key.feature,
            tag=key.tag,
            issued_at=key.granted_at,
        )
        return jose.sign(
            self._keys.signing_key, msgspec.json.encode(claims), {"typ": wire.EXPORT_KEY_TYPE}
        )

    # --- the device API ----------------------------------------------------------------------

    async def request(
        self, product_instance_id: str, message: dict[str, Any], path: str
    ) -> dict[str, str]:
        """``license smart export request local <feature>``: the product's export key for
        the feature (the same key again when it holds one already)."""
        now = utc_now()
        async with self._db.transaction() as conn:
            # The virtual account is locked before the product, as the admin changes do
            # (a product locked first could deadlock with them).
            seen = await product_instances.get_instance(conn, product_instance_id)
            if seen is not None:
                await reservations.lock_virtual_account(conn, seen.virtual_account_id)
            instance, payload, nonce = await self._envelope.signed_by_instance(
                conn, product_instance_id, message, path
            )
            request = self._envelope.decode(payload, wire.ExportRequest)
            entry = self._entry(request.feature)
            if seen is None or seen.virtual_account_id != instance.virtual_account_id:
                raise Conflict("the product moved to another virtual account meanwhile: retry")
            account = await accounts.get_account_by_id(conn, instance.account_id, lock="share")
            if account is None or not account.export_controlled_allowed:
                raise ExportAccountNotAllowed(
                    "the product's account is not allowed export-controlled functionality"
                )
            if not instance.export_controlled:
                raise ExportRegistrationNotAllowed(
                    "the product registered with a token that does not allow export-controlled "
                    "features: it can never get them with this registration (register again "
                    "with a token that allows them)"
                )
            held = await export_keys.live_keys_of_instances(conn, [instance.id])
            key = next((k for k in held.get(instance.id, []) if k.feature == request.feature), None)
            granted = key is None
            if key is None:
                key = await self._grant(conn, instance, request.feature, entry, now)
        if granted:  # committed
            log.info("export.granted", product=instance.id, feature=key.feature, key_id=key.id)
        answer = wire.ExportGranted(
            feature=key.feature,
            tag=key.tag,
            display_name=entry.display_name,
            key=self._signed_key(instance, key),
            granted_at=key.granted_at,
        )
        return self._envelope.answer(nonce, path, answer)

    async def _grant(
        self,
        conn: Connection,
        instance: ProductInstance,
        feature: str,
        entry: CatalogEntry,
        now: dt.datetime,
    ) -> ExportKey:
        await horizon.require_in_step(
            conn, instance.account_id, now, self._timers.sync_horizon_days
        )
        positions = await self._licenses.virtual_account_positions(
            conn, instance.virtual_account_id, instance.virtual_account, now
        )
        free = next((p.free for p in positions if p.tag == entry.tag), 0)
        if free < 1:
            raise ExportKeyUnavailable(
                f"no {entry.display_name} license is free in virtual account "
                f"{instance.virtual_account!r} (export keys are never borrowed from a higher tier)"
            )
        key = await export_keys.insert_key(
            conn,
            product_instance_id=instance.id,
            va_id=instance.virtual_account_id,
            feature=feature,
            tag=entry.tag,
            now=now,
        )
        await audit.record(
            conn,
            product_actor(instance.id),
            "export.granted",
            f"{instance.virtual_account}/{instance.id}",
            account_id=instance.account_id,
            udi=udi_label(instance),
            feature=feature,
            tag=entry.tag,
            key_id=key.id,
        )
        return key

    async def give_back(
        self, product_instance_id: str, message: dict[str, Any], path: str
    ) -> dict[str, str]:
        """``license smart export return local <feature>``: the license goes back to the
        pool. Returning a key the product no longer holds is not an error (a retried
        return whose answer was lost). A key is ended by its feature, whether or not the
        catalog still names that feature (it may have left the catalog since the grant);
        only a feature the product holds no key for and the catalog does not know is
        refused."""
        now = utc_now()
        async with self._db.transaction() as conn:
            instance, payload, nonce = await self._envelope.signed_by_instance(
                conn, product_instance_id, message, path
            )
            request = self._envelope.decode(payload, wire.ExportRequest)
            ended = await export_keys.end_keys(
                conn, instance.id, "returned", "returned", now, feature=request.feature
            )
            if not ended:
                self._entry(request.feature)
            else:
                await audit.record(
                    conn,
                    product_actor(instance.id),
                    "export.returned",
                    f"{instance.virtual_account}/{instance.id}",
                    account_id=instance.account_id,
                    udi=udi_label(instance),
                    feature=request.feature,
                    key_id=ended[0].id,
                )
        log.info(
            "export.returned",
            product=product_instance_id,
            feature=request.feature,
            held=bool(ended),
        )
        return self._envelope.answer(
            nonce, path, wire.ExportReturned(feature=request.feature, returned=bool(ended))
        )

    # --- administration ----------------------------------------------------------------------

    async def keys_of_virtual_account(
        self,
        principal: Principal,
        account: str,
        va: str,
        *,
        granted_only: bool = True,
        limit: int = 100,
        offset: int = 0,
    ) -> ExportKeyPage:
        async with self._db.connection() as conn:
            acc = await scope.readable_account(conn, principal, account)
            vacc = await scope.virtual_account(conn, acc, va)
            total, keys = await export_keys.keys_of_virtual_account(
                conn, vacc.id, granted_only=granted_only, limit=limit, offset=offset
            )
        return ExportKeyPage(total, keys)

    async def keys_of_instance(
        self, principal: Principal, account: str, va: str, product_instance_id: str
    ) -> list[ExportKey]:
        """Every export key of one product of the virtual account, granted or ended."""
        async with self._db.connection() as conn:
            acc = await scope.readable_account(conn, principal, account)
            vacc = await scope.virtual_account(conn, acc, va)
            instance = await scope.product_instance(conn, vacc, product_instance_id)
            return await export_keys.keys_of_instance(conn, instance.id, vacc.id)
