"""``satellite serve``: listen on every configured address until SIGTERM."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal

import structlog
from aiohttp import web

from satellite import systemd
from satellite.app import create_app
from satellite.runtime import Runtime
from satellite.tls import ServerTls

log = structlog.get_logger("satellite.daemon")


async def serve(runtime: Runtime) -> None:
    settings = runtime.settings
    tls = ServerTls.for_settings(settings)
    ssl_context = tls.context if tls is not None else None
    app = create_app(runtime, scheduler=True)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=10)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    # SIGHUP: new TLS connections use the renewed certificate; existing ones keep theirs.
    # Plain HTTP has nothing to reload, but SIGHUP must not end the daemon.
    loop.add_signal_handler(signal.SIGHUP, tls.reload if tls is not None else _nothing)
    watchdog: asyncio.Task[None] | None = None
    renewals: asyncio.Task[None] | None = None
    try:
        for address in settings.listen_addresses:
            site = web.TCPSite(
                runner, address.host, address.port, ssl_context=ssl_context, reuse_address=True
            )
            await site.start()
        scheme = "https" if ssl_context else "http"
        bound = [f"{scheme}://{_format(address)}" for address in runner.addresses]
        log.info("daemon.listening", addresses=bound, role=settings.role)
        if tls is not None and settings.tls.managed:
            every = dt.timedelta(minutes=settings.timers.jobs_interval_minutes)
            renewals = asyncio.create_task(tls.renew_periodically(every))
        systemd.notify("READY=1\nSTATUS=serving")
        interval = systemd.watchdog_interval()
        if interval:
            watchdog = asyncio.create_task(_watchdog(interval))
        await stop.wait()
        log.info("daemon.stopping")
        systemd.notify("STOPPING=1")
    finally:
        if watchdog is not None:
            watchdog.cancel()
        if renewals is not None:
            renewals.cancel()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        await runner.cleanup()
        log.info("daemon.stopped")


def _nothing() -> None:
    pass


def _format(address: tuple[str, int]) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _watchdog(interval: float) -> None:
    while True:
        systemd.notify("WATCHDOG=1")
        await asyncio.sleep(interval)
