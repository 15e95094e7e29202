"""Domain records -> wire messages. Shared by the HTTP handlers and the CLI's ``--json``."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from satellite.api.products import Sudi, device_out, reservation_out
from satellite.domain.models import (
    ExportKey,
    ExportKeyStatus,
    ProductInstance,
)
from satellite.domain.reservation import Reservation
from satellite.domain.sync import (
    MirroredProduct,
    MirroredUsage,
    RegisteredSatellite,
    SatelliteToken,
)
from satellite.http.wire import (
    AuthorizationCodeOut,
    ExportKeyOut,
    MirroredProductOut,
    MirroredUsageOut,
    ReservationChange,
    SatelliteMirrorOut,
    SatelliteOut,
    SatelliteTokenOut,
    SyncHistoryOut,
    SyncResultOut,
    SyncStatusOut,
)
from satellite.services.product_instances import ProductInstanceView
from satellite.services.reservations import Ended, Issued
from satellite_protocol.catalog import Catalog
from sync.satellite import Imported, SyncStatus


def issued_out(issued: Issued, catalog: Catalog, now: dt.datetime) -> AuthorizationCodeOut:
    p = issued.product
    return AuthorizationCodeOut(
        authorization_code=issued.code.text,
        reservation_code=issued.reservation.request_code,
        product_instance_id=p.id,
        sudi=Sudi(udi_pid=p.udi_pid, udi_serial=p.udi_serial, udi_uuid=p.udi_uuid),
        timestamp=issued.code.timestamp,
        reservation=reservation_out(issued.reservation, catalog, now),
    )


def reservation_confirmed(
    product: ProductInstance, reservation: Reservation, catalog: Catalog, now: dt.datetime
) -> ReservationChange:
    """The answer to a confirmation code: the product with its settled reservation."""
    return ReservationChange(
        message=f"reservation of product instance {product.id} confirmed",
        device=device_out(ProductInstanceView(product, {}, reservation), catalog, now),
    )


def reservation_ended(
    verb: str, ended: Ended, catalog: Catalog, now: dt.datetime
) -> ReservationChange:
    """The answer to a return or forced removal: the product as it is now, what went back."""
    released = ", ".join(f"{catalog.display_name(t)}={n}" for t, n in ended.released.items())
    return ReservationChange(
        message=f"product instance {ended.product.id} {verb}; released: {released or '-'}",
        device=device_out(ProductInstanceView(ended.product, {}), catalog, now),
    )


# --- sync ----------------------------------------------------------------------------------


def sync_status_out(status: SyncStatus) -> SyncStatusOut:
    history = [
        SyncHistoryOut(
            mode=h.mode,
            operation=h.operation,
            started_at=h.started_at,
            finished_at=h.finished_at,
            outcome=h.outcome,
            sequence=h.sequence,
            counts=h.counts,
            error=h.error,
        )
        for h in status.history
    ]
    link = status.link
    if link is None:
        return SyncStatusOut(
            account=status.account,
            registered=False,
            registration_pending=status.pending_registration,
            history=history,
        )
    return SyncStatusOut(
        account=status.account,
        registered=True,
        registration_pending=status.pending_registration,
        mode=link.mode,
        satellite_id=link.satellite_id,
        upstream=link.upstream_url,
        upstream_account=link.upstream_account,
        upstream_fingerprint=status.upstream_fingerprint,
        registered_at=link.registered_at,
        last_success=link.last_success_at,
        last_attempt=link.last_attempt_at,
        last_error=link.last_error,
        last_error_at=link.last_error_at,
        next_run=link.next_run_at,
        request_sequence=link.request_sequence,
        applied_sequence=link.applied_sequence,
        authorizations_until=status.authorizations_until,
        horizon_passed=status.horizon_passed,
        history=history,
    )


def sync_result_out(imported: Imported) -> SyncResultOut:
    return SyncResultOut(
        account=imported.account,
        sequence=imported.sequence,
        repeated=imported.repeated,
        counts=imported.counts,
    )


def satellite_token_out(
    token: SatelliteToken, now: dt.datetime, secret: str | None = None
) -> SatelliteTokenOut:
    return SatelliteTokenOut(
        id=token.id,
        description=token.description,
        status=token.status(now),
        created_by=token.created_by,
        created_at=token.created_at,
        expires_at=token.expires_at,
        used_at=token.used_at,
        token=secret,
    )


def satellite_out(sat: RegisteredSatellite) -> SatelliteOut:
    return SatelliteOut(
        satellite_id=sat.id,
        name=sat.name,
        revoked_at=sat.revoked_at,
        registered_at=sat.registered_at,
        last_sequence=sat.last_sequence,
        last_sync=sat.last_sync_at,
        products=sat.products,
    )


def satellite_mirror_out(
    sat: RegisteredSatellite, products: list[MirroredProduct], usage: list[MirroredUsage]
) -> SatelliteMirrorOut:
    return SatelliteMirrorOut(
        satellite=satellite_out(sat),
        products=[
            MirroredProductOut(
                product_instance_id=p.id,
                virtual_account=p.virtual_account,
                sudi=Sudi(udi_pid=p.udi_pid, udi_serial=p.udi_serial, udi_uuid=p.udi_uuid),
                product_type=p.product_type,
                product_version=p.product_version,
                hostname=p.hostname,
                ip_address=p.ip_address,
                export_controlled=p.export_controlled,
                status=p.status,
                registered_at=p.registered_at,
                ended_at=p.ended_at,
                export_keys=list(p.export_keys),
                reservation=p.reservation,
            )
            for p in products
        ],
        usage=[
            MirroredUsageOut(
                virtual_account=u.virtual_account,
                entitlement_tag=u.tag,
                in_use=u.in_use,
                reserved=u.reserved,
                export_keys=u.exported,
            )
            for u in usage
        ],
    )


_EXPORT_KEY_STATUS: dict[ExportKeyStatus, Literal["Granted", "Returned", "Released"]] = {
    "granted": "Granted",
    "returned": "Returned",
    "released": "Released",
}


def export_key_out(key: ExportKey, catalog: Catalog) -> ExportKeyOut:
    return ExportKeyOut(
        key_id=key.id,
        feature=key.feature,
        license=catalog.display_name(key.tag),
        entitlement_tag=key.tag,
        product_instance_id=key.product_id,
        sudi=Sudi(udi_pid=key.udi_pid, udi_serial=key.udi_serial, udi_uuid=key.udi_uuid),
        virtual_account=key.virtual_account,
        status=_EXPORT_KEY_STATUS[key.status],
        granted_at=key.granted_at,
        ended_at=key.ended_at,
        end_reason=key.end_reason,
    )
