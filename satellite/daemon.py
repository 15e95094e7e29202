"""``satellite serve``: listen on every configured address until SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import ssl
from pathlib import Path

import structlog
from aiohttp import web

from satellite import systemd
from satellite.app import create_app
from satellite.config import Settings
from satellite.errors import ConfigError
from satellite.runtime import Runtime, key_paths

log = structlog.get_logger("satellite.daemon")


def tls_files(settings: Settings) -> tuple[Path, Path] | None:
    """The configured certificate and key, else the state directory's (from ``init``)."""
    if settings.tls.certificate and settings.tls.key:
        return Path(settings.tls.certificate), Path(settings.tls.key)
    paths = key_paths(settings)
    if paths.tls_cert.exists() and paths.tls_key.exists():
        return paths.tls_cert, paths.tls_key
    return None


def _ssl_context(files: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(files[0], files[1])
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"tls: cannot load {files[0]} / {files[1]}: {exc}") from exc
    return context


async def serve(runtime: Runtime) -> None:
    settings = runtime.settings
    files = tls_files(settings)
    ssl_context = _ssl_context(files) if files else None
    app = create_app(runtime, scheduler=True)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=10)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def reload() -> None:
        # New TLS connections use the renewed certificate; existing ones keep theirs.
        if ssl_context is not None and files is not None:
            try:
                ssl_context.load_cert_chain(files[0], files[1])
                log.info("tls.reloaded", certificate=str(files[0]))
            except (OSError, ssl.SSLError) as exc:
                log.error("tls.reload_failed", error=str(exc))

    loop.add_signal_handler(signal.SIGHUP, reload)
    watchdog: asyncio.Task[None] | None = None
    try:
        for address in settings.listen_addresses:
            site = web.TCPSite(
                runner, address.host, address.port, ssl_context=ssl_context, reuse_address=True
            )
            await site.start()
        scheme = "https" if ssl_context else "http"
        bound = [f"{scheme}://{_format(address)}" for address in runner.addresses]
        log.info("daemon.listening", addresses=bound, role=settings.role)
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
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        await runner.cleanup()
        log.info("daemon.stopped")


def _format(address: tuple[str, int]) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _watchdog(interval: float) -> None:
    while True:
        systemd.notify("WATCHDOG=1")
        await asyncio.sleep(interval)
