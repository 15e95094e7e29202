"""The sealed stream a backup is written in: many chunks come back whole; chunks dropped at a
chunk boundary, swapped, or sealed under another passphrase are refused. And the DSN pg_dump is
given keeps its password off the command line."""

from __future__ import annotations

import io
import os
import struct

import pytest

from satellite.crypto.sealed import CHUNK_BYTES, TAG_BYTES, SealedWriter, unseal
from satellite.errors import BackupError
from satellite.storage.dump import tool_connection

pytestmark = pytest.mark.unit

PASSPHRASE = "correct horse battery staple"
HEADER_AND_CHECK = len(b"SATBACKUP1\n") + 3 + 16 + 7 + 32


def seal(data: bytes, passphrase: str = PASSPHRASE) -> bytes:
    out = io.BytesIO()
    writer = SealedWriter(out, passphrase)
    for at in range(0, len(data), 10_000):  # written in pieces that are not chunks
        writer.write(data[at : at + 10_000])
    writer.close()
    return out.getvalue()


def opened(sealed: bytes, passphrase: str = PASSPHRASE) -> bytes:
    return b"".join(unseal(io.BytesIO(sealed), passphrase, "the backup"))


def chunks(sealed: bytes) -> list[bytes]:
    """The framed chunks (length and ciphertext) after the header."""
    found, at = [], HEADER_AND_CHECK
    while at < len(sealed):
        (size,) = struct.unpack(">I", sealed[at : at + 4])
        found.append(sealed[at : at + 4 + size])
        at += 4 + size
    return found


@pytest.mark.parametrize("size", [0, 1, CHUNK_BYTES, 3 * CHUNK_BYTES, 3 * CHUNK_BYTES + 17])
def test_what_is_sealed_comes_back_whole(size: int) -> None:
    data = os.urandom(size)
    sealed = seal(data)
    assert opened(sealed) == data
    assert all(len(chunk) <= 4 + CHUNK_BYTES + TAG_BYTES for chunk in chunks(sealed))


def test_a_stream_cut_at_a_chunk_boundary_is_truncated() -> None:
    sealed = seal(os.urandom(3 * CHUNK_BYTES + 17))
    parts = chunks(sealed)
    assert len(parts) == 4
    cut = sealed[:HEADER_AND_CHECK] + b"".join(parts[:-1])
    with pytest.raises(BackupError, match="truncated"):
        opened(cut)


def test_chunks_swapped_do_not_authenticate() -> None:
    sealed = seal(os.urandom(3 * CHUNK_BYTES))
    parts = chunks(sealed)
    swapped = sealed[:HEADER_AND_CHECK] + b"".join([parts[1], parts[0], *parts[2:]])
    with pytest.raises(BackupError, match="part 0 does not authenticate"):
        opened(swapped)


def test_another_passphrase_and_a_changed_header_are_told_apart_from_damage() -> None:
    sealed = seal(b"keys and a database")
    with pytest.raises(BackupError, match="does not open with this passphrase"):
        opened(sealed, "another passphrase")
    changed = bytearray(sealed)
    changed[HEADER_AND_CHECK - 40] ^= 1  # a byte of the salt
    with pytest.raises(BackupError, match="does not open with this passphrase"):
        opened(bytes(changed))
    with pytest.raises(BackupError, match="not a satellite backup"):
        opened(b"PGDMP" + sealed[5:])
    with pytest.raises(BackupError, match="data follows its last part"):
        opened(sealed + b"x")


def test_a_dsn_password_goes_to_pg_dump_in_its_environment_not_its_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SATELLITE_BACKUP_PASSPHRASE", PASSPHRASE)
    dsn, env = tool_connection("postgresql://sat:p%40ss@db.example:5432/satellite?sslmode=require")
    assert dsn == "postgresql://sat@db.example:5432/satellite?sslmode=require"
    assert env["PGPASSWORD"] == "p@ss"
    dsn, env = tool_connection("postgresql://postgres@/satellite?host=/run/pg")
    assert "SATELLITE_BACKUP_PASSPHRASE" not in env
    assert dsn == "postgresql://postgres@/satellite?host=/run/pg"
