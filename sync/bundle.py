"""The sync bundle: one signed format for both modes (docs/sync.md).

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
from typing import IO, Annotated, Literal, TypeVar

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
from satellite_protocol.catalog import LicenseType
from satellite_protocol.untrusted import ESCAPED_NUL, NESTED_TOO_DEEP, nul_field, too_deep

FORMAT = "satellite-sync/1"
MAX_LINE_BYTES = 64 * 1024  # one record; a product's is a few hundred bytes


class _Record(msgspec.Struct, tag_field="type", rename="camel", forbid_unknown_fields=True):
    pass


# Field limits: a bundle is only read once its signature verifies, but the signer may be
# wrong about something; nothing it says may be larger than the columns it lands in.
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Text = Annotated[str, msgspec.Meta(max_length=500)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Pem = Annotated[str, msgspec.Meta(min_length=1, max_length=16_384)]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Secret = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]

# --- headers ---------------------------------------------------------------------------


class RegistrationRequest(_Record, tag="registrationRequest", kw_only=True):
    """A satellite asks to be registered; signed with the key it asks a certificate for."""

    format: Text = FORMAT
    name: Name
    local_account: Name
    token: Secret
    public_key: Pem
    created_at: dt.datetime


class RegistrationAnswer(_Record, tag="registrationAnswer", kw_only=True):
    """The upstream's answer; signed with the key it pins (``upstream_key``)."""

    format: Text = FORMAT
    satellite_id: Id
    request_digest: Id  # hex SHA-256 of the registration request
    upstream_account: Name
    certificate: Pem  # the satellite's, issued by the upstream's CA
    upstream_key: Pem  # what every later answer is signed with
    created_at: dt.datetime


class SyncRequest(_Record, tag="syncRequest", kw_only=True):
    """What changed at the satellite since the upstream acknowledged ``since``."""

    format: Text = FORMAT
    satellite_id: Id
    sequence: Count
    local_account: Name
    since: Count  # transaction-id watermark (see sql/008_sync.sql)
    through: Count
    created_at: dt.datetime


class SyncAnswer(_Record, tag="syncAnswer", kw_only=True):
    """The upstream's pools and flags, and the acknowledgement of one request."""

    format: Text = FORMAT
    satellite_id: Id
    sequence: Count  # the request it answers
    request_digest: Id
    upstream_account: Name
    export_controlled_allowed: bool
    created_at: dt.datetime


Header = RegistrationRequest | RegistrationAnswer | SyncRequest | SyncAnswer


# --- records ---------------------------------------------------------------------------


class VirtualAccountRecord(_Record, tag="virtualAccount", kw_only=True):
    name: Name
    description: Text = ""


class UsageRecord(_Record, tag="usage", kw_only=True):
    """What a virtual account's products take of a tag at the satellite: in use by
    registered products, reserved (SLR) and granted as export keys."""

    virtual_account: Name
    tag_: Tag = msgspec.field(name="tag")
    in_use: Count
    reserved: Count = 0
    exported: Count = 0


class ReservedLicense(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    tag: Tag
    quantity: Count
    license_type: LicenseType
    end_date: dt.date | None = None
    stage: Literal["current", "pending"] = "current"  # pending: not confirmed yet


class ProductRecord(_Record, tag="product", kw_only=True):
    id: Id
    virtual_account: Name
    pid: Text
    serial_number: Text
    uuid: Text
    product_type: Text
    product_version: Text
    hostname: Text | None
    ip_address: Text | None
    export_controlled: bool
    status: Annotated[str, msgspec.Meta(max_length=40)]
    registered_at: dt.datetime
    ended_at: dt.datetime | None
    reservation: Annotated[str, msgspec.Meta(max_length=40)] | None = None  # its status
    reserved: list[ReservedLicense] = msgspec.field(default_factory=list)
    export_keys: list[Name] = msgspec.field(default_factory=list)  # features it holds


class DepartureRecord(_Record, tag="departed", kw_only=True):
    """Something that left the satellite's account: a product (moved to another account,
    or deleted) by its id, or a virtual account (deleted) by its name."""

    what: Literal["product", "virtualAccount"]
    key: Text


class LicenseRecord(_Record, tag="license", kw_only=True):
    id: Annotated[int, msgspec.Meta(ge=1)]
    virtual_account: Name
    tag_: Tag = msgspec.field(name="tag")
    quantity: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)]
    license_type: LicenseType
    start_date: dt.date | None
    end_date: dt.date | None
    subscription_id: Text | None
    export_restricted: bool


class SignatureLine(_Record, tag="signature", kw_only=True):
    records: Count
    signature: Annotated[str, msgspec.Meta(max_length=200)]


Record = VirtualAccountRecord | UsageRecord | DepartureRecord | ProductRecord | LicenseRecord

_V = TypeVar("_V")
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


def _untrusted(line: bytes, what: str) -> bytes:
    """``line``, if its nesting is within the limit every decoder of untrusted JSON keeps."""
    if too_deep(line):
        raise BundleError(f"{what}: {NESTED_TOO_DEEP}")
    return line


def _without_nul(value: _V, what: str) -> _V:
    where = nul_field(value)
    if where is not None:
        raise BundleError(f"{what}: `{where}` must not contain U+0000 (NUL)")
    return value


def decode_header(first: bytes) -> Header:
    try:
        header: Header = _header_decoder.decode(_untrusted(first, "the bundle's header"))
    except msgspec.ValidationError as exc:
        raise BundleError(f"the bundle's header is not valid: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise BundleError(
            "this is not a satellite sync bundle (its first line is not a bundle header)"
        ) from exc
    if header.format != FORMAT:
        raise BundleError(f"the bundle's format is {header.format!r}; this version reads {FORMAT}")
    return _without_nul(header, "the bundle's header")


def read_header(path: Path) -> Header:
    """The first line, not yet trusted: it only says whose key must have signed the bundle.
    (What the bundle says is read from ``verify``'s result, never from this.)"""
    try:
        with path.open("rb") as handle:
            first = handle.readline(MAX_LINE_BYTES + 1)
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror}") from exc
    return decode_header(first)


@dataclass(frozen=True)
class VerifiedBundle:
    path: Path
    header: Header
    digest: bytes
    records: int
    max_bytes: int

    @property
    def digest_hex(self) -> str:
        return self.digest.hex()


def verify(path: Path, key: PublicKey, max_bytes: int) -> VerifiedBundle:
    """Check size limits and the signature, in one pass over the file that also reads the
    header (the one returned: signed). Records are parsed only later, by ``records``."""
    digest = BundleDigest()
    first: bytes | None = None
    last: bytes | None = None
    try:
        with path.open("rb") as handle:
            for line in _lines(handle, max_bytes):
                if last is not None:
                    digest.update(last)
                if first is None:
                    first = line
                last = line
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror}") from exc
    if first is None or last is None or first is last:
        raise BundleError("the bundle is empty or cut short")
    header = decode_header(first)
    try:
        signature = _signature_decoder.decode(_untrusted(last, "the bundle's signature line"))
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
    return VerifiedBundle(path, header, digest.digest(), signature.records, max_bytes)


H = TypeVar("H", RegistrationRequest, RegistrationAnswer, SyncRequest, SyncAnswer)


def signed_header(bundle: VerifiedBundle, seen: H) -> H:
    """``seen`` (the header read to choose the key) is the header that was verified: the
    file did not change in between."""
    if bundle.header != seen:
        raise BundleError("the bundle file changed while it was read: carry it in again")
    return seen


def records(bundle: VerifiedBundle, batch: int = 10_000) -> Iterator[list[Record]]:
    """The records of a verified bundle, in batches.

    The file is read again, so it is hashed again: the last batch is handed out only once
    every byte read proved to be what was verified, and a file changed in between raises
    instead. A caller that applies the batches in one transaction thus never commits an
    unverified record."""
    digest = BundleDigest()
    out: list[Record] = []
    count = 0
    with bundle.path.open("rb") as handle:
        lines = _lines(handle, bundle.max_bytes)
        digest.update(next(lines, b""))  # the header
        for line in lines:
            if count == bundle.records:
                break  # the signature line
            digest.update(line)
            if too_deep(line):
                raise BundleError(f"record {count + 1} of the bundle: {NESTED_TOO_DEEP}")
            try:
                record = _record_decoder.decode(line)
            except msgspec.ValidationError as exc:
                raise BundleError(f"record {count + 1} of the bundle: {exc}") from exc
            except msgspec.DecodeError as exc:
                raise BundleError(f"record {count + 1} of the bundle is not JSON") from exc
            if ESCAPED_NUL in line:  # (the only way JSON spells U+0000)
                record = _without_nul(record, f"record {count + 1} of the bundle")
            out.append(record)
            count += 1
            if len(out) >= batch:
                yield out
                out = []
    if count != bundle.records or digest.digest() != bundle.digest:
        raise BundleError("the bundle file changed while it was read: carry it in again")
    if out:
        yield out
