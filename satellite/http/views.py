"""Domain records -> wire messages. Shared by the HTTP handlers and the CLI's ``--json``."""

from __future__ import annotations

import datetime as dt

from satellite.domain.catalog import Catalog, CatalogEntry
from satellite.domain.compliance import PoolLine, Position, line_status
from satellite.domain.models import Account, Alert, Event, PrincipalRecord, VirtualAccount
from satellite.http.wire import (
    AccountOut,
    AlertOut,
    CatalogEntryOut,
    EventOut,
    LicenseDetail,
    LicenseOut,
    LicenseSubstitution,
    PoolLineOut,
    PrincipalOut,
    TokenInfo,
    VirtualAccountOut,
)
from satellite.services.tokens import TokenView


def account_out(account: Account) -> AccountOut:
    return AccountOut(
        name=account.name,
        description=account.description,
        export_controlled_allowed=account.export_controlled_allowed,
        created_at=account.created_at,
    )


def virtual_account_out(va: VirtualAccount) -> VirtualAccountOut:
    return VirtualAccountOut(
        name=va.name, description=va.description, is_default=va.is_default, created_at=va.created_at
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
        in_use=position.in_use,
        available=position.available,
        reserved=position.reserved,
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
    )
