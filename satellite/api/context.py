"""The services an operation is given: built once per process by ``satellite.wiring``."""

from __future__ import annotations

from dataclasses import dataclass

from satellite.services.accounts import AccountService
from satellite.services.alerts import AlertService
from satellite.services.auth import AuthService
from satellite.services.device_api import DeviceApiService
from satellite.services.envelope import DeviceEnvelope
from satellite.services.events import EventService
from satellite.services.exports import ExportService
from satellite.services.jobs import JobService
from satellite.services.licenses import LicenseService
from satellite.services.limits import RateLimiter
from satellite.services.maintenance import MaintenanceService
from satellite.services.metrics import MetricsReader
from satellite.services.principals import PrincipalService
from satellite.services.product_instances import ProductInstanceService
from satellite.services.reservations import ReservationService
from satellite.services.sessions import SessionService
from satellite.services.subscriptions import SubscriptionService
from satellite.services.tokens import TokenService
from satellite.services.transfers import LicenseTransferService
from satellite.services.usage import UsageService
from satellite.services.webhook_deliveries import WebhookDeliveries
from satellite.services.webhooks import WebhookService
from satellite.storage.db import Database
from satellite_protocol.catalog import Catalog
from sync.satellite import SatelliteSync
from sync.upstream import UpstreamSync


@dataclass(frozen=True)
class Services:
    db: Database
    catalog: Catalog
    limiter: RateLimiter
    accounts: AccountService
    licenses: LicenseService
    transfers: LicenseTransferService
    envelope: DeviceEnvelope
    device_api: DeviceApiService
    exports: ExportService
    product_instances: ProductInstanceService
    reservations: ReservationService
    tokens: TokenService
    auth: AuthService
    sessions: SessionService
    principals: PrincipalService
    events: EventService
    alerts: AlertService
    maintenance: MaintenanceService
    jobs: JobService
    sync: SatelliteSync
    upstream: UpstreamSync
    subscriptions: SubscriptionService
    usage: UsageService
    metrics: MetricsReader  # (what /metrics reads from the database at scrape time)
    webhooks: WebhookService
    deliveries: WebhookDeliveries
