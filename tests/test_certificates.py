"""What the server's CA issues passes a strict X.509 verifier (cryptography's, which
follows RFC 5280 and the CA/Browser Forum profile): ID certificates of products as client
certificates, the daemon's TLS certificate as a server certificate."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import shutil
import socket
import ssl
import stat
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store

from satellite.config import Settings
from satellite.crypto.keys import (
    KeyPaths,
    ensure_server_keys,
    ensure_tls_certificate,
    tls_certificate_names,
)
from satellite.tls import ServerTls, host_names
from satellite.wiring import create_key_material
from tests.conftest import Api
from tests.helpers.api import new_agent, new_token, setup_voice


def _ca(state: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate((state / "keys" / "ca.crt").read_bytes())


def _policy(ca: x509.Certificate, at: dt.datetime) -> PolicyBuilder:
    return PolicyBuilder().store(Store([ca])).time(at)


@pytest.mark.unit
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
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
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


def _served(port: int, context: ssl.SSLContext, host: str = "127.0.0.1") -> x509.Certificate:
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


@pytest.mark.unit
def test_the_daemons_certificate_is_the_cas_for_this_hosts_names(tmp_path: Path) -> None:
    settings = Settings(state_dir=str(tmp_path / "state"), listen=["127.0.0.1:8443"])
    created = create_key_material(settings, ["satellite.example.net"])
    paths = KeyPaths(settings.state_path)
    assert paths.tls_cert in created
    assert stat.S_IMODE(paths.tls_key.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(paths.tls_cert.read_bytes())
    ca = _ca(settings.state_path)
    now = dt.datetime.now(dt.UTC)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= dt.timedelta(days=398)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).critical
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)

    names: list[x509.DNSName | x509.IPAddress] = [
        x509.DNSName("localhost"),
        x509.DNSName("satellite.example.net"),
        x509.DNSName(socket.gethostname().lower()),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    for name in names:
        verifier = _policy(ca, now).build_server_verifier(name)
        assert verifier.verify(cert, [])[-1] == ca, name

    # Again: in place and far from its end, it is kept as it is.
    before = paths.tls_cert.read_bytes()
    assert create_key_material(settings, []) == []
    assert paths.tls_cert.read_bytes() == before


async def test_the_certificate_is_renewed_before_it_ends_and_served_without_restart(
    tmp_path: Path,
) -> None:
    settings = Settings(state_dir=str(tmp_path / "state"), listen=["127.0.0.1:0"])
    paths = KeyPaths(settings.state_path)
    ensure_server_keys(paths)
    names = host_names(settings, ["satellite.example.net"])
    now = dt.datetime.now(dt.UTC)
    # Issued 350 days ago: 47 days left.
    assert ensure_tls_certificate(paths, names, now=now - dt.timedelta(days=350))
    key_before = paths.tls_key.read_bytes()
    tls = ServerTls.for_settings(settings)
    assert tls is not None

    runner = web.AppRunner(web.Application())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.context)
    await site.start()
    try:
        port = runner.addresses[0][1]
        trust = ssl.create_default_context(cafile=str(paths.ca_cert))
        first = await asyncio.to_thread(_served, port, trust)
        assert first.not_valid_after_utc - now < dt.timedelta(days=48)
        assert tls.renew() is False  # more than 30 days left: kept

        # One issued 370 days ago, 27 days left: due.
        paths.tls_cert.unlink()
        assert ensure_tls_certificate(paths, names, now=now - dt.timedelta(days=370))
        tls.reload()
        ending = await asyncio.to_thread(_served, port, trust)
        assert ending.not_valid_after_utc - now < dt.timedelta(days=28)
        assert tls.renew() is True

        renewed = await asyncio.to_thread(_served, port, trust)
        assert renewed.not_valid_after_utc - now > dt.timedelta(days=390)
        assert "satellite.example.net" in tls_certificate_names(renewed)
        assert paths.tls_key.read_bytes() == key_before  # same key: no mismatch on reload

        # Issued by someone else (``init --tls-hostname``, another daemon on this state
        # directory): the next check serves it.
        assert ensure_tls_certificate(paths, ["more.example.net"])
        assert tls.renew() is True
        latest = await asyncio.to_thread(_served, port, trust)
        assert "more.example.net" in tls_certificate_names(latest)
        assert tls.renew() is False
    finally:
        await runner.cleanup()


@pytest.mark.unit
def test_a_certificate_of_another_issuer_in_the_state_directory_is_replaced(
    tmp_path: Path,
) -> None:
    """An older satellite's self-signed certificate gives way to the CA's, names kept."""
    settings = Settings(state_dir=str(tmp_path / "state"), listen=["127.0.0.1:0"])
    create_key_material(settings, [])
    paths = KeyPaths(settings.state_path)
    other = tmp_path / "other"
    ensure_server_keys(KeyPaths(other), common_name="someone else")
    ensure_tls_certificate(KeyPaths(other), ["old.example.net"])
    shutil.copyfile(other / "tls" / "server.crt", paths.tls_cert)
    assert paths.tls_cert in create_key_material(settings, [])
    cert = x509.load_pem_x509_certificate(paths.tls_cert.read_bytes())
    ca = _ca(settings.state_path)
    assert cert.issuer == ca.subject
    assert "old.example.net" in tls_certificate_names(cert)
    assert "localhost" in tls_certificate_names(cert)


@pytest.mark.unit
def test_a_start_issues_again_a_certificate_about_to_end(tmp_path: Path) -> None:
    settings = Settings(state_dir=str(tmp_path / "state"), listen=["127.0.0.1:0"])
    paths = KeyPaths(settings.state_path)
    ensure_server_keys(paths)
    now = dt.datetime.now(dt.UTC)
    assert ensure_tls_certificate(paths, host_names(settings), now=now - dt.timedelta(days=370))
    # What `serve` and `init` do first.
    assert create_key_material(settings, []) == [paths.tls_cert]
    cert = x509.load_pem_x509_certificate(paths.tls_cert.read_bytes())
    assert cert.not_valid_after_utc - now > dt.timedelta(days=390)
