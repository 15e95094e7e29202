"""JWS (RFC 7515) in the flattened JSON form ACME uses (RFC 8555), ES256 only.

Products sign their requests; the server signs its answers. Both sides use this module.

Signing and verifying are written here on top of ``cryptography`` rather than through
joserfc, on the hottest path of the device API. The gain is small: ``bench/jose.py``
measured (2 shared cores, load average 5-7) ours at 19-20 µs per sign and 48-52 µs per
verify, joserfc about 8 µs more for each, over the bare ECDSA underneath (16 µs, 42-44
µs). The form is narrow enough to check completely by hand (one algorithm, no unprotected
header, no ``crit`` extensions, canonical base64url), and the tests cross-check every
message against joserfc in both directions. JWK import, export and thumbprints stay with
joserfc.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections import OrderedDict
from typing import Any, cast

import msgspec
from cryptography.exceptions import InvalidSignature as _CryptographyInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from satellite_protocol.untrusted import NESTED_TOO_DEEP, nul_field, too_deep

ALGORITHM = "ES256"
_ECDSA = ec.ECDSA(hashes.SHA256())
_COORDINATE = 32  # bytes of r and of s in an ES256 signature (RFC 7518, 3.4)
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_MEMBERS = frozenset({"protected", "payload", "signature"})


class InvalidSignature(ValueError):
    """The message is malformed or its signature does not verify."""


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: object, what: str) -> bytes:
    """Canonical unpadded base64url only: any other spelling of the same bytes is refused."""
    if not isinstance(text, str) or not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise InvalidSignature(f"not a flattened JWS: the {what} is not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidSignature(f"not a flattened JWS: the {what} is not base64url") from exc
    if _encode(data) != text:
        raise InvalidSignature(f"not a flattened JWS: the {what} is not canonical base64url")
    return data


def public_jwk(key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    return cast(dict[str, str], ECKey.import_key(key).as_dict(private=False))


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint: a stable name for a public key."""
    return ECKey.import_key(jwk).thumbprint()


def key_thumbprint(key: ec.EllipticCurvePublicKey) -> str:
    """``jwk_thumbprint(public_jwk(key))`` for a P-256 key, without importing a JWK again
    (an import checks the point: it costs more than verifying a signature)."""
    if key.curve.name != "secp256r1":
        raise InvalidSignature("only P-256 keys are accepted")
    numbers = key.public_numbers()
    members = {  # RFC 7638, 3.2: the required members, sorted, no white space
        "crv": "P-256",
        "kty": "EC",
        "x": _encode(numbers.x.to_bytes(_COORDINATE, "big")),
        "y": _encode(numbers.y.to_bytes(_COORDINATE, "big")),
    }
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode("ascii")
    return _encode(hashlib.sha256(canonical).digest())


def key_from_jwk(jwk: dict[str, Any]) -> ec.EllipticCurvePublicKey:
    try:
        key = ECKey.import_key(jwk)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise InvalidSignature(f"not a usable public key: {exc}") from exc
    public = key.public_key
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
        raise InvalidSignature("only P-256 keys are accepted")
    return public


class KeyCache:
    """Public keys by their JWK, parsed once: importing a key (point validation included)
    costs more than verifying a signature with it. At most ``size`` keys are kept, the one
    used longest ago forgotten first (an OrderedDict: a dict's oldest entry costs a scan of
    those deleted before it, microseconds a key once full)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._keys: OrderedDict[tuple[str, str, str], ec.EllipticCurvePublicKey] = OrderedDict()

    def key(self, jwk: dict[str, Any]) -> ec.EllipticCurvePublicKey:
        coordinates = (str(jwk.get("crv")), str(jwk.get("x")), str(jwk.get("y")))
        key = self._keys.get(coordinates)
        if key is not None:
            self._keys.move_to_end(coordinates)
            return key
        key = key_from_jwk(jwk)
        if len(self._keys) >= self._size:
            self._keys.popitem(last=False)
        self._keys[coordinates] = key
        return key


def sign(key: ec.EllipticCurvePrivateKey, payload: bytes, header: dict[str, Any]) -> dict[str, str]:
    """A flattened JWS of ``payload`` with ``header`` (alg is set here) in the protected part."""
    protected = _encode(json.dumps({"alg": ALGORITHM, **header}, separators=(",", ":")).encode())
    encoded_payload = _encode(payload)
    der = key.sign(f"{protected}.{encoded_payload}".encode("ascii"), _ECDSA)
    r, s = decode_dss_signature(der)
    signature = r.to_bytes(_COORDINATE, "big") + s.to_bytes(_COORDINATE, "big")
    return {"protected": protected, "payload": encoded_payload, "signature": _encode(signature)}


def _unverified_part(message: dict[str, Any], part: str) -> dict[str, Any]:
    if not isinstance(message, dict):
        raise InvalidSignature("not a flattened JWS: not an object")
    raw = _decode(message.get(part), part)
    if too_deep(raw):
        raise InvalidSignature(f"not a flattened JWS: the {part}: {NESTED_TOO_DEEP}")
    try:
        # msgspec, not json.loads: it refuses a lone surrogate escape ("\udcff"), which no
        # database text (nor UTF-8) can hold.
        value = msgspec.json.decode(raw)
    except ValueError as exc:
        raise InvalidSignature(f"not a flattened JWS: the {part} is not JSON") from exc
    if not isinstance(value, dict):
        raise InvalidSignature(f"not a flattened JWS: the {part} is not an object")
    # What is read from it (the nonce, the key id) is looked up in the database.
    where = nul_field(value)
    if where is not None:
        raise InvalidSignature(f"not a flattened JWS: `{where}` of the {part} holds U+0000")
    return value


def protected_header(message: dict[str, Any]) -> dict[str, Any]:
    """The protected header, NOT verified: only to find which key to verify with."""
    return _unverified_part(message, "protected")


def unverified_payload(message: dict[str, Any]) -> dict[str, Any]:
    """The payload, NOT verified: only to find the certificate it must verify with."""
    return _unverified_part(message, "payload")


def verify(message: dict[str, Any], key: ec.EllipticCurvePublicKey) -> tuple[dict[str, Any], bytes]:
    """Check the signature with ``key``; return the protected header and the payload."""
    if not isinstance(message, dict) or set(message) != _MEMBERS:
        raise InvalidSignature(
            "not a flattened JWS: exactly protected, payload and signature are expected"
        )
    header = protected_header(message)
    if header.get("alg") != ALGORITHM:
        raise InvalidSignature(f"the signature does not verify: only {ALGORITHM} is accepted")
    if "crit" in header:
        raise InvalidSignature("the signature does not verify: no critical extension is known")
    payload = _decode(message["payload"], "payload")
    signature = _decode(message["signature"], "signature")
    if len(signature) != 2 * _COORDINATE:
        raise InvalidSignature("the signature does not verify: not an ES256 signature")
    der = encode_dss_signature(
        int.from_bytes(signature[:_COORDINATE], "big"),
        int.from_bytes(signature[_COORDINATE:], "big"),
    )
    signed = f"{message['protected']}.{message['payload']}".encode("ascii")
    try:
        key.verify(der, signed, _ECDSA)
    except _CryptographyInvalidSignature as exc:
        raise InvalidSignature("the signature does not verify") from exc
    return header, payload
