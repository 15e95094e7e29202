"""What the server's CA issues passes a strict X.509 verifier (cryptography's, which
follows RFC 5280 and the CA/Browser Forum profile): ID certificates of products as client
certificates, the daemon's TLS certificate as a server certificate."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from satellite.crypto.keys import KeyPaths, ensure_server_keys
from tests.conftest import Api
from tests.test_device import new_agent, new_token, setup_voice


def _ca(state: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate((state / "keys" / "ca.crt").read_bytes())


def _policy(ca: x509.Certificate, at: dt.datetime) -> PolicyBuilder:
    return PolicyBuilder().store(Store([ca])).time(at)


def test_the_ca_is_a_ca_that_signs_certificates(tmp_path: Path) -> None:
    ensure_server_keys(KeyPaths(tmp_path))
    ca = _ca(tmp_path)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)


async def test_an_id_certificate_passes_a_strict_verifier(
    admin: Api, server: TestServer, tmp_path: Path, state_dir: Path
) -> None:
    await setup_voice(admin)
    agent = new_agent(tmp_path, server)
    state = await agent.register(await new_token(admin))
    assert state.certificate is not None
    cert = x509.load_pem_x509_certificate(state.certificate.encode())
    ca = _ca(state_dir)

    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not usage.value.key_cert_sign
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())  # type: ignore[arg-type]
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest

    verifier = _policy(ca, dt.datetime.now(dt.UTC)).build_client_verifier()
    verified = verifier.verify(cert, [])
    assert verified.chain[-1] == ca
    # The answer-signing certificate (products check answers with it) passes too.
    assert state.signing_certificate is not None
    signing = x509.load_pem_x509_certificate(state.signing_certificate.encode())
    signing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert signing.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
