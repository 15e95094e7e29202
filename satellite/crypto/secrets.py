"""Random secrets, their hashes, constant-time checks and encryption at rest."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# What a product computes too lives in the agent distribution; the server names it from here.
from satellite_protocol.crypto.tokens import b64url as b64url
from satellite_protocol.crypto.tokens import secret_digest as secret_digest
from satellite_protocol.crypto.tokens import token_id as token_id
from satellite_protocol.crypto.tokens import token_proof as token_proof
from satellite_protocol.crypto.tokens import utf8_bytes as _utf8

_NONCE_BYTES = 12
_password_hasher = PasswordHasher()


def random_secret(nbytes: int = 32) -> str:
    """A URL-safe random string carrying ``nbytes`` bytes of entropy."""
    return secrets.token_urlsafe(nbytes)


def digests_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def _verify_password(password_hash: str, password: str) -> bool:
    try:
        return _password_hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# A fixed argon2 hash to verify against when a user does not exist, so that an unknown
# user name takes as long to refuse as a wrong password.
DUMMY_PASSWORD_HASH = _password_hasher.hash(secrets.token_urlsafe(16))


class Passwords:
    """argon2 hashing and checking in worker threads, a bounded number at a time.

    Each costs about a tenth of a second of CPU: on the event loop, a few unauthenticated
    password grants a second would stall every other request.
    """

    def __init__(self, concurrency: int = 2) -> None:
        self._slots = asyncio.Semaphore(concurrency)

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(_password_hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Check ``password``; with no hash (unknown user), spend the same time and fail."""
        async with self._slots:
            ok = await asyncio.to_thread(
                _verify_password, password_hash or DUMMY_PASSWORD_HASH, password
            )
        return ok and password_hash is not None


def encrypt(key: bytes, plaintext: str, associated_data: bytes) -> bytes:
    """AES-256-GCM; the result is nonce || ciphertext. ``associated_data`` binds it to its row."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext.encode("utf-8"), associated_data)


def decrypt(key: bytes, blob: bytes, associated_data: bytes) -> str:
    try:
        plain = AESGCM(key).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], associated_data)
    except InvalidTag as exc:
        raise ValueError("ciphertext does not match the server key") from exc
    return plain.decode("utf-8")


def new_symmetric_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def new_client_id() -> str:
    """A public identifier for an API client: short, random, recognizable."""
    return f"sat-{secrets.token_hex(8)}"


def _nonce_key(server_key: bytes) -> bytes:
    return hmac.new(server_key, b"satellite device nonce v1", hashlib.sha256).digest()


def issue_nonce(server_key: bytes, now: float) -> str:
    """A server nonce that needs no storage until used: time, randomness and a MAC."""
    body = f"{int(now)}.{secrets.token_urlsafe(12)}"
    mac = hmac.new(_nonce_key(server_key), body.encode(), hashlib.sha256).digest()[:16]
    return f"{body}.{b64url(mac)}"


def nonce_is_fresh(server_key: bytes, nonce: str, now: float, lifetime: float) -> bool:
    """True when this server issued ``nonce`` less than ``lifetime`` seconds ago.

    Whether it was used already is the caller's business (it records used ones).
    """
    body, _, mac = nonce.rpartition(".")
    issued, _, _ = body.partition(".")
    expected = b64url(hmac.new(_nonce_key(server_key), _utf8(body), hashlib.sha256).digest()[:16])
    if not hmac.compare_digest(_utf8(mac), expected.encode()) or not re.fullmatch(
        r"[0-9]+", issued
    ):
        return False
    return 0 <= now - int(issued) <= lifetime


def digest_of_token_id(value: str) -> bytes:
    """The lookup digest a ``token_id`` names (empty when it is not base64url)."""
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        return b""


def token_proof_is_valid(token: str, nonce: str, key_thumbprint: str, proof: str) -> bool:
    return hmac.compare_digest(token_proof(token, nonce, key_thumbprint).encode(), _utf8(proof))
