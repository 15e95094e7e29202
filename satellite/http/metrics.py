"""Prometheus metrics at ``/metrics`` (text format), on a listener of their own or the main
one, optionally behind a bearer token (``[metrics]`` in the config).

Every app owns its registry: nothing is registered in prometheus-client's global one, so
two apps in one process count apart. With several workers (``satellite serve --workers``)
each process counts in files of prometheus-client's multiprocess mode (the parent names
the directory in ``PROMETHEUS_MULTIPROC_DIR``) and a scrape, whichever worker answers it,
sums the counters and histograms of every worker, those that exited included; what is read
at scrape time is the answering worker's (its pool) or the database's.

What the process sees happen (HTTP requests, device operations, job runs, webhook attempts,
waits for a pooled connection) is counted as it happens; what only the database knows
(product instances, license positions, open alerts, sync links, pending webhook deliveries)
is read when Prometheus scrapes (``services.metrics.MetricsReader``), and a database that
cannot be reached is ``satellite_database_up 0`` in a scrape that still answers 200.

Label values are bounded: route templates (never raw paths), methods, statuses, problem
slugs, job names, catalog tags, account and virtual account names; never a product id or
free text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from satellite.config import MetricsSettings, parse_listen
from satellite.crypto.secrets import digests_equal
from satellite.errors import (
    UNAVAILABLE_RETRY_AFTER,
    ConfigError,
    DatabaseBusy,
    DatabaseUnavailable,
    NotAuthenticated,
)
from satellite.http import problems
from satellite.http.handlers import device
from satellite.http.keys import DATABASE_SUPERVISOR, SERVICES
from satellite.services.metrics import DatabaseCounts, MetricsReader
from satellite.services.webhook_deliveries import ATTEMPT_OUTCOMES, AttemptOutcome
from satellite.storage.db import Database
from satellite.storage.job_runs import JobRunRow

log = structlog.get_logger("satellite.metrics")

PATH = "/metrics"
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"  # (prometheus-client's name)
UNMATCHED = "unmatched"  # the route label of every path no route matches
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_MAX_TOKEN_BYTES = 4096

# The device API's operations, by the handler a route calls.
DEVICE_OPERATIONS: dict[Callable[..., object], str] = {
    device.register: "register",
    device.report_usage: "usage-report",
    device.renew_authorization: "authorization-renewal",
    device.renew_registration: "registration-renewal",
    device.deregister: "deregister",
    device.request_export: "export-request",
    device.return_export: "export-return",
}


@dataclass(frozen=True)
class _Scrape:
    """What one scrape read: the database's counts (None: not read) and how that went."""

    counts: DatabaseCounts | None
    database_up: bool
    read_ok: bool


class _AtScrape(Collector):
    """The metrics read at scrape time, from what the scrape handler read just before."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.latest = _Scrape(None, False, False)

    def collect(self) -> Iterator[Metric]:
        scrape, metrics = self.latest, self._metrics
        yield _gauge(
            "satellite_database_up",
            "1 while the database answers, 0 while it does not",
            scrape.database_up,
        )
        yield _gauge(
            "satellite_metrics_database_read_ok",
            "1 when this scrape read the database's counts (0: down, or over the statement "
            "timeout)",
            scrape.read_ok,
        )
        db = metrics.database()
        if db is not None:
            yield _gauge(
                "satellite_database_pool_connections",
                "Connections the pool holds open",
                db.pool_size,
            )
            yield _gauge(
                "satellite_database_pool_in_use", "Connections of the pool in use", db.pool_in_use
            )
            yield _gauge(
                "satellite_database_pool_max_connections",
                "Connections the pool may open",
                db.pool_max_size,
            )
        family = CounterMetricFamily(
            "satellite_embedded_postgres_restarts",
            "Times the supervisor started the embedded PostgreSQL again after it died "
            "(0 on a database of the config's dsn: nothing restarts it)",
        )
        family.add_metric([], metrics.postgres_restarts())
        yield family
        if scrape.counts is not None:
            yield from _database_families(scrape.counts)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


def _database_families(counts: DatabaseCounts) -> Iterator[Metric]:
    yield _gauge(
        "satellite_metrics_database_read_seconds",
        "How long this scrape's read of the database took",
        counts.read_seconds,
    )
    states = GaugeMetricFamily(
        "satellite_product_instances", "Product instances by state", labels=["state"]
    )
    for state, n in counts.product_instances.items():
        states.add_metric([state], n)
    yield states
    labels = ["account", "virtual_account", "tag"]
    positions = {
        what: GaugeMetricFamily(f"satellite_licenses_{what}", help_text, labels=labels)
        for what, help_text in (
            ("purchased", "Licenses purchased (valid pool lines) per virtual account and tag"),
            ("in_use", "Licenses in use (export keys included) per virtual account and tag"),
            ("reserved", "Licenses reserved (SLR) per virtual account and tag"),
            ("available", "Licenses available per virtual account and tag (below 0: short)"),
        )
    }
    for account, p in counts.positions:
        values = [account, p.virtual_account, p.tag]
        positions["purchased"].add_metric(values, p.purchased)
        positions["in_use"].add_metric(values, p.in_use_total)
        positions["reserved"].add_metric(values, p.reserved)
        positions["available"].add_metric(values, p.available)
    yield from positions.values()
    alerts = GaugeMetricFamily(
        "satellite_alerts_open", "Open alerts by type and severity", labels=["type", "severity"]
    )
    for message_type, severity, n in counts.open_alerts:
        alerts.add_metric([message_type, severity], n)
    yield alerts
    age = GaugeMetricFamily(
        "satellite_sync_age_seconds",
        "Seconds since the linked account last synced successfully (never: since it was linked)",
        labels=["account"],
    )
    last = GaugeMetricFamily(
        "satellite_sync_last_succeeded",
        "1 when the linked account's last sync succeeded, 0 when it failed or none was made",
        labels=["account"],
    )
    for link in counts.sync:
        age.add_metric([link.account], link.age_seconds)
        last.add_metric([link.account], float(link.last_succeeded))
    yield age
    yield last
    pending = GaugeMetricFamily(
        "satellite_webhook_deliveries_pending",
        "Webhook deliveries waiting to be made (due, leased to an attempt, or waiting for a "
        "retry), per account with any",
        labels=["account"],
    )
    oldest = GaugeMetricFamily(
        "satellite_webhook_oldest_pending_seconds",
        "Seconds since the event of the account's oldest pending webhook delivery",
        labels=["account"],
    )
    for account, n, seconds in counts.webhooks_pending:
        pending.add_metric([account], n)
        oldest.add_metric([account], seconds)
    yield pending
    yield oldest


class Metrics:
    """One app's metrics and its registry."""

    def __init__(self, settings: MetricsSettings, shared_dir: str | None = None) -> None:
        """``shared_dir``: this app is one of the daemon's workers, which count together
        in the files of that directory (prometheus-client's PROMETHEUS_MULTIPROC_DIR)."""
        self.settings = settings
        self.registry = CollectorRegistry(auto_describe=True)
        self._app: web.Application | None = None
        self._reader: MetricsReader | None = None
        self.requests = Counter(
            "satellite_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "satellite_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method",
            ["route", "method"],
            registry=self.registry,
        )
        self.device_operations = Counter(
            "satellite_device_operations",
            "Device API operations by kind and outcome (ok, or the problem's slug)",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self.job_runs = Counter(
            "satellite_job_runs",
            "Job runs of this node, scheduled or on demand, by job and outcome (done, "
            "skipped, failed)",
            ["job", "outcome"],
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "satellite_job_run_duration_seconds",
            "Time a job run of this node took, by job (runs that ran: done or failed, not skipped)",
            ["job"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800),
            registry=self.registry,
        )
        self.acquire_seconds = Histogram(
            "satellite_database_acquire_wait_seconds",
            "Time a caller waited for a connection of the database pool",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 10),
            registry=self.registry,
        )
        self.webhook_attempts = Counter(
            "satellite_webhook_attempts",
            "Webhook delivery attempts of this node by outcome (delivered, failed: to be "
            "retried, given_up: failed and its delivery given up)",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in ATTEMPT_OUTCOMES:
            self.webhook_attempts.labels(outcome)  # (each shows, at 0, from the start)
        self._at_scrape = _AtScrape(self)
        self.exposed = self.registry
        if shared_dir is not None:
            # (prometheus-client chose, at import, to count these metrics in files of that
            # directory: a scrape reads every worker's files. A daemon of one process
            # with the variable in its environment also counts in files, of its own pid,
            # but shows its registry: not what other processes left in the directory.)
            self.exposed = CollectorRegistry(auto_describe=True)
            MultiProcessCollector(self.exposed, shared_dir)  # type: ignore[no-untyped-call]
        self.exposed.register(self._at_scrape)

    def attach(self, app: web.Application) -> None:
        """Read the database and the supervisor of ``app`` at scrape time; count its job
        runs and pool waits (once its services are open)."""
        self._app = app
        services = app[SERVICES]
        self._reader = services.metrics
        services.db.observe_acquire(self.acquire_seconds.observe)
        services.jobs.observe(self.job_run)
        services.deliveries.observe(self.webhook_attempt)

    def database(self) -> Database | None:
        return None if self._app is None else self._app[SERVICES].db

    def postgres_restarts(self) -> int:
        if self._app is None or DATABASE_SUPERVISOR not in self._app:
            return 0
        return self._app[DATABASE_SUPERVISOR].status().restarts

    def job_run(self, run: JobRunRow) -> None:
        self.job_runs.labels(run.job, run.outcome).inc()
        if run.outcome != "skipped":  # (a skip takes no time: it would drag the quantiles)
            seconds = (run.finished_at - run.started_at).total_seconds()
            self.job_seconds.labels(run.job).observe(max(0.0, seconds))

    def webhook_attempt(self, outcome: AttemptOutcome) -> None:
        self.webhook_attempts.labels(outcome).inc()

    def observe_request(
        self, request: web.Request, status: int, seconds: float, slug: str | None
    ) -> None:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else UNMATCHED
        method = request.method if request.method in _METHODS else "other"
        self.requests.labels(route, method, str(status)).inc()
        self.request_seconds.labels(route, method).observe(seconds)
        kind = DEVICE_OPERATIONS.get(request.match_info.handler)
        if kind is not None:
            outcome = "ok" if status < 400 else slug or str(status)
            self.device_operations.labels(kind, outcome).inc()

    async def render(self) -> bytes:
        """The text a scrape answers: the database read first (bounded by its statement
        timeout), then every metric of the registry."""
        assert self._reader is not None, "a scrape before the app started"
        try:
            scrape = _Scrape(await self._reader.read(), True, True)
        except DatabaseUnavailable:
            scrape = _Scrape(None, False, False)
        except DatabaseBusy:
            # Over the statement timeout (or set aside for another transaction).
            log.warning("metrics.database_read_busy")
            scrape = _Scrape(None, True, False)
        # (No await between the two: a concurrent scrape cannot slip its read in between.)
        self._at_scrape.latest = scrape
        return generate_latest(self.exposed)

    async def check_token_file(self, app: web.Application) -> None:
        """At start: a token file that cannot be read stops the daemon (one line)."""
        self.expected_token()

    def expected_token(self) -> bytes | None:
        """The token a scrape must present (None: none is asked for); read from its file
        each time, so a rewritten file takes effect at the next scrape."""
        path = self.settings.bearer_token_file
        return None if path is None else read_token(Path(path))


def read_token(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            token = handle.read(_MAX_TOKEN_BYTES + 1).strip()
    except OSError as exc:
        raise ConfigError(f"metrics.bearer_token_file {path}: cannot read: {exc.strerror}") from exc
    if not token or len(token) > _MAX_TOKEN_BYTES:
        raise ConfigError(
            f"metrics.bearer_token_file {path}: must hold a token of 1 to {_MAX_TOKEN_BYTES} bytes"
        )
    return token


def _offered_token(request: web.Request) -> bytes:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    # (The header's bytes as they came: aiohttp decodes what is not UTF-8 with
    # surrogateescape, which plain encode() refuses.)
    return token.strip().encode("utf-8", "surrogateescape") if scheme.lower() == "bearer" else b""


async def _scrape(metrics: Metrics, request: web.Request) -> web.StreamResponse:
    try:
        expected = metrics.expected_token()
    except ConfigError as exc:
        log.error("metrics.token_unreadable", reason=exc.detail)
        return problems.problem_response(
            503,
            "metrics-token-unreadable",
            "Metrics token unreadable",
            "the file of metrics.bearer_token_file cannot be read; the log says why",
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
        )
    if expected is not None and not digests_equal(_offered_token(request), expected):
        return problems.from_domain_error(
            NotAuthenticated("/metrics needs the bearer token of metrics.bearer_token_file")
        )
    return web.Response(body=await metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


METRICS = web.AppKey("metrics", Metrics)


async def scrape(request: web.Request) -> web.StreamResponse:
    """``GET /metrics`` of the main listener."""
    return await _scrape(request.app[METRICS], request)


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every request by its route template, method and status, and time it."""
    started = time.perf_counter()
    status, slug = 500, None
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # (a redirect, or an error past the problem documents)
        status = exc.status
        raise
    else:
        status, slug = response.status, _slug(response)
        return response
    finally:
        request.app[METRICS].observe_request(request, status, time.perf_counter() - started, slug)


def _slug(response: web.StreamResponse) -> str | None:
    """The problem document's slug of an error answer (a bounded set: ``problems``)."""
    if response.status < 400 or not isinstance(response, web.Response):
        return None
    if response.content_type != problems.CONTENT_TYPE or not isinstance(response.body, bytes):
        return None
    try:
        kind = msgspec.json.decode(response.body, type=dict[str, object]).get("type")
    except msgspec.DecodeError:
        return None
    return kind.removeprefix(problems.PROBLEM_TYPE) if isinstance(kind, str) else None


def own_listener_app(main: web.Application) -> web.Application:
    """The app of the metrics' own listener: only ``/metrics``, of ``main``'s metrics."""
    app = web.Application()

    async def handler(request: web.Request) -> web.StreamResponse:
        return await _scrape(main[METRICS], request)

    app.router.add_get(PATH, handler)
    return app


async def start_own_listener(main: web.Application) -> web.AppRunner | None:
    """Listen for scrapes on ``metrics.listen`` when the metrics have their own listener."""
    if METRICS not in main or main[METRICS].settings.serve != "own-listener":
        return None
    metrics = main[METRICS]
    address = parse_listen(metrics.settings.listen)
    runner = web.AppRunner(own_listener_app(main), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, address.host, address.port, reuse_address=True).start()
    log.info("metrics.listening", addresses=[f"http://{a[0]}:{a[1]}" for a in runner.addresses])
    return runner
