"""JWS as products and the server exchange it: ES256, flattened JSON, protected nonce and url."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from satellite.crypto import jose


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_signed_message_verifies_and_carries_its_header() -> None:
    key = _key()
    message = jose.sign(key, b'{"usage":[]}', {"kid": "p1", "nonce": "n1", "url": "/device/v1/x"})
    assert jose.protected_header(message)["kid"] == "p1"
    header, payload = jose.verify(message, key.public_key())
    assert header == {"alg": "ES256", "kid": "p1", "nonce": "n1", "url": "/device/v1/x"}
    assert payload == b'{"usage":[]}'


def test_wrong_key_altered_payload_and_altered_header_are_refused() -> None:
    key = _key()
    message = jose.sign(key, b"one", {"kid": "p1", "nonce": "n1", "url": "/a"})
    other = jose.sign(key, b"two", {"kid": "p1", "nonce": "n2", "url": "/b"})
    with pytest.raises(jose.InvalidSignature):
        jose.verify(message, _key().public_key())
    with pytest.raises(jose.InvalidSignature):
        jose.verify(message | {"payload": other["payload"]}, key.public_key())
    with pytest.raises(jose.InvalidSignature):
        jose.verify(message | {"protected": other["protected"]}, key.public_key())
    with pytest.raises(jose.InvalidSignature):
        jose.protected_header({"payload": "x"})


def test_embedded_public_key_round_trip() -> None:
    key = _key()
    jwk = jose.public_jwk(key.public_key())
    assert jose.key_from_jwk(jwk).public_numbers() == key.public_key().public_numbers()
    assert jose.jwk_thumbprint(jwk) == jose.jwk_thumbprint(dict(jwk))
    other = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(jose.InvalidSignature):
        jose.key_from_jwk(jose.public_jwk(other.public_key()))
