"""Domain records -> wire messages. Shared by the HTTP handlers and the CLI's ``--json``."""

from __future__ import annotations

import datetime as dt

from satellite.api.products import device_fields, license_usage

# Moved to satellite.api.products (shared with reservations, export keys and sync).
from satellite.api.products import device_out as device_out
from satellite.domain.catalog import Catalog, CatalogEntry
from satellite.domain.compliance import PoolLine, Position, line_status
from satellite.domain.models import (
    Account,
    Alert,
    Event,
    PrincipalRecord,
    VirtualAccount,
)
from satellite.http.wire import (
    AccountOut,
    AlertOut,
    CatalogEntryOut,
    DeviceChange,
    DeviceDetail,
    EventOut,
    Flag,
    LicenseDetail,
    LicenseOut,
    LicenseSubstitution,
    LicenseTransferOut,
    PoolLineOut,
    PrincipalOut,
    TransferredLineOut,
    TransferredOut,
    UsageReportOut,
    VirtualAccountOut,
)
from satellite.services.products import ProductDetail, ProductView
from satellite.services.transfers import Transferred


def flag(value: bool) -> Flag:
    return "true" if value else "false"


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


def device_detail(detail: ProductDetail, catalog: Catalog, now: dt.datetime) -> DeviceDetail:
    return DeviceDetail(
        **device_fields(detail.view, catalog, now),
        usage_history=[
            UsageReportOut(
                reported_at=record.reported_at, license_usage=license_usage(record.usage, catalog)
            )
            for record in detail.history
        ],
    )


def device_change(
    verb: str, views: list[ProductView], catalog: Catalog, now: dt.datetime
) -> DeviceChange:
    """The answer to a transfer or removal: the products as they are now."""
    return DeviceChange(
        message=f"{len(views)} product instance(s) {verb}",
        devices=[device_out(v, catalog, now) for v in views],
    )
