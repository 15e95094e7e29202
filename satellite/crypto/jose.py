"""JWS (RFC 7515) in the flattened JSON form ACME uses (RFC 8555), ES256 only.

Products sign their requests; the server signs its answers. Both sides use this module.
"""

from __future__ import annotations

import base64
import json
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from joserfc.registry import HeaderParameter

ALGORITHM = "ES256"
_REGISTRY = jws.JWSRegistry(
    header_registry={
        "nonce": HeaderParameter("Server nonce, used once", "str", True),
        "url": HeaderParameter("Request path the message is for", "str", True),
    },
    algorithms=[ALGORITHM],
)


class InvalidSignature(ValueError):
    """The message is malformed or its signature does not verify."""


def public_jwk(key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    return cast(dict[str, str], ECKey.import_key(key).as_dict(private=False))


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint: a stable name for a public key."""
    return ECKey.import_key(jwk).thumbprint()


def key_from_jwk(jwk: dict[str, Any]) -> ec.EllipticCurvePublicKey:
    try:
        key = ECKey.import_key(jwk)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise InvalidSignature(f"not a usable public key: {exc}") from exc
    public = key.public_key
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
        raise InvalidSignature("only P-256 keys are accepted")
    return public


def sign(key: ec.EllipticCurvePrivateKey, payload: bytes, header: dict[str, Any]) -> dict[str, str]:
    """A flattened JWS of ``payload`` with ``header`` (alg is set here) in the protected part."""
    protected = {"alg": ALGORITHM, **header}
    signed = jws.serialize_json(
        {"protected": protected},
        payload,
        ECKey.import_key(key),
        registry=_REGISTRY,
    )
    return cast(dict[str, str], signed)


def _unverified_part(message: dict[str, Any], part: str) -> dict[str, Any]:
    try:
        encoded = message[part]
        value = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidSignature(f"not a flattened JWS: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidSignature(f"not a flattened JWS: the {part} is not an object")
    return value


def protected_header(message: dict[str, Any]) -> dict[str, Any]:
    """The protected header, NOT verified: only to find which key to verify with."""
    return _unverified_part(message, "protected")


def unverified_payload(message: dict[str, Any]) -> dict[str, Any]:
    """The payload, NOT verified: only to find the certificate it must verify with."""
    return _unverified_part(message, "payload")


def verify(message: dict[str, Any], key: ec.EllipticCurvePublicKey) -> tuple[dict[str, Any], bytes]:
    """Check the signature with ``key``; return the protected header and the payload."""
    try:
        parsed = jws.deserialize_json(cast(Any, message), ECKey.import_key(key), registry=_REGISTRY)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise InvalidSignature(f"the signature does not verify: {exc}") from exc
    return dict(parsed.headers()), parsed.payload
