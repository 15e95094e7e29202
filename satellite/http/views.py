"""Domain records -> wire messages. Shared by the HTTP handlers and the CLI's ``--json``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from satellite.domain.catalog import Catalog, CatalogEntry
from satellite.domain.compliance import PoolLine, Position, line_status
from satellite.domain.models import (
    Account,
    Alert,
    Event,
    ExportKey,
    ExportKeyStatus,
    PrincipalRecord,
    ProductInstance,
    ProductInstanceStatus,
    VirtualAccount,
)
from satellite.domain.reservation import Reservation, ReservedLine
from satellite.domain.sync import RegisteredSatellite, SatelliteToken
from satellite.http.wire import (
    AccountOut,
    AlertOut,
    AuthorizationCodeOut,
    CatalogEntryOut,
    DeviceChange,
    DeviceDetail,
    DeviceOut,
    EventOut,
    ExportFlag,
    ExportKeyOut,
    ExportKeyState,
    Flag,
    LicenseDetail,
    LicenseOut,
    LicenseSubstitution,
    LicenseTransferOut,
    LicenseUsage,
    MirroredProductOut,
    MirroredUsageOut,
    PoolLineOut,
    PrincipalOut,
    ReservationChange,
    ReservationOut,
    ReservedLicenseOut,
    SatelliteMirrorOut,
    SatelliteOut,
    SatelliteTokenOut,
    Sudi,
    SyncHistoryOut,
    SyncResultOut,
    SyncStatusOut,
    TokenInfo,
    TransferredLineOut,
    TransferredOut,
    UsageReportOut,
    VirtualAccountOut,
)
from satellite.services.product_instances import ProductInstanceDetail, ProductInstanceView
from satellite.services.reservations import Ended, Issued
from satellite.services.tokens import TokenView
from satellite.services.transfers import Transferred
from sync.satellite import Imported, SyncStatus


def flag(value: bool) -> Flag:
    return "true" if value else "false"


def export_flag(value: ExportFlag | bool | None) -> bool | None:
    """``exportControlled`` as given: "Allowed", "Not Allowed", a boolean, or absent."""
    return value if value is None or isinstance(value, bool) else value == "Allowed"


def account_out(account: Account) -> AccountOut:
    return AccountOut(
        id=account.id,
        name=account.name,
        domain=account.domain,
        description=account.description,
        export_controlled_allowed=account.export_controlled_allowed,
        created_at=account.created_at,
    )


def virtual_account_out(va: VirtualAccount) -> VirtualAccountOut:
    return VirtualAccountOut(
        name=va.name,
        description=va.description,
        is_default=flag(va.is_default),
        created_at=va.created_at,
    )


def token_info(view: TokenView, now: dt.datetime) -> TokenInfo:
    row = view.row
    return TokenInfo(
        token=view.token,
        description=row.description,
        expiration_date=row.expires_at,
        export_controlled="Allowed" if row.export_controlled else "Not Allowed",
        number_of_uses=row.max_uses,
        uses=row.uses,
        status=row.status(now),
        virtual_account=row.virtual_account,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _substitutions(position: Position, catalog: Catalog) -> list[LicenseSubstitution]:
    out = [
        LicenseSubstitution(
            license=catalog.display_name(tag), entitlement_tag=tag, quantity=n, direction="borrowed"
        )
        for tag, n in position.borrowed.items()
    ]
    out += [
        LicenseSubstitution(
            license=catalog.display_name(tag), entitlement_tag=tag, quantity=n, direction="lent"
        )
        for tag, n in position.lent.items()
    ]
    return out


def license_out(position: Position, catalog: Catalog, today: dt.date) -> LicenseOut:
    return LicenseOut(
        license=catalog.display_name(position.tag),
        entitlement_tag=position.tag,
        virtual_account=position.virtual_account,
        quantity=position.purchased,
        in_use=position.in_use + position.exported,
        available=position.available,
        reserved=position.reserved,
        export_keys=position.exported,
        status=position.status,
        license_details=[
            LicenseDetail(
                license_type=line.license_type,
                quantity=line.quantity,
                start_date=line.start_date,
                end_date=line.end_date,
                subscription_id=line.subscription_id,
                status=line_status(line, today),
            )
            for line in position.lines
        ],
        license_substitutions=_substitutions(position, catalog),
    )


def pool_line_out(line: PoolLine, catalog: Catalog, today: dt.date) -> PoolLineOut:
    return PoolLineOut(
        id=line.id,
        entitlement_tag=line.tag,
        license=catalog.display_name(line.tag),
        quantity=line.quantity,
        license_type=line.license_type,
        start_date=line.start_date,
        end_date=line.end_date,
        subscription_id=line.subscription_id,
        export_restricted=line.export_restricted,
        source=line.source,
        status=line_status(line, today),
    )


def transfer_out(done: list[Transferred], catalog: Catalog) -> LicenseTransferOut:
    moved = sum(t.quantity for t in done)
    return LicenseTransferOut(
        message=f"{moved} license(s) transferred",
        transfers=[
            TransferredOut(
                entitlement_tag=t.tag,
                license=catalog.display_name(t.tag),
                quantity=t.quantity,
                source_virtual_account=t.source,
                target_virtual_account=t.target,
                lines=[
                    TransferredLineOut(
                        source_line_id=m.source_line_id,
                        target_line_id=m.target_line_id,
                        quantity=m.quantity,
                        license_type=m.license_type,
                        start_date=m.start_date,
                        end_date=m.end_date,
                        subscription_id=m.subscription_id,
                    )
                    for m in t.lines
                ],
            )
            for t in done
        ],
    )


def principal_out(record: PrincipalRecord) -> PrincipalOut:
    return PrincipalOut(
        name=record.login,
        role=record.role,
        accounts=list(record.account_names),
        description=record.description,
        created_at=record.created_at,
        disabled=record.disabled_at is not None,
    )


def alert_out(alert: Alert) -> AlertOut:
    return AlertOut(
        message_type=alert.message_type,
        severity=alert.severity,
        source=alert.source,
        message=alert.message,
        virtual_account=alert.virtual_account,
        created_at=alert.created_at,
        cleared_at=alert.cleared_at,
    )


def event_out(event: Event) -> EventOut:
    return EventOut(
        id=event.id,
        occurred_at=event.occurred_at,
        account=event.account,
        actor=event.actor,
        action=event.action,
        target=event.target,
        details=event.details,
        request_id=event.request_id,
    )


def catalog_entry_out(entry: CatalogEntry) -> CatalogEntryOut:
    return CatalogEntryOut(
        entitlement_tag=entry.tag,
        display_name=entry.display_name,
        description=entry.description,
        family=entry.family,
        tier=entry.tier,
        export_restricted=entry.export_restricted,
        export_feature=entry.export_feature,
        tag_origin=entry.tag_origin,
        license_type=entry.license_type,
        stands_in_for=list(entry.stands_in_for),
    )


def device_status(status: ProductInstanceStatus) -> str:
    """The status as the API shows it: Registered, Deregistered, Removed, ..."""
    return status.replace("_", " ").title()


def license_usage(usage: dict[str, int], catalog: Catalog) -> list[LicenseUsage]:
    return [
        LicenseUsage(license=catalog.display_name(tag), entitlement_tag=tag, quantity=count)
        for tag, count in sorted(usage.items())
    ]


def _reserved_lines(lines: tuple[ReservedLine, ...], catalog: Catalog) -> list[ReservedLicenseOut]:
    return [
        ReservedLicenseOut(
            license=catalog.display_name(line.tag),
            entitlement_tag=line.tag,
            quantity=line.quantity,
            license_type=line.license_type,
            start_date=line.start_date,
            end_date=line.end_date,
            subscription_id=line.subscription_id,
        )
        for line in lines
    ]


def reservation_out(reservation: Reservation, catalog: Catalog, now: dt.datetime) -> ReservationOut:
    return ReservationOut(
        status=reservation.state,
        authorization_code_timestamp=reservation.latest_timestamp or None,
        reserved_licenses=license_usage(reservation.held(now.date()), catalog),
        confirmed_licenses=_reserved_lines(reservation.current, catalog),
        pending_licenses=_reserved_lines(reservation.pending, catalog),
        created_at=reservation.created_at,
    )


def _device_fields(view: ProductInstanceView, catalog: Catalog, now: dt.datetime) -> dict[str, Any]:
    p = view.product
    return {
        "product_tag_name": p.product_type,
        "product_name": f"{p.product_type} {p.product_version}",
        "display_name": p.hostname or f"PID:{p.udi_pid} SN:{p.udi_serial}",
        "host_name": p.hostname,
        "sudi": Sudi(udi_pid=p.udi_pid, udi_serial=p.udi_serial, udi_uuid=p.udi_uuid),
        "registration_date": p.registered_at,
        "last_contact_date": p.last_contact_at,
        "status": device_status(p.status),
        "license_usage": license_usage(view.usage, catalog),
        "virtual_account": p.virtual_account,
        "product_instance_id": p.id,
        "ip_address": p.ip_address,
        "export_controlled": p.export_controlled,
        "certificate_expires_at": p.certificate_expires_at,
        "authorization_expires_at": p.authorization_expires_at,
        "authorization_status": p.authorization_status(now),
        "ended_at": p.ended_at,
        "reservation": (
            reservation_out(view.reservation, catalog, now) if view.reservation else None
        ),
    }


def device_out(view: ProductInstanceView, catalog: Catalog, now: dt.datetime) -> DeviceOut:
    return DeviceOut(**_device_fields(view, catalog, now))


def device_detail(
    detail: ProductInstanceDetail, catalog: Catalog, now: dt.datetime
) -> DeviceDetail:
    return DeviceDetail(
        **_device_fields(detail.view, catalog, now),
        usage_history=[
            UsageReportOut(
                reported_at=record.reported_at, license_usage=license_usage(record.usage, catalog)
            )
            for record in detail.history
        ],
    )


def device_change(
    verb: str, views: list[ProductInstanceView], catalog: Catalog, now: dt.datetime
) -> DeviceChange:
    """The answer to a transfer or removal: the products as they are now."""
    return DeviceChange(
        message=f"{len(views)} product instance(s) {verb}",
        devices=[device_out(v, catalog, now) for v in views],
    )


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
    sat: RegisteredSatellite, products: list[dict[str, Any]], usage: list[dict[str, Any]]
) -> SatelliteMirrorOut:
    return SatelliteMirrorOut(
        satellite=satellite_out(sat),
        products=[
            MirroredProductOut(
                product_instance_id=p["id"],
                virtual_account=p["virtual_account"],
                sudi=Sudi(udi_pid=p["udi_pid"], udi_serial=p["udi_serial"], udi_uuid=p["udi_uuid"]),
                product_type=p["product_type"],
                product_version=p["product_version"],
                hostname=p["hostname"],
                ip_address=p["ip_address"],
                export_controlled=p["export_controlled"],
                status=p["status"],
                registered_at=p["registered_at"],
                ended_at=p["ended_at"],
                export_keys=list(p["export_keys"]),
                reservation=p["reservation"],
            )
            for p in products
        ],
        usage=[
            MirroredUsageOut(
                virtual_account=u["virtual_account"],
                entitlement_tag=u["tag"],
                in_use=u["in_use"],
                reserved=u["reserved"],
                export_keys=u["exported"],
            )
            for u in usage
        ],
    )


_EXPORT_KEY_STATUS: dict[ExportKeyStatus, ExportKeyState] = {
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
