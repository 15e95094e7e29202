"""``satellite backup`` and ``satellite restore``: the state directory's keys and a dump
of the database in one passphrase-sealed file.

Inside the seal: the length of a manifest (4 bytes), the manifest (JSON: the key files,
their modes and contents), then the ``pg_dump`` archive to the end. A restore reads the
whole file once to authenticate it before anything is written, then again to load it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import msgspec
import structlog

from satellite import __version__
from satellite.crypto.keys import KeyPaths, write_new
from satellite.crypto.sealed import SealedWriter, unseal
from satellite.domain.clock import utc_now
from satellite.errors import BackupError
from satellite.storage import dump

log = structlog.get_logger(__name__)

FORMAT = 1
MAX_MANIFEST_BYTES = 1024 * 1024
MIN_PASSPHRASE_CHARS = 8
# What of the state directory a backup holds: the key material (server keys, CA, TLS).
KEY_DIRS = ("keys", "tls")
_LENGTH = struct.Struct(">I")


class KeyFile(msgspec.Struct, frozen=True):
    path: str  # relative to the state directory, e.g. "keys/ca.key"
    mode: int
    data: bytes


class Manifest(msgspec.Struct, frozen=True):
    format: int
    satellite_version: str
    created: str
    files: list[KeyFile]


def check_passphrase(passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise BackupError(f"the passphrase must be at least {MIN_PASSPHRASE_CHARS} characters")


def _key_files(root: Path) -> list[KeyFile]:
    files = []
    for directory in KEY_DIRS:
        base = root / directory
        if not base.is_dir():
            continue
        for path in sorted(base.iterdir()):
            if path.is_file() and not path.is_symlink():
                mode = path.stat().st_mode & 0o777
                files.append(KeyFile(f"{directory}/{path.name}", mode, path.read_bytes()))
    return files


def check_output(out: Path) -> None:
    """Refuse an ``out`` whose folder is not there (before a passphrase is asked for)."""
    if not out.parent.is_dir():
        raise BackupError(f"{out.parent} is not a folder: cannot write {out}")


def write_backup(paths: KeyPaths, dsn: str, out: Path, passphrase: str) -> Manifest:
    """Write the backup to ``out`` (mode 0600; replaced only once the new one is whole)."""
    check_output(out)
    check_passphrase(passphrase)
    manifest = Manifest(FORMAT, __version__, utc_now().isoformat(), _key_files(paths.root))
    if not any(f.path == "keys/ca.key" for f in manifest.files):
        raise BackupError(f"{paths.root} holds no server keys: nothing to back up")
    encoded = msgspec.json.encode(manifest)
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        # (named by the file asked for: the partial one beside it is ours)
        raise BackupError(f"cannot write {out}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            writer = SealedWriter(handle, passphrase)
            writer.write(_LENGTH.pack(len(encoded)) + encoded)
            with dump.dump(dsn) as blocks:
                for block in blocks:
                    writer.write(block)
            writer.close()
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    log.info("backup.written", path=str(out), key_files=len(manifest.files))
    return manifest


class _Plain:
    """The unsealed plaintext as a stream: the manifest first, then the dump's blocks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def take(self, size: int) -> bytes | None:
        while len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                return None
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def rest(self) -> Iterator[bytes]:
        if self._buffer:
            yield self._buffer
            self._buffer = b""
        yield from self._chunks


def _manifest(plain: _Plain, name: str) -> Manifest:
    length = plain.take(_LENGTH.size)
    if length is None or not 0 < _LENGTH.unpack(length)[0] <= MAX_MANIFEST_BYTES:
        raise BackupError(f"{name} holds no manifest")
    encoded = plain.take(_LENGTH.unpack(length)[0])
    if encoded is None:
        raise BackupError(f"{name} holds no manifest")
    try:
        manifest = msgspec.json.decode(encoded, type=Manifest)
    except msgspec.ValidationError as exc:
        raise BackupError(f"{name} holds an unreadable manifest: {exc}") from exc
    if manifest.format != FORMAT:
        raise BackupError(f"{name} is of backup format {manifest.format}, not {FORMAT}")
    for file in manifest.files:
        parts = PurePosixPath(file.path).parts
        if len(parts) != 2 or parts[0] not in KEY_DIRS or parts[1] in (".", ".."):
            raise BackupError(f"{name} names a key file outside the key directories")
    return manifest


def verify_backup(source: Path, passphrase: str) -> Manifest:
    """Read the whole backup and authenticate it; its manifest. Writes nothing."""
    with source.open("rb") as handle:
        plain = _Plain(unseal(handle, passphrase, str(source)))
        manifest = _manifest(plain, str(source))
        for _ in plain.rest():
            pass
    return manifest


def check_empty_state_dir(root: Path) -> None:
    """A restore goes only where there is nothing: no keys, no database, nothing at all."""
    if not root.exists():
        return
    if not root.is_dir():
        raise BackupError(f"{root} is not a directory")
    present = sorted(entry.name for entry in root.iterdir())
    if present:
        raise BackupError(
            f"state directory {root} is not empty (it holds {', '.join(present[:5])}): "
            "restore only onto an empty one"
        )


def check_empty_database(dsn: str) -> None:
    if not dump.database_is_empty(dsn):
        raise BackupError("the database is not empty: restore only onto an empty database")


def restore_database(source: Path, passphrase: str, dsn: str) -> None:
    """Load the backup's dump into the empty database at ``dsn`` (one transaction)."""
    with source.open("rb") as handle:
        plain = _Plain(unseal(handle, passphrase, str(source)))
        _manifest(plain, str(source))
        dump.restore(dsn, plain.rest())


def restore_keys(manifest: Manifest, root: Path) -> None:
    """Write the backup's key files into the state directory (none may exist there)."""
    for file in manifest.files:
        path = root / file.path
        # As it was, but never executable or writable by others (0600 keys stay 0600).
        if not write_new(path, file.data, file.mode & 0o644):
            raise BackupError(f"{path} exists already")
    log.info("backup.keys_restored", state_dir=str(root), key_files=len(manifest.files))


def remove_restored(root: Path, existed: bool) -> None:
    """Undo a restore that failed part way: remove what it creates (the state directory was
    empty, or absent, when it began)."""
    for name in (*KEY_DIRS, "pgdata"):
        shutil.rmtree(root / name, ignore_errors=True)
    if not existed:
        with contextlib.suppress(OSError):
            root.rmdir()
