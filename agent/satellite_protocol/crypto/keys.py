"""The P-256 keys a product holds: its identity key (it signs device API requests) and its
reservation key (it signs SLR confirmation and return codes)."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

PrivateKey = ec.EllipticCurvePrivateKey
PublicKey = ec.EllipticCurvePublicKey


def new_private_key() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(pem: bytes) -> PrivateKey | None:
    """The EC private key of a PEM file (None: it holds another kind of key)."""
    key = serialization.load_pem_private_key(pem, password=None)
    return key if isinstance(key, ec.EllipticCurvePrivateKey) else None


def ec_public_key(key: object) -> PublicKey | None:
    """``key`` as an EC public key (None: it is another kind of key)."""
    return key if isinstance(key, ec.EllipticCurvePublicKey) else None
