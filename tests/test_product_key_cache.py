"""The product keys the envelope keeps (by product instance id, for usage reports): a
product that keeps reporting keeps its key known while more products than are kept come
and go, so its reports stay one statement (tests/test_report_round_trips.py)."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from satellite.services.envelope import PRODUCT_KEYS_KEPT, DeviceEnvelope
from satellite.wiring import Runtime
from satellite_protocol.crypto import jose


def test_a_product_that_keeps_reporting_keeps_its_key_known(runtime: Runtime) -> None:
    envelope = DeviceEnvelope(runtime.keys)
    jwk = jose.public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key())
    envelope.remember_key("reporting", jwk)
    misses = 0
    for i in range(2 * PRODUCT_KEYS_KEPT):  # (others, each seen once)
        envelope.remember_key(f"other-{i}", jwk)
        if i % 1000 == 0:  # its report: its key looked up, and remembered once verified
            misses += envelope.known_key("reporting") is None
            envelope.remember_key("reporting", jwk)
    assert misses == 0
    assert envelope.known_key(f"other-{2 * PRODUCT_KEYS_KEPT - 1}") == jwk
    assert envelope.known_key("other-0") is None  # (the oldest went)
