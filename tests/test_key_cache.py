"""The parsed product keys the envelope keeps (jose.KeyCache): a key in use stays parsed
while more keys than are kept come and go once each."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from satellite_protocol.crypto import jose


def test_a_key_in_use_stays_parsed_while_others_come_and_go() -> None:
    size = 64
    cache = jose.KeyCache(size)
    jwks = [
        jose.public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key())
        for _ in range(3 * size + 1)
    ]
    used, others = jwks[0], jwks[1:]
    parsed = cache.key(used)
    for i, jwk in enumerate(others):
        cache.key(jwk)
        if i % 8 == 0:  # (a request of its product)
            assert cache.key(used) is parsed, i
    assert cache.key(others[-1]) is cache.key(others[-1])
