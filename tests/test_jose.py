"""JWS as products and the server exchange it: ES256, flattened JSON, protected nonce and url."""

from __future__ import annotations

import base64
import json
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jws
from joserfc.jwk import ECKey
from joserfc.registry import HeaderParameter

from satellite_protocol.crypto import jose

pytestmark = pytest.mark.unit


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


# --- cross-checks against joserfc, an independent implementation -------------------------

_REGISTRY = jws.JWSRegistry(
    header_registry={
        "nonce": HeaderParameter("server nonce", "str", True),
        "url": HeaderParameter("request path", "str", True),
    },
    algorithms=["ES256"],
)


def test_our_messages_verify_with_joserfc_and_theirs_with_ours() -> None:
    key = _key()
    ours = jose.sign(key, b'{"a":1}', {"kid": "p1", "nonce": "n1", "url": "/x"})
    parsed = jws.deserialize_json(
        cast(Any, ours), ECKey.import_key(key.public_key()), registry=_REGISTRY
    )
    assert parsed.payload == b'{"a":1}'
    assert dict(parsed.headers()) == {"alg": "ES256", "kid": "p1", "nonce": "n1", "url": "/x"}

    theirs = jws.serialize_json(
        {"protected": {"alg": "ES256", "kid": "p2", "nonce": "n", "url": "/y"}},
        b"payload",
        ECKey.import_key(key),
        registry=_REGISTRY,
    )
    header, payload = jose.verify(theirs, key.public_key())  # type: ignore[arg-type]
    assert header == {"alg": "ES256", "kid": "p2", "nonce": "n", "url": "/y"}
    assert payload == b"payload"


def _resigned(key: ec.EllipticCurvePrivateKey, header: dict[str, object]) -> dict[str, str]:
    """A message whose protected header is ``header`` verbatim, correctly signed by ``key``."""
    protected = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    payload = "e30"  # {}
    der = key.sign(f"{protected}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    signature = base64.urlsafe_b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    return {"protected": protected, "payload": payload, "signature": signature.decode().rstrip("=")}


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"alg": "none"}, "only ES256"),
        ({"alg": "HS256"}, "only ES256"),
        ({"kid": "p1"}, "only ES256"),
        ({"alg": "ES256", "crit": ["b64"], "b64": False}, "critical"),
    ],
)
def test_other_algorithms_and_critical_extensions_are_refused(
    header: dict[str, object], reason: str
) -> None:
    key = _key()
    with pytest.raises(jose.InvalidSignature, match=reason):
        jose.verify(_resigned(key, header), key.public_key())
    assert jose.verify(_resigned(key, {"alg": "ES256"}), key.public_key())[1] == b"{}"


def test_malformed_messages_are_refused_before_any_verification() -> None:
    key = _key()
    good = jose.sign(key, b"{}", {"nonce": "n"})
    der_signature = key.sign(
        f"{good['protected']}.{good['payload']}".encode(), ec.ECDSA(hashes.SHA256())
    )
    malformed: list[dict[str, Any]] = [
        good | {"header": {"kid": "x"}},  # an unprotected header
        {k: v for k, v in good.items() if k != "signature"},
        good | {"payload": good["payload"] + "="},  # padded
        good | {"payload": good["payload"] + "\n"},  # not in the alphabet
        good | {"signature": good["signature"][:-2]},  # short
        good | {"signature": base64.urlsafe_b64encode(der_signature).decode().rstrip("=")},
        good | {"payload": 7},
    ]
    for message in malformed:
        with pytest.raises(jose.InvalidSignature):
            jose.verify(message, key.public_key())
    assert jose.verify(good, key.public_key())[1] == b"{}"


def test_the_thumbprint_of_a_key_is_the_thumbprint_of_its_jwk() -> None:
    # (What a registration's token proof is bound to: both sides must get the same one.)
    for _ in range(20):
        public = _key().public_key()
        assert jose.key_thumbprint(public) == jose.jwk_thumbprint(jose.public_jwk(public))
        assert jose.key_thumbprint(public) == ECKey.import_key(public).thumbprint()
