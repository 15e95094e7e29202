"""Certificates: ID certificates for products from their CSRs, and checking them."""

from __future__ import annotations

import datetime as dt
import hashlib

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from satellite_protocol.crypto.tokens import b64url


class CertificateError(ValueError):
    """A CSR or certificate is malformed, wrongly keyed, or not issued by the expected CA."""


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate (DER), URL-safe base64: what a registration token pins."""
    return b64url(hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest())


def to_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def load_pem_certificate(pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise CertificateError(f"not a PEM certificate: {exc}") from exc


def make_csr(key: ec.EllipticCurvePrivateKey, common_name: str) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def csr_public_key(csr_pem: str) -> ec.EllipticCurvePublicKey:
    """The CSR's P-256 public key, after checking the CSR's own signature."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise CertificateError(f"not a PEM certificate signing request: {exc}") from exc
    if not csr.is_signature_valid:
        raise CertificateError("the CSR's signature does not verify")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise CertificateError("the CSR must carry an ECDSA P-256 key")
    return key


def issue_certificate(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    public_key: ec.EllipticCurvePublicKey,
    common_name: str,
    serial_number: str,
    validity: dt.timedelta,
    now: dt.datetime,
    *,
    usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.CLIENT_AUTH,
    identity_uri: str | None = None,
) -> x509.Certificate:
    """A leaf certificate for ``public_key``. ``identity_uri`` (``urn:uuid:<id>``) goes in
    the subject alternative name, where strict verifiers look for who a client is."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, serial_number),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(leaf_key_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(authority_key_identifier(ca_cert), critical=False)
    )
    if identity_uri is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity_uri)]),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256())


def leaf_key_usage() -> x509.KeyUsage:
    """An ECDSA end-entity key signs (requests, answers, TLS handshakes) and nothing else;
    strict verifiers (RFC 5280, CA/Browser Forum) want it said, and critical."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def authority_key_identifier(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The issuer's key identifier as the CA certificate states it (its SKI: every CA of
    ours has one), so that a verifier that matches the two by value finds the issuer."""
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def check_issued_by(cert: x509.Certificate, ca_cert: x509.Certificate, now: dt.datetime) -> None:
    """``cert`` is signed by ``ca_cert`` and valid at ``now``."""
    ca_key = ca_cert.public_key()
    if not isinstance(ca_key, ec.EllipticCurvePublicKey):
        raise CertificateError("the CA key is not ECDSA")
    algorithm = cert.signature_hash_algorithm
    if algorithm is None:
        raise CertificateError("the certificate names no hash algorithm")
    try:
        ca_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm))
    except InvalidSignature as exc:
        raise CertificateError("the certificate is not issued by the pinned CA") from exc
    if cert.issuer != ca_cert.subject:
        raise CertificateError("the certificate's issuer is not the pinned CA")
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise CertificateError("the certificate is not valid now")
