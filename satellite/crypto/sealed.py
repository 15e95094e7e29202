"""A passphrase-sealed stream (what ``satellite backup`` writes): scrypt, then AES-256-GCM
in chunks, so that a large database dump is never held whole.

The file is a header, then chunks. The header holds the format, the scrypt parameters, a
random salt and nonce prefix, and an HMAC-SHA256 of those under a key derived with the
encryption key: a wrong passphrase is told apart from a changed file before any chunk is
read. Each chunk is ``length (4 bytes) || ciphertext`` sealed with a nonce of the prefix,
the chunk's number and a last-chunk flag, and the header as associated data (the STREAM
construction): a chunk changed, moved, dropped or cut off, and a file cut at a chunk's
boundary, all fail to authenticate.
"""

from __future__ import annotations

import hmac
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from hashlib import sha256
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from satellite.errors import BackupError

MAGIC = b"SATBACKUP1\n"
CHUNK_BYTES = 64 * 1024
TAG_BYTES = 16
SALT_BYTES = 16
PREFIX_BYTES = 7
# scrypt cost: 2**15 x 8 x 128 bytes = 32 MiB of memory, a fraction of a second.
SCRYPT_LOG_N = 15
SCRYPT_R = 8
SCRYPT_P = 1
# A header is read before it is authenticated: its cost is bounded (2**20 is 1 GiB).
MAX_SCRYPT_LOG_N = 20
MAX_SCRYPT_R = 16
MAX_SCRYPT_P = 4
_PARAMS = struct.Struct(">BBB")
_LENGTH = struct.Struct(">I")
_HEADER_BYTES = len(MAGIC) + _PARAMS.size + SALT_BYTES + PREFIX_BYTES
_CHECK_BYTES = 32


@dataclass(frozen=True)
class _Keys:
    cipher: AESGCM
    check: bytes


def _derive(passphrase: str, salt: bytes, log_n: int, r: int, p: int) -> _Keys:
    material = Scrypt(salt=salt, length=64, n=2**log_n, r=r, p=p).derive(passphrase.encode())
    return _Keys(AESGCM(material[:32]), material[32:])


def _nonce(prefix: bytes, number: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", number, 1 if last else 0)


class SealedWriter:
    """Writes a sealed stream to ``out``: ``write`` the plaintext, then ``close``."""

    def __init__(self, out: BinaryIO, passphrase: str) -> None:
        salt = os.urandom(SALT_BYTES)
        self._prefix = os.urandom(PREFIX_BYTES)
        self._header = MAGIC + _PARAMS.pack(SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P) + salt + self._prefix
        self._keys = _derive(passphrase, salt, SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P)
        self._out = out
        self._buffer = bytearray()
        self._number = 0
        out.write(self._header)
        out.write(hmac.new(self._keys.check, self._header, sha256).digest())

    def write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) > CHUNK_BYTES:
            self._seal(bytes(self._buffer[:CHUNK_BYTES]), last=False)
            del self._buffer[:CHUNK_BYTES]

    def close(self) -> None:
        """Seal what is left as the last chunk (empty when nothing is left)."""
        self._seal(bytes(self._buffer), last=True)
        self._buffer.clear()

    def _seal(self, plain: bytes, last: bool) -> None:
        nonce = _nonce(self._prefix, self._number, last)
        sealed = self._keys.cipher.encrypt(nonce, plain, self._header)
        self._out.write(_LENGTH.pack(len(sealed)) + sealed)
        self._number += 1


def _read_exactly(source: BinaryIO, size: int) -> bytes | None:
    """``size`` bytes, or None at the end of the file before them."""
    data = source.read(size)
    return data if len(data) == size else None


def unseal(source: BinaryIO, passphrase: str, name: str) -> Iterator[bytes]:
    """The plaintext of a sealed stream, chunk by chunk, each authenticated before it is
    yielded; BackupError (one sentence naming ``name``) when it is not this passphrase's,
    was changed, or was cut short."""
    header = _read_exactly(source, _HEADER_BYTES)
    if header is None or not header.startswith(MAGIC):
        raise BackupError(f"{name} is not a satellite backup")
    log_n, r, p = _PARAMS.unpack_from(header, len(MAGIC))
    if not (1 <= log_n <= MAX_SCRYPT_LOG_N and 1 <= r <= MAX_SCRYPT_R and 1 <= p <= MAX_SCRYPT_P):
        raise BackupError(f"{name} is damaged: its header names an unsupported key derivation")
    salt_at = len(MAGIC) + _PARAMS.size
    salt = header[salt_at : salt_at + SALT_BYTES]
    prefix = header[salt_at + SALT_BYTES :]
    check = _read_exactly(source, _CHECK_BYTES)
    if check is None:
        raise BackupError(f"{name} is truncated")
    keys = _derive(passphrase, salt, log_n, r, p)
    if not hmac.compare_digest(check, hmac.new(keys.check, header, sha256).digest()):
        raise BackupError(f"{name} does not open with this passphrase (or its header was changed)")
    number = 0
    while True:
        length = _read_exactly(source, _LENGTH.size)
        if length is None:
            raise BackupError(f"{name} is truncated (it ends before its last part)")
        (size,) = _LENGTH.unpack(length)
        if not TAG_BYTES <= size <= CHUNK_BYTES + TAG_BYTES:
            raise BackupError(f"{name} is damaged (part {number} has an impossible length)")
        sealed = _read_exactly(source, size)
        if sealed is None:
            raise BackupError(f"{name} is truncated (it ends inside part {number})")
        plain, last = _open_chunk(keys.cipher, prefix, number, sealed, header, name)
        yield plain
        if last:
            break
        number += 1
    if source.read(1):
        raise BackupError(f"{name} is damaged (data follows its last part)")


def _open_chunk(
    cipher: AESGCM, prefix: bytes, number: int, sealed: bytes, header: bytes, name: str
) -> tuple[bytes, bool]:
    """The chunk's plaintext and whether it is the last one."""
    for last in (False, True):
        try:
            return cipher.decrypt(_nonce(prefix, number, last), sealed, header), last
        except InvalidTag:
            continue
    raise BackupError(f"{name} was changed or is damaged (part {number} does not authenticate)")
