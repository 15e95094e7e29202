"""The composition root: the one module that builds database, keys, catalog, schema and
services for a process (the daemon, a CLI command, a test). Only entry points and tests
import it.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from satellite import tls
from satellite.api.context import Services
from satellite.config import Settings, TimerSettings
from satellite.console import attach_services, refusals_as_pages, setup_console
from satellite.crypto.keys import (
    KeyPaths,
    ServerKeys,
    ensure_server_keys,
    load_server_keys,
)
from satellite.crypto.secrets import Passwords
from satellite.domain.access import host_operator
from satellite.domain.clock import utc_now
from satellite.errors import ConfigError, StateDirError
from satellite.http.keys import MIGRATIONS, SERVICES
from satellite.http.metrics import METRICS, Metrics, count_requests
from satellite.http.metrics import PATH as METRICS_PATH
from satellite.http.metrics import scrape as scrape_metrics
from satellite.http.middlewares import (
    device_nonces,
    no_nul_in_parameters,
    problem_documents,
    request_context,
)
from satellite.http.openapi import openapi_routes
from satellite.http.routes import setup_routes
from satellite.resources import config_dir, migrations_dir
from satellite.scheduler import JobScheduler
from satellite.scheduler.deliveries import DeliveryWorker
from satellite.scheduler.jobs import JOBS
from satellite.services.accounts import AccountService
from satellite.services.alerts import AlertService
from satellite.services.auth import AuthService
from satellite.services.device_api import DeviceApiService
from satellite.services.envelope import DeviceEnvelope
from satellite.services.events import EventService
from satellite.services.exports import ExportService
from satellite.services.jobs import JobService, node_name
from satellite.services.licenses import LicenseService
from satellite.services.limits import RateLimiter
from satellite.services.maintenance import MaintenanceService
from satellite.services.metrics import MetricsReader
from satellite.services.principals import NewClient, NewUser, PrincipalService
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
from satellite.storage.embedded import EmbeddedPostgres
from satellite.storage.migrations import Migration, load_migrations, migrate
from satellite_protocol.catalog import Catalog, parse_catalog
from sync.satellite import SatelliteSync
from sync.upstream import UpstreamSync


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    dsn: str
    keys: ServerKeys
    catalog: Catalog
    migrations: list[Migration]


@dataclass(frozen=True)
class InitResult:
    applied: list[Migration]
    first_client: NewClient | None
    first_user: NewUser | None


def key_paths(settings: Settings) -> KeyPaths:
    return KeyPaths(settings.state_path)


def is_initialized(settings: Settings) -> bool:
    return key_paths(settings).ca_key.exists()


def ensure_state_dir(settings: Settings) -> Path:
    path = settings.state_path
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StateDirError(f"cannot create state directory {path}: {exc.strerror}") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise StateDirError(f"state directory {path} is not writable")
    return path


@contextmanager
def database_server(settings: Settings) -> Iterator[str]:
    """Yield the DSN to use: the configured one, or the embedded server's (started here)."""
    with embedded_or_configured(settings) as (dsn, _):
        yield dsn


@contextmanager
def embedded_or_configured(settings: Settings) -> Iterator[tuple[str, EmbeddedPostgres | None]]:
    """The DSN and, when it is the embedded server's (started here, stopped on the way
    out), that server, for the daemon to supervise."""
    if settings.database.dsn:
        yield settings.database.dsn, None
        return
    ensure_state_dir(settings)
    embedded = EmbeddedPostgres(settings.state_path)
    try:
        yield embedded.start(), embedded
    finally:
        embedded.stop()


def load_catalog(path: Path) -> Catalog:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the license catalog: {exc.strerror}") from exc
    return parse_catalog(data, str(path))


def catalog_path(settings: Settings) -> Path:
    return Path(settings.catalog) if settings.catalog else config_dir() / "catalog.toml"


def load_runtime(settings: Settings, dsn: str) -> Runtime:
    return Runtime(
        settings=settings,
        dsn=dsn,
        keys=load_server_keys(key_paths(settings)),
        catalog=load_catalog(catalog_path(settings)),
        migrations=load_migrations(migrations_dir()),
    )


@asynccontextmanager
async def open_services(runtime: Runtime) -> AsyncIterator[Services]:
    db = await Database.connect(runtime.dsn, runtime.settings.database)
    try:
        yield build_services(runtime.settings, db, runtime.keys, runtime.catalog)
    finally:
        await db.close()


async def apply_migrations(settings: Settings, dsn: str) -> tuple[list[Migration], int]:
    """Apply pending migrations; return those applied and the schema version now."""
    migrations = load_migrations(migrations_dir())
    db = await Database.connect(dsn, settings.database)
    try:
        async with db.connection() as conn:
            applied = await migrate(conn, migrations)
    finally:
        await db.close()
    return applied, max((m.version for m in migrations), default=0)


def create_key_material(settings: Settings, tls_hostnames: list[str]) -> list[Path]:
    """State directory, server keys and the TLS certificate the CA issues (unless the
    config names its own or plain HTTP), issued again when due; return what was written."""
    ensure_state_dir(settings)
    paths = key_paths(settings)
    created = ensure_server_keys(paths)
    if tls.ensure_certificate(settings, tls_hostnames) is not None:
        created.append(paths.tls_cert)
    return created


async def initialize(runtime: Runtime, operator: str) -> InitResult:
    """Migrate, create the first system-admin client if there is none and the first console
    user if there is no user (key material first); each its own transaction."""
    applied, _ = await apply_migrations(runtime.settings, runtime.dsn)
    async with open_services(runtime) as services:
        client = await services.principals.bootstrap_client(host_operator(operator))
        user = await services.principals.bootstrap_user(host_operator(operator))
    return InitResult(applied=applied, first_client=client, first_user=user)


def build_services(
    settings: Settings, db: Database, keys: ServerKeys, catalog: Catalog
) -> Services:
    passwords = Passwords()
    limiter = RateLimiter(db, settings.limits)
    licenses = LicenseService(db, catalog)
    reservations = ReservationService(db, keys, catalog, licenses, settings.timers)
    envelope = DeviceEnvelope(keys)
    auth = AuthService(db, passwords, limiter, settings.api.access_token_ttl_seconds)
    device_api = DeviceApiService(
        db,
        keys,
        catalog,
        licenses,
        settings.timers,
        settings.device.max_usage_tags,
        limiter,
        envelope,
    )
    node = node_name(settings.node_name)
    services = Services(
        db=db,
        catalog=catalog,
        limiter=limiter,
        accounts=AccountService(db),
        licenses=licenses,
        transfers=LicenseTransferService(db, catalog, licenses),
        envelope=envelope,
        device_api=device_api,
        exports=ExportService(db, keys, catalog, licenses, envelope, settings.timers),
        product_instances=ProductInstanceService(db, reservations, licenses),
        reservations=reservations,
        tokens=TokenService(db, keys, settings.timers),
        auth=auth,
        sessions=SessionService(db, auth, settings.console),
        principals=PrincipalService(db, passwords),
        events=EventService(db),
        alerts=AlertService(db),
        maintenance=MaintenanceService(db, licenses, settings.timers, settings.console),
        sync=SatelliteSync(db, keys, licenses, settings),
        upstream=UpstreamSync(db, keys, settings),
        subscriptions=SubscriptionService(db, licenses),
        usage=UsageService(db, licenses),
        metrics=MetricsReader(db, licenses, catalog, settings.metrics.database_timeout_seconds),
        jobs=JobService(db, node),
        webhooks=WebhookService(db, keys, settings.webhooks, settings.smtp),
        deliveries=WebhookDeliveries(
            db, keys, settings.webhooks, settings.sync, settings.smtp, node
        ),
    )
    services.jobs.define(
        {name: functools.partial(job, services, utc_now) for name, job in JOBS.items()},
        functools.partial(job_interval, settings.timers),
    )
    return services


def job_interval(timers: TimerSettings, job: str) -> dt.timedelta:
    """How often the scheduler runs ``job``."""
    return _own_intervals(timers).get(job, dt.timedelta(minutes=timers.jobs_interval_minutes))


def _own_intervals(timers: TimerSettings) -> dict[str, dt.timedelta]:
    """The jobs with an interval of their own (the others: ``jobs_interval_minutes``)."""
    return {
        "sync": dt.timedelta(minutes=timers.sync_interval_minutes),
        "usage-rollup": dt.timedelta(minutes=timers.usage_rollup_minutes),
    }


def job_timing(
    settings: Settings,
) -> tuple[dt.timedelta, dict[str, dt.timedelta], dict[str, float]]:
    """The scheduler's timing as ``settings`` say: every job's interval, the jobs with their
    own, and the seconds a job's run may start late at random."""
    timers = settings.timers
    return (
        dt.timedelta(minutes=timers.jobs_interval_minutes),
        _own_intervals(timers),
        # (at most half the interval: a run never slides into the next one)
        {"sync": min(settings.sync.jitter_seconds, timers.sync_interval_minutes * 30)},
    )


SCHEDULER = web.AppKey("scheduler", JobScheduler)


def apply_live_settings(app: web.Application, running: Settings, new: Settings) -> None:
    """What a reload (``satellite.reload``) changes in the running daemon besides the log and
    the catalog: the rate limits, the timers (in place: the services read them on every
    use), the scheduled jobs' intervals and the webhook settings."""
    services = app[SERVICES]
    services.limiter.update(new.limits)
    services.webhooks.use_settings(new.webhooks)
    services.deliveries.use_settings(new.webhooks)
    running.timers.adopt(new.timers)
    if SCHEDULER in app:
        app[SCHEDULER].reschedule(*job_timing(new))


def create_app(
    runtime: Runtime,
    *,
    scheduler: bool = False,
    deliveries: bool | None = None,
    shared_metrics: str | None = None,
) -> web.Application:
    """The application; with ``scheduler`` it also runs the scheduled jobs while it runs
    (``serve`` does; tests and tools that only need the HTTP side leave it off), and with
    ``deliveries`` (by default: with the scheduler) the webhook worker; ``shared_metrics``:
    the directory where the daemon's workers count together (satellite.http.metrics)."""
    metrics = runtime.settings.metrics
    app = web.Application(
        middlewares=[
            *([count_requests] if metrics.serve != "off" else []),
            request_context,
            device_nonces,
            problem_documents,
            refusals_as_pages,  # (the console's pages: bad input as a page, not a document)
            no_nul_in_parameters,
        ],
        client_max_size=runtime.settings.api.max_body_bytes,
    )
    app[MIGRATIONS] = runtime.migrations

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        async with open_services(runtime) as services:
            app[SERVICES] = services
            attach_services(app, services)
            if METRICS in app:
                app[METRICS].attach(app)
            yield

    async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
        interval, intervals, jitter = job_timing(runtime.settings)
        jobs = JobScheduler(app[SERVICES], interval, intervals=intervals, jitter=jitter)
        jobs.start()
        app[SCHEDULER] = jobs
        yield
        await jobs.stop()

    async def deliveries_ctx(app: web.Application) -> AsyncIterator[None]:
        worker = DeliveryWorker(app[SERVICES].deliveries)
        worker.start()
        yield
        await worker.stop()

    app.cleanup_ctx.append(services_ctx)
    if scheduler:
        app.cleanup_ctx.append(scheduler_ctx)
    if scheduler if deliveries is None else deliveries:
        app.cleanup_ctx.append(deliveries_ctx)
    extra = openapi_routes()
    if metrics.serve != "off":
        # (Its own listener, or /metrics here: a scrape reads this app's services either way.)
        app[METRICS] = Metrics(metrics, shared_metrics)
        app.on_startup.append(app[METRICS].check_token_file)
        if metrics.serve == "main-listener":
            extra.append(web.get(METRICS_PATH, scrape_metrics))
    setup_routes(app, extra)
    setup_console(app)
    return app
