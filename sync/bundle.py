"""The sync bundle: one signed format for both modes (DESIGN.md, "Sync bundles").

A bundle is JSON Lines: a header line that says what it is, one line per record, and a
signature line last::

    {"type":"request","format":"satellite-sync/1","satelliteId":"…","sequence":7,…}
    {"type":"virtualAccount","name":"Default",…}
    {"type":"product","id":"…",…}
    {"type":"signature","records":2,"signature":"<base64 DER ECDSA P-256>"}

The signature covers the SHA-256 of every byte before the signature line, so a bundle is
written and checked as a stream. A reader checks size limits and the signature in a first
pass that parses nothing but the header (to learn who must have signed it) and the
signature line; only a verified bundle is read for its records, in a second pass.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import msgspec

from satellite.crypto.bundles import (
    BundleDigest,
    BundleSignatureError,
    PrivateKey,
    PublicKey,
    sign_digest,
    verify_digest,
)
from satellite.errors import InvalidInput

FORMAT = "satellite-sync/1"
MAX_LINE_BYTES = 64 * 1024  # one record; a product's is a few hundred bytes
LicenseType = Literal["PERPETUAL", "TERM", "SUBSCRIPTION"]


class _Record(msgspec.Struct, tag_field="type", rename="camel", forbid_unknown_fields=True):
    pass


# --- headers ---------------------------------------------------------------------------


class RegistrationRequest(_Record, tag="registrationRequest", kw_only=True):
    """A satellite asks to be registered; signed with the key it asks a certificate for."""

    format: str = FORMAT
    name: str
    local_account: str
    token: str
    public_key: str  # PEM
    created_at: dt.datetime


class RegistrationAnswer(_Record, tag="registrationAnswer", kw_only=True):
    """The upstream's answer; signed with the key it pins (``upstream_key``)."""

    format: str = FORMAT
    satellite_id: str
    request_digest: str  # hex SHA-256 of the registration request
    upstream_account: str
    certificate: str  # PEM: the satellite's, issued by the upstream's CA
    upstream_key: str  # PEM: what every later answer is signed with
    created_at: dt.datetime


class SyncRequest(_Record, tag="syncRequest", kw_only=True):
    """What changed at the satellite since the upstream acknowledged ``since``."""

    format: str = FORMAT
    satellite_id: str
    sequence: int
    local_account: str
    since: int  # transaction-id watermark (see sql/008_sync.sql)
    through: int
    created_at: dt.datetime


class SyncAnswer(_Record, tag="syncAnswer", kw_only=True):
    """The upstream's pools and flags, and the acknowledgement of one request."""

    format: str = FORMAT
    satellite_id: str
    sequence: int  # the request it answers
    request_digest: str
    upstream_account: str
    export_controlled_allowed: bool
    created_at: dt.datetime


Header = RegistrationRequest | RegistrationAnswer | SyncRequest | SyncAnswer


# --- records ---------------------------------------------------------------------------


class VirtualAccountRecord(_Record, tag="virtualAccount", kw_only=True):
    name: str
    description: str = ""


class UsageRecord(_Record, tag="usage", kw_only=True):
    virtual_account: str
    tag_: str = msgspec.field(name="tag")
    in_use: int


class ReservedLicense(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    tag: str
    quantity: int
    license_type: LicenseType
    end_date: dt.date | None = None


class ProductRecord(_Record, tag="product", kw_only=True):
    id: str
    virtual_account: str
    pid: str
    serial_number: str
    uuid: str
    product_type: str
    product_version: str
    hostname: str | None
    ip_address: str | None
    export_controlled: bool
    status: str
    registered_at: dt.datetime
    ended_at: dt.datetime | None
    reservation: str | None = None  # the reservation's status, if it is one
    reserved: list[ReservedLicense] = msgspec.field(default_factory=list)


class LicenseRecord(_Record, tag="license", kw_only=True):
    id: int
    virtual_account: str
    tag_: str = msgspec.field(name="tag")
    quantity: int
    license_type: LicenseType
    start_date: dt.date | None
    end_date: dt.date | None
    subscription_id: str | None
    export_restricted: bool


class SignatureLine(_Record, tag="signature", kw_only=True):
    records: int
    signature: str


Record = VirtualAccountRecord | UsageRecord | ProductRecord | LicenseRecord

_encoder = msgspec.json.Encoder()
_header_decoder = msgspec.json.Decoder(Header)
_record_decoder = msgspec.json.Decoder(Record)
_signature_decoder = msgspec.json.Decoder(SignatureLine)


class BundleError(InvalidInput):
    """The file is not a sync bundle this satellite can read."""


# --- writing ---------------------------------------------------------------------------


class BundleWriter:
    """Writes a bundle to a binary stream: the header, then records, then ``finish``.

    Lines are encoded into a buffer that is hashed and written a chunk at a time (a
    million products: a thousand writes, not a million)."""

    CHUNK = 256 * 1024

    def __init__(self, out: IO[bytes], header: Header) -> None:
        self._out = out
        self._digest = BundleDigest()
        self._records = 0
        self._buffer = bytearray()
        self._line(header)

    def _line(self, value: msgspec.Struct) -> None:
        buffer = self._buffer
        _encoder.encode_into(value, buffer, -1)
        buffer.append(0x0A)  # "\n"
        if len(buffer) >= self.CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._digest.update(bytes(self._buffer))
            self._out.write(self._buffer)
            self._buffer.clear()

    def write(self, record: Record) -> None:
        self._line(record)
        self._records += 1

    def finish(self, key: PrivateKey) -> bytes:
        """Sign and close the bundle; return its digest (what identifies it)."""
        self._flush()
        digest = self._digest.digest()
        signature = SignatureLine(records=self._records, signature=sign_digest(key, digest))
        self._out.write(_encoder.encode(signature) + b"\n")
        self._out.flush()
        return digest


# --- reading ---------------------------------------------------------------------------


def _lines(handle: IO[bytes], max_bytes: int) -> Iterator[bytes]:
    total = 0
    while True:
        line = handle.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        total += len(line)
        if total > max_bytes:
            raise BundleError(f"the bundle is larger than the limit of {max_bytes} bytes")
        if len(line) > MAX_LINE_BYTES or not line.endswith(b"\n"):
            raise BundleError("the bundle has a line that is too long or not terminated")
        yield line


def read_header(path: Path) -> Header:
    """The first line, not yet trusted: it only says whose key must have signed the bundle."""
    try:
        with path.open("rb") as handle:
            first = handle.readline(MAX_LINE_BYTES + 1)
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        header: Header = _header_decoder.decode(first)
        return header
    except msgspec.DecodeError as exc:
        raise BundleError(
            "this is not a satellite sync bundle (its first line is not a bundle header)"
        ) from exc


@dataclass(frozen=True)
class VerifiedBundle:
    path: Path
    header: Header
    digest: bytes
    records: int

    @property
    def digest_hex(self) -> str:
        return self.digest.hex()


def verify(path: Path, key: PublicKey, max_bytes: int) -> VerifiedBundle:
    """Check size limits and the signature; nothing but the header is parsed before."""
    header = read_header(path)
    digest = BundleDigest()
    last: bytes | None = None
    with path.open("rb") as handle:
        for line in _lines(handle, max_bytes):
            if last is not None:
                digest.update(last)
            last = line
    if last is None:
        raise BundleError("the bundle is empty")
    try:
        signature = _signature_decoder.decode(last)
    except msgspec.DecodeError as exc:
        raise BundleError(
            "the bundle does not end with its signature line: it was cut short"
        ) from exc
    try:
        verify_digest(key, digest.digest(), signature.signature)
    except BundleSignatureError as exc:
        raise BundleError(
            "the bundle's signature does not verify: it was altered, or it was not signed "
            "by the party it names"
        ) from exc
    return VerifiedBundle(path, header, digest.digest(), signature.records)


def records(bundle: VerifiedBundle, batch: int = 10_000) -> Iterator[list[Record]]:
    """The records of a verified bundle, in batches."""
    out: list[Record] = []
    count = 0
    with bundle.path.open("rb") as handle:
        handle.readline(MAX_LINE_BYTES + 1)  # the header
        for line in handle:
            if count == bundle.records:
                break  # the signature line
            try:
                out.append(_record_decoder.decode(line))
            except msgspec.ValidationError as exc:
                raise BundleError(f"record {count + 1} of the bundle: {exc}") from exc
            except msgspec.DecodeError as exc:
                raise BundleError(f"record {count + 1} of the bundle is not JSON") from exc
            count += 1
            if len(out) >= batch:
                yield out
                out = []
    if count != bundle.records:
        raise BundleError("the bundle has fewer records than its signature line says")
    if out:
        yield out
