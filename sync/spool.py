"""Where bundles in transit are kept: files in a private directory, removed afterwards,
and bundles arriving over HTTP taken in only once their first line says they may be."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from satellite.config import Settings
from satellite.errors import PayloadTooLarge
from sync.bundle import MAX_LINE_BYTES, BundleError, Header, decode_header


class Spool:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @property
    def path(self) -> Path:
        sync = self._settings.sync
        path = Path(sync.spool_dir) if sync.spool_dir else self._settings.state_path / "sync"
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    @contextlib.contextmanager
    def files(self, *names: str) -> Iterator[list[Path]]:
        """Paths for bundles in transit, in a directory of their own, removed afterwards."""
        directory = Path(tempfile.mkdtemp(dir=self.path, prefix="run-"))
        try:
            yield [directory / name for name in names]
        finally:
            for child in directory.iterdir():
                child.unlink()
            directory.rmdir()


def partial_path(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place (same directory, so the
    rename is atomic): an output file is whole, or not there."""
    return path.with_name(f".{path.name}.partial")


def write_atomically(path: Path, data: bytes) -> None:
    """``data`` to ``path``, whole or not at all, mode 0600: a registration request holds
    the satellite token. The temporary file is new and of a unique name (mkstemp: 0600,
    O_EXCL): a file of a known name could be made beforehand, and kept open, by another
    user of the directory."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class Incoming:
    """A bundle arriving as a stream of chunks: its first line is read (bounded) and
    parsed before anything else, so that the receiver decides whether, and how much of
    it, to take in."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()

    async def header(self) -> Header:
        """The header, not yet trusted: only for choosing what to check next."""
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_LINE_BYTES:
                raise BundleError("the bundle's first line is too long")
            chunk = await anext(self._chunks, None)
            if chunk is None:
                raise BundleError("this is not a satellite sync bundle (no header line)")
            self._buffer += chunk
        first = bytes(self._buffer[: self._buffer.index(b"\n") + 1])
        return decode_header(first)

    async def save(self, path: Path, limit: int) -> None:
        """The whole bundle to ``path``, refused beyond ``limit`` bytes."""
        written = len(self._buffer)
        with path.open("wb") as out:
            out.write(self._buffer)
            while written <= limit:
                chunk = await anext(self._chunks, None)
                if chunk is None:
                    return
                written += len(chunk)
                out.write(chunk)
        raise PayloadTooLarge(f"the bundle is larger than the limit of {limit} bytes")
