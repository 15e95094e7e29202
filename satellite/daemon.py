"""``satellite serve``: listen on every configured address until SIGTERM."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog
from aiohttp import web

from satellite import systemd
from satellite.config import Settings
from satellite.errors import SatelliteError
from satellite.http.keys import DATABASE_SUPERVISOR, MIGRATIONS, SERVICES, SupervisorView
from satellite.http.metrics import start_own_listener
from satellite.reload import Reloader
from satellite.services import health
from satellite.storage.embedded import EmbeddedPostgres
from satellite.storage.supervisor import PostgresSupervisor
from satellite.tls import ServerTls
from satellite.wiring import Runtime, apply_live_settings, create_app

log = structlog.get_logger("satellite.daemon")

RELOADER = web.AppKey("reloader", Reloader)


@dataclass(frozen=True)
class WorkerPart:
    """This process is worker ``index`` of ``satellite serve --workers N`` (satellite.workers
    starts it): worker 0 leads (the scheduled jobs, the webhook deliveries, the certificate's
    renewal, the metrics' own listener); every worker accepts on the listen addresses."""

    index: int
    ready: Callable[[], None]  # told once this worker listens
    renewed: Callable[[], None]  # told when the leader serves a renewed certificate
    postgres: SupervisorView | None  # the parent's supervisor of the embedded PostgreSQL
    metrics_dir: str  # where every worker counts its metrics (satellite.http.metrics)

    @property
    def leads(self) -> bool:
        return self.index == 0


async def serve(
    runtime: Runtime,
    embedded: EmbeddedPostgres | None = None,
    announce: Callable[[list[str]], None] | None = None,
    read_settings: Callable[[], Settings] | None = None,
    worker: WorkerPart | None = None,
) -> None:
    """Serve until SIGTERM; ``embedded``: the embedded PostgreSQL to watch and restart;
    ``announce``: told the console's URLs once the daemon listens; ``read_settings``: the
    settings as the config file says now (SIGHUP reads it again), else those at start;
    ``worker``: this process is one of several workers (else the only process)."""
    settings = runtime.settings
    tls = ServerTls.for_settings(settings)
    ssl_context = tls.context if tls is not None else None
    leads = worker is None or worker.leads
    app = create_app(
        runtime, scheduler=leads, shared_metrics=None if worker is None else worker.metrics_dir
    )
    supervisor = PostgresSupervisor(embedded) if embedded is not None else None
    if supervisor is not None:
        app[DATABASE_SUPERVISOR] = supervisor
    elif worker is not None and worker.postgres is not None:
        app[DATABASE_SUPERVISOR] = worker.postgres
    app[RELOADER] = Reloader(
        settings,
        read_settings or (lambda: settings),
        runtime.catalog,
        tls,
        lambda new: apply_live_settings(app, settings, new),
        None if worker is None else worker.index,
    )
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=10)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    # SIGHUP: the config file and the catalog again (satellite.reload); new TLS connections
    # use the renewed certificate, existing ones keep theirs.
    loop.add_signal_handler(signal.SIGHUP, app[RELOADER].reload)
    if worker is not None and tls is not None:
        # SIGUSR1: the leader renewed the certificate (the parent passes it on).
        loop.add_signal_handler(signal.SIGUSR1, tls.reload)
    watchdog: asyncio.Task[None] | None = None
    renewals: asyncio.Task[None] | None = None
    metrics: web.AppRunner | None = None
    try:
        if supervisor is not None:
            supervisor.start()
        for address in settings.listen_addresses:
            # (Workers: each process binds the same addresses; the kernel spreads the
            # connections over them.)
            site = web.TCPSite(
                runner,
                address.host,
                address.port,
                ssl_context=ssl_context,
                reuse_address=True,
                reuse_port=worker is not None,
            )
            await site.start()
        metrics = await start_own_listener(app) if leads else None
        scheme = "https" if ssl_context else "http"
        bound = [f"{scheme}://{_format(address)}" for address in runner.addresses]
        log.info("daemon.listening", addresses=bound, role=settings.role)
        if announce is not None:
            announce(console_urls(scheme, runner.addresses))
        if tls is not None and settings.tls.managed and leads:
            # (settings.timers is the running timers object: a reload changes it in place)
            renewals = asyncio.create_task(
                tls.renew_periodically(
                    lambda: dt.timedelta(minutes=settings.timers.jobs_interval_minutes),
                    None if worker is None else worker.renewed,
                )
            )
        if worker is not None:
            app[RELOADER].catch_up()
            worker.ready()  # (the parent tells systemd, and keeps its watchdog)
        else:
            systemd.notify("READY=1\nSTATUS=serving")
            interval = systemd.watchdog_interval()
            if interval:
                watchdog = asyncio.create_task(
                    watchdog_loop(
                        lambda: _ready(app), interval, settings.systemd.watchdog_not_ready_seconds
                    )
                )
        await stop.wait()
        log.info("daemon.stopping")
        if worker is None:
            systemd.notify("STOPPING=1")
    finally:
        if watchdog is not None:
            watchdog.cancel()
        if renewals is not None:
            renewals.cancel()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            loop.remove_signal_handler(signum)
        if metrics is not None:
            await metrics.cleanup()
        await runner.cleanup()
        if supervisor is not None:
            await supervisor.stop()
        log.info("daemon.stopped")


def console_urls(
    scheme: str, addresses: Sequence[tuple[str, int] | tuple[str, int, int, int]]
) -> list[str]:
    """A URL a browser on this host opens for each bound address: an address of every
    interface (0.0.0.0, ::) is reached at the loopback of its family."""
    loopback = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 (names, not a bind)
    urls = [f"{scheme}://{_format((loopback.get(a[0], a[0]), a[1]))}/" for a in addresses]
    return list(dict.fromkeys(urls))


def _format(address: tuple[str, int]) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _ready(app: web.Application) -> bool:
    try:
        await health.check_ready(app[SERVICES].db, app[MIGRATIONS])
    except SatelliteError:
        return False
    return True


async def watchdog_loop(
    is_ready: Callable[[], Awaitable[bool]], interval: float, not_ready_seconds: float
) -> None:
    """WATCHDOG=1 every ``interval`` while the daemon can do its work, and for at most
    ``not_ready_seconds`` after it last could: then systemd restarts a daemon that does not
    recover (its database gone for good, a schema it does not match)."""
    last_ready = time.monotonic()
    withheld = False
    while True:
        try:
            async with asyncio.timeout(interval):
                ready = await is_ready()
        except TimeoutError:
            ready = False
        now = time.monotonic()
        if ready:
            last_ready = now
            if withheld:
                log.info("watchdog.resumed")
                systemd.notify("STATUS=serving")
                withheld = False
        if now - last_ready <= not_ready_seconds:
            systemd.notify("WATCHDOG=1")
        elif not withheld:
            log.error("watchdog.withheld", not_ready_seconds=round(now - last_ready, 1))
            systemd.notify("STATUS=database unavailable: watchdog withheld")
            withheld = True
        await asyncio.sleep(interval)
