"""The server's key material on disk: CA, signing key, token key and the TLS certificate
the CA issues to the daemon.

Key files are created with mode 0600 and ``O_EXCL``: an existing key is never overwritten
(but for an unreadable TLS key, which protects nothing stored and is made again).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from satellite.crypto.secrets import new_symmetric_key
from satellite.domain.clock import utc_now
from satellite.errors import StateDirError
from satellite_protocol.crypto.pki import (
    CertificateError,
    authority_key_identifier,
    certificate_fingerprint,
    check_issued_by,
    issue_certificate,
    leaf_key_usage,
)

CA_VALIDITY = dt.timedelta(days=3650)
# Under the 398 days that browsers and strict TLS clients accept for a server certificate.
TLS_VALIDITY = dt.timedelta(days=397)
TLS_RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class KeyPaths:
    root: Path

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def ca_key(self) -> Path:
        return self.keys_dir / "ca.key"

    @property
    def ca_cert(self) -> Path:
        return self.keys_dir / "ca.crt"

    @property
    def signing_key(self) -> Path:
        return self.keys_dir / "signing.key"

    @property
    def signing_public(self) -> Path:
        return self.keys_dir / "signing.pub"

    @property
    def signing_cert(self) -> Path:
        return self.keys_dir / "signing.crt"

    @property
    def token_key(self) -> Path:
        return self.keys_dir / "token.key"

    @property
    def tls_dir(self) -> Path:
        return self.root / "tls"

    @property
    def tls_cert(self) -> Path:
        return self.tls_dir / "server.crt"

    @property
    def tls_key(self) -> Path:
        return self.tls_dir / "server.key"


@dataclass(frozen=True)
class ServerKeys:
    ca_key: ec.EllipticCurvePrivateKey
    ca_cert: x509.Certificate
    signing_key: ec.EllipticCurvePrivateKey
    signing_cert: x509.Certificate  # issued by the CA: products verify signed answers with it
    token_key: bytes

    @property
    def ca_fingerprint(self) -> str:
        """What a registration token pins (see ``certificate_fingerprint``)."""
        return certificate_fingerprint(self.ca_cert)


def write_new(path: Path, data: bytes, mode: int) -> bool:
    """Create ``path`` with ``data`` and ``mode``; return False (leaving it alone) if it exists."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return True


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_private(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise StateDirError(f"{path} is not an ECDSA key")
    return key


def _ca_certificate(key: ec.EllipticCurvePrivateKey, common_name: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = utc_now()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def ensure_server_keys(paths: KeyPaths, common_name: str = "satellite CA") -> list[Path]:
    """Create the key material of a new state directory; return the files created.

    Keys are made together or not at all: a lost key cannot be made again without
    orphaning what it protects (tokens pin the CA, stored tokens need the token key),
    so a state directory missing some of them is refused, never silently repaired.
    """
    essential = [paths.ca_key, paths.ca_cert, paths.signing_key, paths.token_key]
    present = [p for p in essential if p.exists()]
    if present and len(present) < len(essential):
        missing = ", ".join(p.name for p in essential if not p.exists())
        raise StateDirError(
            f"{paths.keys_dir} is missing {missing}: restore it from a backup of the state "
            "directory (new keys would not match what the others protect)"
        )
    created: list[Path] = []
    if not paths.ca_key.exists():
        ca_key = ec.generate_private_key(ec.SECP256R1())
        if write_new(paths.ca_key, _private_pem(ca_key), 0o600):
            created.append(paths.ca_key)
    ca_key = _load_private(paths.ca_key)
    if not paths.ca_cert.exists():
        cert = _ca_certificate(ca_key, common_name)
        if write_new(paths.ca_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644):
            created.append(paths.ca_cert)
    if not paths.signing_key.exists():
        signing = ec.generate_private_key(ec.SECP256R1())
        if write_new(paths.signing_key, _private_pem(signing), 0o600):
            created.append(paths.signing_key)
    if not paths.signing_public.exists():
        public = _load_private(paths.signing_key).public_key()
        pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if write_new(paths.signing_public, pem, 0o644):
            created.append(paths.signing_public)
    if write_new(paths.token_key, new_symmetric_key(), 0o600):
        created.append(paths.token_key)
    if not paths.signing_cert.exists():
        # Derived from keys that exist: safe to make again.
        ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
        signing_cert = issue_certificate(
            ca_key,
            ca_cert,
            _load_private(paths.signing_key).public_key(),
            "satellite answer signing",
            "signing",
            CA_VALIDITY,
            utc_now(),
            usage=ExtendedKeyUsageOID.CODE_SIGNING,
        )
        if write_new(
            paths.signing_cert, signing_cert.public_bytes(serialization.Encoding.PEM), 0o644
        ):
            created.append(paths.signing_cert)
    return created


def load_server_keys(paths: KeyPaths) -> ServerKeys:
    try:
        ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
        token_key = paths.token_key.read_bytes()
        keys = ServerKeys(
            ca_key=_load_private(paths.ca_key),
            ca_cert=ca_cert,
            signing_key=_load_private(paths.signing_key),
            signing_cert=x509.load_pem_x509_certificate(paths.signing_cert.read_bytes()),
            token_key=token_key,
        )
    except FileNotFoundError as exc:
        raise StateDirError(
            f"{exc.filename} is missing: run 'satellite init' for this state directory"
        ) from exc
    except (ValueError, TypeError) as exc:
        raise StateDirError(
            f"server key material in {paths.keys_dir} is unreadable: {exc}"
        ) from exc
    if len(token_key) != 32:
        raise StateDirError(f"{paths.token_key} must hold 32 bytes")
    return keys


def replace_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``path`` whole or not at all: a reader (a reload) sees the old file or the new."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


@contextmanager
def _tls_lock(paths: KeyPaths) -> Iterator[None]:
    """One issuer at a time for daemons sharing a state directory (a key of one and the
    certificate of another would not pair)."""
    paths.tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with (paths.tls_dir / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tls_certificate_names(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses a TLS certificate is for."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    addresses = [str(a) for a in sans.get_values_for_type(x509.IPAddress)]
    return [*sans.get_values_for_type(x509.DNSName), *addresses]


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _canonical(name: str) -> str:
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name.lower()


def _renewal_reason(
    paths: KeyPaths,
    ca_cert: x509.Certificate,
    names: list[str],
    now: dt.datetime,
    renew_before: dt.timedelta,
) -> tuple[str | None, list[str]]:
    """Why the state directory's TLS certificate must be issued again (None: it is fine),
    and the names the current one holds (kept in the next: ``init --tls-hostname`` ones)."""
    if not paths.tls_cert.exists() or not paths.tls_key.exists():
        return "none yet", []
    try:
        current = x509.load_pem_x509_certificate(paths.tls_cert.read_bytes())
    except ValueError:
        return "unreadable", []
    held = tls_certificate_names(current)
    try:
        check_issued_by(current, ca_cert, now)
    except CertificateError:
        return "not issued by the CA, or not valid now", held
    if current.not_valid_after_utc - now < renew_before:
        return "expires soon", held
    missing = {_canonical(n) for n in names} - {_canonical(n) for n in held}
    if missing:
        return "does not name " + ", ".join(sorted(missing)), held
    return None, held


def _tls_key(paths: KeyPaths) -> ec.EllipticCurvePrivateKey:
    """The TLS key in place, else a new one. Kept across renewals: the certificate file is
    replaced alone, so a reload never pairs a new certificate with the old key."""
    try:
        return _load_private(paths.tls_key)
    except (OSError, ValueError, TypeError, StateDirError):
        key = ec.generate_private_key(ec.SECP256R1())
        replace_file(paths.tls_key, _private_pem(key), 0o600)
        return key


def ensure_tls_certificate(
    paths: KeyPaths,
    names: list[str],
    *,
    renew_before: dt.timedelta = TLS_RENEW_BEFORE,
    now: dt.datetime | None = None,
) -> str | None:
    """Issue the daemon's TLS certificate (``tls/server.crt``) from the server's CA when
    there is none, when it is not the CA's, when it lacks one of ``names`` or when less
    than ``renew_before`` of it is left; return why (None: the one in place is kept).

    The new certificate names ``names`` and whatever the old one named. It is issued by
    the CA, so whoever trusts ``keys/ca.crt`` (a product that pinned it through its
    registration token, ``curl --cacert``) trusts it.
    """
    now = now or utc_now()
    ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    with _tls_lock(paths):
        reason, held = _renewal_reason(paths, ca_cert, names, now, renew_before)
        if reason is not None:
            _issue_tls_certificate(paths, ca_cert, [*names, *held], now)
    return reason


def _issue_tls_certificate(
    paths: KeyPaths, ca_cert: x509.Certificate, names: list[str], now: dt.datetime
) -> None:
    wanted: dict[str, str] = {}
    for name in names:
        wanted.setdefault(_canonical(name), name)
    if not wanted:
        raise StateDirError("the TLS certificate needs at least one host name or address")
    key = _tls_key(paths)
    ca_key = _load_private(paths.ca_key)
    first = next(iter(wanted.values()))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, first)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + TLS_VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in wanted.values()]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(leaf_key_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(authority_key_identifier(ca_cert), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    replace_file(paths.tls_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
