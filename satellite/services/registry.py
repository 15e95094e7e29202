"""Wiring: the services of one process, built from settings and shared resources."""

from __future__ import annotations

from dataclasses import dataclass

from satellite.config import Settings
from satellite.crypto.keys import ServerKeys
from satellite.crypto.secrets import Passwords
from satellite.domain.catalog import Catalog
from satellite.services.accounts import AccountService
from satellite.services.alerts import AlertService
from satellite.services.auth import AuthService
from satellite.services.devices import DeviceService
from satellite.services.envelope import DeviceEnvelope
from satellite.services.events import EventService
from satellite.services.exports import ExportService
from satellite.services.licenses import LicenseService
from satellite.services.limits import RateLimiter
from satellite.services.maintenance import MaintenanceService
from satellite.services.principals import PrincipalService
from satellite.services.products import ProductService
from satellite.services.reservations import ReservationService
from satellite.services.subscriptions import SubscriptionService
from satellite.services.tokens import TokenService
from satellite.services.transfers import LicenseTransferService
from satellite.storage.db import Database
from sync.satellite import SatelliteSync
from sync.upstream import UpstreamSync


@dataclass(frozen=True)
class Services:
    db: Database
    catalog: Catalog
    accounts: AccountService
    licenses: LicenseService
    transfers: LicenseTransferService
    envelope: DeviceEnvelope
    devices: DeviceService
    exports: ExportService
    products: ProductService
    reservations: ReservationService
    tokens: TokenService
    auth: AuthService
    principals: PrincipalService
    events: EventService
    alerts: AlertService
    maintenance: MaintenanceService
    sync: SatelliteSync
    upstream: UpstreamSync
    subscriptions: SubscriptionService


def build_services(
    settings: Settings, db: Database, keys: ServerKeys, catalog: Catalog
) -> Services:
    passwords = Passwords()
    limiter = RateLimiter(db, settings.limits)
    licenses = LicenseService(db, catalog)
    reservations = ReservationService(
        db, keys, catalog, licenses, settings.timers.sync_horizon_days
    )
    envelope = DeviceEnvelope(keys)
    devices = DeviceService(
        db,
        keys,
        catalog,
        licenses,
        settings.timers,
        settings.device.max_usage_tags,
        limiter,
        envelope,
    )
    return Services(
        db=db,
        catalog=catalog,
        accounts=AccountService(db),
        licenses=licenses,
        transfers=LicenseTransferService(db, catalog, licenses),
        envelope=envelope,
        devices=devices,
        exports=ExportService(
            db, keys, catalog, licenses, envelope, settings.timers.sync_horizon_days
        ),
        products=ProductService(db, reservations, licenses),
        reservations=reservations,
        tokens=TokenService(db, keys, settings.timers),
        auth=AuthService(db, passwords, limiter, settings.api.access_token_ttl_seconds),
        principals=PrincipalService(db, passwords),
        events=EventService(db),
        alerts=AlertService(db),
        maintenance=MaintenanceService(db, licenses, settings.timers.usage_history_days),
        sync=SatelliteSync(db, keys, licenses, settings),
        upstream=UpstreamSync(db, keys, settings),
        subscriptions=SubscriptionService(db, licenses),
    )
