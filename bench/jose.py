"""JWS cost: ``satellite_protocol.crypto.jose`` against joserfc, ES256 flattened JSON, sign
and verify.

Prints microseconds per call for our sign and verify, joserfc's with the same key, header
and payload (its keys imported once, outside the loop), and the bare ECDSA sign and verify
underneath both. No server, no network. See bench/README.md.

    .venv/bin/python bench/jose.py
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from typing import Any, cast

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jws
from joserfc.jwk import ECKey
from joserfc.registry import HeaderParameter

from satellite_protocol.crypto import jose

REGISTRY = jws.JWSRegistry(
    header_registry={
        "nonce": HeaderParameter("server nonce", "str", True),
        "url": HeaderParameter("request path", "str", True),
    },
    algorithms=["ES256"],
)
key = ec.generate_private_key(ec.SECP256R1())
pub = key.public_key()
header = {
    "kid": "0b5b5e0e-6f1c-4c39-9d6b-1f4a52a1c2f0",
    "nonce": "n" * 43,
    "url": "/devices/0b5b5e0e-6f1c-4c39-9d6b-1f4a52a1c2f0/usage",
}
payload = b'{"usage":[{"tag":"regid.2016-07.com.cisco.UCM_Enhanced_12.0","count":5}]}'
jkey, jpub = ECKey.import_key(key), ECKey.import_key(pub)
ours = jose.sign(key, payload, header)
theirs = jws.serialize_json(
    {"protected": {"alg": "ES256", **header}}, payload, jkey, registry=REGISTRY
)
data = b"x" * 64
der = key.sign(data, ec.ECDSA(hashes.SHA256()))

cases: dict[str, Callable[[], object]] = {
    "ours sign": lambda: jose.sign(key, payload, header),
    "joserfc sign": lambda: jws.serialize_json(
        {"protected": {"alg": "ES256", **header}}, payload, jkey, registry=REGISTRY
    ),
    "ours verify": lambda: jose.verify(ours, pub),
    "joserfc verify": lambda: jws.deserialize_json(cast(Any, theirs), jpub, registry=REGISTRY),
    "raw ECDSA sign": lambda: key.sign(data, ec.ECDSA(hashes.SHA256())),
    "raw ECDSA verify": lambda: pub.verify(der, data, ec.ECDSA(hashes.SHA256())),
}
# Interleaved rounds, best round kept: the machine is shared (load average printed beside),
# and the minimum is the figure least disturbed by other work.
N, R = 500, 40
best = {name: float("inf") for name in cases}
for _ in range(R):
    for name, fn in cases.items():
        best[name] = min(best[name], timeit.timeit(fn, number=N) / N * 1e6)
for name in cases:
    print(f"{name:18s} {best[name]:7.1f} us (best of {R} rounds x {N}, interleaved)")
extra = {op: best[f"joserfc {op}"] - best[f"ours {op}"] for op in ("sign", "verify")}
print(f"joserfc adds: {extra['sign']:.1f} us per sign, {extra['verify']:.1f} us per verify")
