"""Signatures over sync bundles.

A bundle is written as a stream of lines; its signature is ECDSA P-256 over the SHA-256
of every byte before the signature line, so that a bundle of a million products is
signed and checked without holding it in memory.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import ExtendedKeyUsageOID

from satellite_protocol.crypto.keys import new_private_key
from satellite_protocol.crypto.keys import private_key_pem as private_key_pem
from satellite_protocol.crypto.pki import (
    certificate_fingerprint,
    issue_certificate,
    load_pem_certificate,
    to_pem,
)
from satellite_protocol.crypto.slr import load_private_key as slr_load_private_key
from satellite_protocol.crypto.slr import load_trusted_key, public_key_pem

_PREHASHED = ec.ECDSA(Prehashed(hashes.SHA256()))
PrivateKey = ec.EllipticCurvePrivateKey
PublicKey = ec.EllipticCurvePublicKey


class BundleSignatureError(ValueError):
    """The bundle's signature does not verify with the key it must be signed with."""


class BundleDigest:
    """The running SHA-256 of the bytes of a bundle, line by line."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def digest(self) -> bytes:
        return self._hash.digest()


def sign_digest(key: ec.EllipticCurvePrivateKey, digest: bytes) -> str:
    return base64.b64encode(key.sign(digest, _PREHASHED)).decode("ascii")


def verify_digest(key: ec.EllipticCurvePublicKey, digest: bytes, signature: str) -> None:
    try:
        der = base64.b64decode(signature.encode("ascii"), validate=True)
        key.verify(der, digest, _PREHASHED)
    except (InvalidSignature, binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise BundleSignatureError("the signature does not verify") from exc


def public_key_from_pem(pem: str) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from PEM (raises ValueError with a reason)."""
    return load_trusted_key(pem.encode("ascii"))


def pinned_key_fingerprint(pem: str) -> str:
    """What an operator compares when a satellite pins its upstream's key: the SHA-256 of
    the upstream's signing certificate (URL-safe base64), as `satellite sync fingerprint`
    prints it at the upstream."""
    return certificate_fingerprint(load_pem_certificate(pem))


def fingerprints_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.strip().encode(), b.strip().encode())


def satellite_certificate(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_pem: str,
    satellite_key_pem: str,
    satellite_id: str,
    account: str,
    validity: dt.timedelta,
    now: dt.datetime,
) -> str:
    """The upstream's certificate for a satellite's key (PEM)."""
    cert = issue_certificate(
        ca_key,
        load_pem_certificate(ca_pem),
        public_key_from_pem(satellite_key_pem),
        satellite_id,
        f"account:{account}",
        validity,
        now,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        identity_uri=f"urn:uuid:{satellite_id}",
    )
    return to_pem(cert)


# A satellite's sync key is a P-256 key like a product's reservation key.
new_key = new_private_key
public_pem = public_key_pem
load_private_key = slr_load_private_key
