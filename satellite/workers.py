"""``satellite serve --workers N``: the parent process and its N workers.

The parent owns what there is one of: the embedded PostgreSQL and its supervisor (the
migrations ran before it starts the workers; the workers' /readyz and metrics show the
supervisor's status, from a file the parent rewrites when it changes), systemd's
notifications and watchdog, the workers themselves. Each worker is ``satellite serve
--worker I`` (satellite.daemon with a ``WorkerPart``) and accepts on every listen address
with SO_REUSEPORT; worker 0 leads: it alone runs the scheduled jobs, the webhook
deliveries, the certificate's renewal and the metrics' own listener (whose scrape counts
every worker's requests: satellite.http.metrics).

Signals: SIGTERM/SIGINT stop the workers (SIGTERM, a bounded wait, then SIGKILL), then the
supervisor; SIGHUP goes to every worker (each reads the config again; the parent takes its
log settings); SIGUSR1, from the leader once it serves a renewed certificate, goes to every
worker (each loads it again); a worker still starting gets them once it listens (until then
their default action would end it). A worker that exits is started again after a wait that
grows, on the settings the daemon started with (what the config file says since applied as
a SIGHUP would, and what needs a restart logged); one that exits ``MAX_FAILURES`` times in
a row, each time within ``STEADY_SECONDS`` of its start, stops the daemon with an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import structlog

from satellite import systemd
from satellite.config import Settings
from satellite.crypto.keys import replace_file
from satellite.daemon import WorkerPart, watchdog_loop
from satellite.errors import ConfigError, SatelliteError
from satellite.http.metrics import MULTIPROCESS_DIR
from satellite.logging import configure_logging
from satellite.services import health
from satellite.storage.db import Database
from satellite.storage.embedded import EmbeddedPostgres
from satellite.storage.supervisor import PostgresSupervisor, SupervisorStatus
from satellite.wiring import Runtime
from satellite.workers_plan import Plan, fit_connections, refuse_taken_addresses
from satellite_protocol.backoff import Backoff

log = structlog.get_logger("satellite.workers")

# What the parent tells a worker, besides its command line (``--worker I``).
DSN_ENV = "SATELLITE_WORKER_DSN"  # the embedded PostgreSQL's (a socket path, no secret)
READY_FD_ENV = "SATELLITE_WORKER_READY_FD"  # written once the worker listens
PARENT_ENV = "SATELLITE_WORKER_PARENT"  # the parent's pid
POSTGRES_STATUS_ENV = "SATELLITE_WORKER_POSTGRES_STATUS"  # the supervisor's status, a file
SETTINGS_ENV = "SATELLITE_WORKER_SETTINGS"  # the settings the daemon started with, a file
_NOT_INHERITED = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")  # systemd's: the parent's

STATUS_SECONDS = 0.25  # how often the parent looks at the supervisor's status
START_SECONDS = 120.0  # from a worker's start until it listens
RESTART_BACKOFF = Backoff(0.5, 10.0)
STEADY_SECONDS = 30.0  # a worker that ran this long before it exited was not failing
MAX_FAILURES = 5
_PR_SET_PDEATHSIG = 1


class WorkerFailed(SatelliteError):
    """A worker of the daemon kept exiting: the daemon stopped."""


@dataclass
class _Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    failures: int = 0  # exits in a row, each soon after its start
    listening: asyncio.Event = field(default_factory=asyncio.Event)  # (once, at the start)
    serving: bool = False  # this process listens: it has its handlers of SIGHUP and SIGUSR1
    # Signals for this worker while it was not serving (their default action would end a
    # process still starting): passed on once it serves.
    pending: list[int] = field(default_factory=list)


class Workers:
    def __init__(
        self,
        count: int,
        command: Callable[[int], list[str]],
        env: dict[str, str],
        prepare: Callable[[], None],
        stop_seconds: float,
    ) -> None:
        """``command``: worker I's command line; ``env``: its environment; ``prepare``:
        writes the files a worker reads at its start (before each start: a cleaner of /tmp
        may have removed those of the daemon's start since); ``stop_seconds``: how long a
        worker told to stop may take."""
        self._workers = [_Worker(index) for index in range(count)]
        self._command = command
        self._env = env
        self._prepare = prepare
        self._stop_seconds = stop_seconds
        self._stopping = False
        self.failed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process is not None]

    async def start(self) -> None:
        """Start every worker; return once each listens (or raise WorkerFailed)."""
        for worker in self._workers:
            self._tasks.append(asyncio.create_task(self._keep(worker)))

        async def all_listening() -> None:
            for worker in self._workers:
                await worker.listening.wait()

        listening = asyncio.create_task(all_listening())
        waits: set[asyncio.Future[Any]] = {listening, self.failed}
        await asyncio.wait(waits, timeout=START_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        if self.failed.done():
            raise WorkerFailed(self.failed.result())
        if not listening.done() or listening.cancelled():
            raise WorkerFailed(f"the workers did not listen within {START_SECONDS:.0f} s")

    def signal(self, signum: int) -> None:
        """Pass ``signum`` (SIGHUP, SIGUSR1) on to every worker: now to those that serve,
        to the others once they do."""
        for worker in self._workers:
            if worker.serving:
                _send(worker, signum)
            elif signum not in worker.pending:
                worker.pending.append(signum)

    async def stop(self) -> None:
        """SIGTERM to every worker; SIGKILL to those still running after ``stop_seconds``
        (``workers_stop_seconds``: its runner waits up to 10 s for the requests it
        answers, worker 0 also for a webhook delivery under way)."""
        self._stopping = True
        # (First no more starts: then every process there is gets the signal.)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        running = [w.process for w in self._workers if w.process is not None]
        for worker in self._workers:
            _send(worker, signal.SIGTERM)  # (starting or not: its default action ends it)
        waits = [asyncio.create_task(p.wait()) for p in running]
        if waits:
            await asyncio.wait(waits, timeout=self._stop_seconds)
        for process in running:
            if process.returncode is None:
                log.error("daemon.worker_killed", pid=process.pid, after_seconds=self._stop_seconds)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

    def stopping(self) -> bool:
        return self._stopping

    async def _keep(self, worker: _Worker) -> None:
        """Run ``worker``, and again each time it exits, until the daemon stops."""
        while not self.stopping():
            code = await self._run(worker)
            if self.stopping():
                return
            ran = time.monotonic() - worker.started_at
            worker.failures = 1 if ran >= STEADY_SECONDS else worker.failures + 1
            if worker.failures >= MAX_FAILURES:
                reason = (
                    f"worker {worker.index} exited {worker.failures} times in a row, "
                    f"each within {STEADY_SECONDS:.0f} s of its start (last exit code {code})"
                )
                log.error("daemon.worker_failing", worker=worker.index, exit_code=code)
                if not self.failed.done():
                    self.failed.set_result(reason)
                return
            wait = RESTART_BACKOFF.wait(worker.failures)
            log.error(
                "daemon.worker_exited",
                worker=worker.index,
                exit_code=code,
                ran_seconds=round(ran, 1),
                restart_in_seconds=round(wait, 1),
            )
            await asyncio.sleep(wait)

    async def _run(self, worker: _Worker) -> int:
        read, write = os.pipe()
        env = self._env | {READY_FD_ENV: str(write)}
        try:
            self._prepare()
            worker.process = await asyncio.create_subprocess_exec(
                *self._command(worker.index), env=env, pass_fds=(write,), start_new_session=True
            )
        except OSError as exc:
            os.close(read)
            log.error("daemon.worker_not_started", worker=worker.index, error=str(exc))
            worker.started_at = time.monotonic()
            return 127  # (as a shell says of a command it cannot run)
        finally:
            os.close(write)
        worker.started_at = time.monotonic()
        log.info("daemon.worker_started", worker=worker.index, pid=worker.process.pid)
        try:
            # (b"" when it exits first: the pipe's only writer is gone.)
            if await asyncio.to_thread(os.read, read, 16) == b"ready":
                worker.serving = True
                for signum in worker.pending:
                    _send(worker, signum)
                worker.pending.clear()
                worker.listening.set()
            return await worker.process.wait()
        finally:
            worker.serving = False
            os.close(read)


def _send(worker: _Worker, signum: int) -> None:
    if worker.process is not None and worker.process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            worker.process.send_signal(signum)


async def run_parent(
    runtime: Runtime,
    embedded: EmbeddedPostgres | None,
    workers_plan: Plan,
    command: Callable[[int], list[str]],
    read_settings: Callable[[], Settings],
    announce: Callable[[], None] | None = None,
) -> None:
    """Serve with the planned workers until SIGTERM (or until one keeps failing);
    ``read_settings``: the settings as the config file says now (SIGHUP)."""
    settings = runtime.settings
    # One connection of the parent's own: the connections' check, the watchdog's readiness.
    db = await Database.connect(
        runtime.dsn, msgspec.structs.replace(settings.database, pool_min_size=1, pool_max_size=1)
    )
    try:
        count = await fit_connections(db, settings, workers_plan)
    except ConfigError:
        await db.close()
        raise
    run_dir = Path(tempfile.mkdtemp(prefix="satellite-workers-"))  # (mode 0700)
    metrics_dir = run_dir / "metrics"
    metrics_dir.mkdir()
    status_file = run_dir / "embedded-postgres.json"
    settings_file = run_dir / "settings.json"
    encoded_settings = msgspec.json.encode(settings)
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    env |= {MULTIPROCESS_DIR: str(metrics_dir), PARENT_ENV: str(os.getpid())}
    env |= {SETTINGS_ENV: str(settings_file)}
    supervisor = PostgresSupervisor(embedded) if embedded is not None else None
    if supervisor is not None:
        env |= {DSN_ENV: runtime.dsn, POSTGRES_STATUS_ENV: str(status_file)}

    def prepare() -> None:
        run_dir.mkdir(mode=0o700, exist_ok=True)
        metrics_dir.mkdir(exist_ok=True)
        # (The settings may hold the database's password: this user's alone.)
        replace_file(settings_file, encoded_settings, 0o600)
        if supervisor is not None and not status_file.exists():  # (else _share_status's)
            _write_status(status_file, supervisor.status())

    workers = Workers(count, command, env, prepare, settings.workers_stop_seconds)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: _reload(workers, read_settings))
    loop.add_signal_handler(signal.SIGUSR1, lambda: workers.signal(signal.SIGUSR1))
    watchdog: asyncio.Task[None] | None = None
    sharing: asyncio.Task[None] | None = None
    try:
        if supervisor is not None:
            supervisor.start()
            sharing = asyncio.create_task(_share_status(supervisor, status_file))
        refuse_taken_addresses(settings)
        stopped = asyncio.create_task(stop.wait())
        starting = asyncio.create_task(workers.start())
        await asyncio.wait({stopped, starting}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # (WorkerFailed: one kept exiting before all listened)
            log.info("daemon.workers_listening", workers=count, pids=workers.pids)
            if announce is not None:
                announce()
            systemd.notify(f"READY=1\nSTATUS=serving with {count} workers")
            watchdog = _start_watchdog(db, runtime)
            waits: set[asyncio.Future[Any]] = {stopped, workers.failed}
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        else:  # (stopped while the workers started)
            starting.cancel()
        stopped.cancel()
        log.info("daemon.stopping")
        systemd.notify("STOPPING=1")
    finally:
        for task in (watchdog, sharing):
            if task is not None:
                task.cancel()
        try:
            await workers.stop()
            await db.close()
            if supervisor is not None:
                await supervisor.stop()
        finally:
            # (Only now: a second SIGINT or SIGTERM during the stop, Ctrl-C twice, would
            # else end the parent with a worker still running and PostgreSQL not stopped.)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
                loop.remove_signal_handler(signum)
        shutil.rmtree(run_dir, ignore_errors=True)
        log.info("daemon.stopped")
    if workers.failed.done():
        raise WorkerFailed(workers.failed.result())


def _reload(workers: Workers, read_settings: Callable[[], Settings]) -> None:
    """SIGHUP: every worker reloads (satellite.reload); the parent takes the new log
    settings (a config it cannot read: each worker logs why)."""
    workers.signal(signal.SIGHUP)
    with contextlib.suppress(ConfigError):
        configure_logging(read_settings().log)


def _start_watchdog(db: Database, runtime: Runtime) -> asyncio.Task[None] | None:
    """systemd's watchdog, as a daemon of one process keeps it, on the parent's connection."""
    interval = systemd.watchdog_interval()
    if not interval:
        return None

    async def ready() -> bool:
        try:
            await health.check_ready(db, runtime.migrations)
        except SatelliteError:
            return False
        return True

    not_ready = runtime.settings.systemd.watchdog_not_ready_seconds
    return asyncio.create_task(watchdog_loop(ready, interval, not_ready))


def started_settings() -> Settings:
    """In a worker: the settings the daemon started with (a worker started again later
    serves as the others do, whatever the config file says now: satellite.reload tells what
    changed there)."""
    try:
        return msgspec.json.decode(Path(os.environ[SETTINGS_ENV]).read_bytes(), type=Settings)
    except (KeyError, OSError, msgspec.DecodeError) as exc:
        raise ConfigError("--worker: the daemon's settings cannot be read") from exc


def _write_status(path: Path, status: SupervisorStatus) -> None:
    replace_file(path, msgspec.json.encode(status), 0o600)  # (a worker reads it at any moment)


async def _share_status(supervisor: PostgresSupervisor, path: Path) -> None:
    """Tell the workers what the supervisor says each time it changes (their /readyz and
    metrics show it)."""
    shared = supervisor.status()
    while True:
        await asyncio.sleep(STATUS_SECONDS)
        status = supervisor.status()
        if status != shared:
            await asyncio.to_thread(_write_status, path, status)
            shared = status


class SharedStatus:
    """In a worker: the supervisor's status as the parent last wrote it."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._last = SupervisorStatus("running", 0, 0)
        self.status()

    def status(self) -> SupervisorStatus:
        try:
            self._last = msgspec.json.decode(self._path.read_bytes(), type=SupervisorStatus)
        except (OSError, msgspec.DecodeError) as exc:
            log.warning("daemon.postgres_status_unreadable", error=str(exc))
        return self._last


def worker_part(index: int) -> WorkerPart:
    """What worker ``index`` (this process) was told by its parent, and how it tells the
    parent it listens and that a renewed certificate is served. It stops when the parent
    dies (even by SIGKILL): no worker outlives its daemon."""
    try:
        parent = int(os.environ[PARENT_ENV])
        ready_fd = int(os.environ[READY_FD_ENV])
        metrics_dir = os.environ[MULTIPROCESS_DIR]
    except (KeyError, ValueError) as exc:
        raise ConfigError("--worker: only a daemon's parent process starts a worker") from exc
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # (it died before the line above)
        raise WorkerFailed("the daemon's parent process is gone")

    def ready() -> None:
        with contextlib.suppress(OSError):  # (the parent is gone: this worker stops too)
            os.write(ready_fd, b"ready")
        os.close(ready_fd)

    status = os.environ.get(POSTGRES_STATUS_ENV)
    postgres = SharedStatus(Path(status)) if status else None
    renewed = functools.partial(os.kill, parent, signal.SIGUSR1)
    return WorkerPart(index, ready, renewed, postgres, metrics_dir)


def worker_dsn(settings: Settings) -> str:
    """The database a worker uses: the parent's embedded PostgreSQL, else the config's."""
    return os.environ.get(DSN_ENV) or settings.database.dsn or ""
