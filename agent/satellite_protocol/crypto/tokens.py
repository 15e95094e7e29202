"""What a product computes from its registration token: the token's name on the wire and
the proof that it holds the token, bound to a request's nonce and key. The server checks
both by computing the same."""

from __future__ import annotations

import base64
import hashlib
import hmac


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def secret_digest(secret: str) -> bytes:
    """SHA-256 of a high-entropy secret (access tokens, client secrets, registration tokens).

    A slow hash adds nothing for 256-bit random values; passwords use argon2 instead.
    """
    return hashlib.sha256(utf8_bytes(secret)).digest()


def token_id(token: str) -> str:
    """How a product names its registration token on the wire: the digest the server
    looks tokens up by. The token itself never travels."""
    return b64url(secret_digest(token))


def token_proof(token: str, nonce: str, key_thumbprint: str) -> str:
    """Proof that the sender holds ``token``, bound to this request's nonce and key."""
    message = f"satellite-register|{nonce}|{key_thumbprint}".encode()
    return b64url(hmac.new(token.encode("utf-8"), message, hashlib.sha256).digest())


def utf8_bytes(text: str) -> bytes:
    """Text from a request as bytes, whatever it holds: compare_digest refuses ``str`` with
    non-ASCII characters, and a header's undecodable bytes arrive as lone surrogates."""
    return text.encode("utf-8", "surrogatepass")
