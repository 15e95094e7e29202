"""Specific license reservation (SLR) codes: what travels by hand between product and server.

* Request code (product -> server): the product's UDI and type, a request nonce and the
  product's reservation public key, base32 with a checksum that catches a mistyped code.
* Authorization code (server -> product): the ``<specificPLR>`` XML of the reference, its
  ``<signature>`` an ECDSA P-256 signature (base64 DER, SHA-256) by the server's signing key
  over the exact bytes of the ``<authorizationCode>`` element. Its ``<piid>`` is the request
  nonce: it ties the code to one request of one product (the ``<udi>`` element is outside
  the signed bytes, so the binding cannot rest on it).
* Confirmation and return codes (product -> server): the piid and the timestamp of the
  authorization code they answer, signed by the product's reservation key, whose public
  half the server has from the request code. The server can tell that this product, and
  nobody else, installed or gave back that very code.

Every decoder checks sizes first, and no field of an authorization code is trusted before
its signature verified.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Literal
from xml.sax.saxutils import escape, unescape

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from satellite_protocol.catalog import LicenseType
from satellite_protocol.crypto import keys
from satellite_protocol.untrusted import NESTED_TOO_DEEP, NUL, too_deep

MAX_CODE_CHARS = 65_536  # an authorization code with a few hundred entitlements fits
MAX_SHORT_CODE_CHARS = 2_048  # request, confirmation and return codes
REQUEST_PREFIX = "SLR1-"
CONFIRMATION_PREFIX = "SLRC-"
RETURN_PREFIX = "SLRR-"
_CHECKSUM_CHARS = 6
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_CONFIRM_CONTEXT = b"satellite-slr-confirmation|"
_RETURN_CONTEXT = b"satellite-slr-return|"
# The signed element, the signature, the UDI: the tail fixes where the element ends.
_CODE_RE = re.compile(
    r"<specificPLR>(<authorizationCode>.*</authorizationCode>)"
    r"<signature>([A-Za-z0-9+/=\s]{1,300})</signature><udi>([^<]{0,512})</udi></specificPLR>",
    re.DOTALL,
)


class CodeError(ValueError):
    """A code is malformed, mistyped, or its signature does not verify: the message says which."""


# --- encodings -----------------------------------------------------------------------------


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=")


def _unb32(text: str) -> bytes:
    try:
        return base64.b32decode(text + "=" * (-len(text) % 8))
    except ValueError as exc:
        raise CodeError("it holds characters a code never has") from exc


def _checksum(body: str) -> str:
    return _b32(hashlib.sha256(body.encode("ascii")).digest())[:_CHECKSUM_CHARS]


def _compact(code: str, limit: int) -> str:
    """A code as typed or pasted: blanks and line breaks dropped, any case."""
    if len(code) > limit:
        raise CodeError(f"it is longer than {limit} characters")
    return re.sub(r"\s+", "", code).upper()


def public_key_text(key: ec.EllipticCurvePublicKey) -> str:
    """A P-256 public key as compressed point, URL-safe base64 (what a request code carries)."""
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    return base64.urlsafe_b64encode(point).decode("ascii").rstrip("=")


def public_key_from_text(text: str) -> ec.EllipticCurvePublicKey:
    try:
        point = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except (ValueError, TypeError) as exc:
        raise CodeError("the product's public key in it is not a P-256 key") from exc


# --- request code --------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestCode:
    udi_pid: str
    udi_serial: str
    udi_uuid: str
    product_type: str
    nonce: str  # a UUID: the product instance id of the reservation it asks for
    public_key: str  # public_key_text of the product's reservation key

    @property
    def udi(self) -> str:
        return udi_text(self.udi_pid, self.udi_serial, self.udi_uuid)

    def encode(self) -> str:
        fields = [
            self.udi_pid,
            self.udi_serial,
            self.udi_uuid,
            self.product_type,
            self.nonce,
            self.public_key,
        ]
        body = _b32(json.dumps(fields, separators=(",", ":")).encode("utf-8"))
        return f"{REQUEST_PREFIX}{body}-{_checksum(body)}"


def decode_request_code(code: str) -> RequestCode:
    text = _compact(code, MAX_SHORT_CODE_CHARS)
    if not text.startswith(REQUEST_PREFIX):
        raise CodeError(f"a request code starts with {REQUEST_PREFIX}")
    body, dash, checksum = text[len(REQUEST_PREFIX) :].rpartition("-")
    if not dash or not body:
        raise CodeError("it is cut short (the checksum is missing)")
    if checksum != _checksum(body):
        raise CodeError("it is mistyped: its checksum does not match (copy it again)")
    try:
        raw = _unb32(body)
        if too_deep(raw):
            raise ValueError(NESTED_TOO_DEEP)
        # msgspec, not json.loads: it refuses a lone surrogate escape, which no database
        # text can hold (nor U+0000, refused below).
        fields = msgspec.json.decode(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CodeError("it is not a request code of this kind") from exc
    if (
        not isinstance(fields, list)
        or len(fields) != 6
        or not all(isinstance(f, str) and 0 < len(f) <= 128 and NUL not in f for f in fields)
    ):
        raise CodeError("it is not a request code of this kind")
    request = RequestCode(*fields)
    try:
        uuid.UUID(request.nonce)
    except ValueError as exc:
        raise CodeError("its request nonce is not a UUID") from exc
    public_key_from_text(request.public_key)
    return request


# --- authorization code --------------------------------------------------------------------


def udi_text(pid: str, serial: str, product_uuid: str) -> str:
    return f"P:{pid},S:{serial},U:{product_uuid}"


def format_date(value: dt.date | None) -> str:
    """As the reference writes dates in codes: ``2020-Mar-04 UTC``; empty for none."""
    if value is None:
        return ""
    return f"{value.year:04d}-{_MONTHS[value.month - 1]}-{value.day:02d} UTC"


def parse_date(text: str) -> dt.date | None:
    if not text:
        return None
    match = re.fullmatch(r"(\d{4})-([A-Za-z]{3})-(\d{2}) UTC", text)
    if match is None or match[2].title() not in _MONTHS:
        raise CodeError(f"date {text!r} is not like 2020-Mar-04 UTC")
    try:
        return dt.date(int(match[1]), _MONTHS.index(match[2].title()) + 1, int(match[3]))
    except ValueError as exc:
        raise CodeError(f"date {text!r} does not exist") from exc


@dataclass(frozen=True)
class Entitlement:
    tag: str
    count: int
    start_date: dt.date | None
    end_date: dt.date | None
    license_type: LicenseType
    display_name: str
    tag_description: str
    subscription_id: str

    def counts_on(self, day: dt.date) -> bool:
        """Reserved licenses count from their start date to their end date, inclusive."""
        if self.start_date is not None and day < self.start_date:
            return False
        return self.end_date is None or day <= self.end_date


@dataclass(frozen=True)
class AuthorizationCode:
    piid: str
    timestamp: int  # milliseconds since the epoch; later codes for a product are larger
    entitlements: tuple[Entitlement, ...]
    udi: str
    text: str  # the whole code, exactly as issued

    @property
    def issued_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.timestamp / 1000, dt.UTC)


def _element(entitlements: tuple[Entitlement, ...], piid: str, timestamp: int) -> str:
    parts = [
        "<authorizationCode><flag>A</flag><version>C</version>",
        f"<piid>{escape(piid)}</piid><timestamp>{timestamp}</timestamp><entitlements>",
    ]
    for e in entitlements:
        parts.append(
            f"<entitlement><tag>{escape(e.tag)}</tag><count>{e.count}</count>"
            f"<startDate>{format_date(e.start_date)}</startDate>"
            f"<endDate>{format_date(e.end_date)}</endDate>"
            f"<licenseType>{e.license_type}</licenseType>"
            f"<displayName>{escape(e.display_name)}</displayName>"
            f"<tagDescription>{escape(e.tag_description)}</tagDescription>"
            f"<subscriptionID>{escape(e.subscription_id)}</subscriptionID></entitlement>"
        )
    parts.append("</entitlements></authorizationCode>")
    return "".join(parts)


def issue_authorization_code(
    signing_key: ec.EllipticCurvePrivateKey,
    piid: str,
    timestamp: int,
    entitlements: tuple[Entitlement, ...],
    udi: str,
) -> AuthorizationCode:
    element = _element(entitlements, piid, timestamp)
    signature = signing_key.sign(element.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
    text = (
        f"<specificPLR>{element}<signature>{base64.b64encode(signature).decode('ascii')}"
        f"</signature><udi>{escape(udi)}</udi></specificPLR>"
    )
    return AuthorizationCode(piid, timestamp, entitlements, udi, text)


def load_trusted_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    """The key authorization codes must be signed with, from a PEM public key or certificate
    (the server's ``keys/signing.pub`` or ``keys/signing.crt``)."""
    from cryptography import x509

    key: object
    try:
        if b"BEGIN CERTIFICATE" in pem:
            key = x509.load_pem_x509_certificate(pem).public_key()
        else:
            key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise CodeError(f"not a PEM public key or certificate: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise CodeError("the trusted key must be an ECDSA P-256 key")
    return key


def public_key_pem(key: ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def _text(parent: ET.Element, name: str, limit: int = 512) -> str:
    found = parent.findall(name)
    if len(found) != 1:
        raise CodeError(f"it has {len(found)} <{name}> elements where one belongs")
    value = found[0].text or ""
    if len(value) > limit:
        raise CodeError(f"its <{name}> is too long")
    return value


def verify_authorization_code(code: str, trusted: ec.EllipticCurvePublicKey) -> AuthorizationCode:
    """Check the signature over the exact ``<authorizationCode>`` bytes, then read the code.

    Only the signed element is parsed for what it grants: nothing outside the signed bytes
    can add to it.
    """
    if len(code) > MAX_CODE_CHARS:
        raise CodeError(f"it is longer than {MAX_CODE_CHARS} characters")
    text = code.strip()
    if "<!" in text or "<?" in text:
        raise CodeError("an authorization code has no declarations or DTD")
    parts = _CODE_RE.fullmatch(text)
    if parts is None:
        raise CodeError("it is not a <specificPLR> of <authorizationCode>, <signature> and <udi>")
    element, signature, udi = parts[1], parts[2], parts[3]
    try:
        der = base64.b64decode("".join(signature.split()), validate=True)
        trusted.verify(der, element.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
    except (ValueError, InvalidSignature) as exc:
        raise CodeError(
            "its signature does not verify with the trusted server key (altered, or not "
            "issued by the server this product trusts)"
        ) from exc
    try:
        signed = ET.fromstring(element)  # noqa: S314 - signed by the trusted key, no DTD
    except ET.ParseError as exc:
        raise CodeError(f"it is not well-formed XML: {exc}") from exc
    if _text(signed, "flag") != "A" or _text(signed, "version") != "C":
        raise CodeError("it is not an authorization code of a version this product knows")
    timestamp_text = _text(signed, "timestamp", 20)
    if not re.fullmatch(r"[0-9]+", timestamp_text):
        raise CodeError("its <timestamp> is not a number")
    lists = signed.findall("entitlements")
    if len(lists) != 1:
        raise CodeError("it has no <entitlements>")
    entitlements = []
    for item in lists[0].findall("entitlement"):
        count = _text(item, "count", 9)
        license_type = _text(item, "licenseType", 20)
        if not re.fullmatch(r"[0-9]+", count) or license_type not in (
            "PERPETUAL",
            "TERM",
            "SUBSCRIPTION",
        ):
            raise CodeError("an entitlement's <count> or <licenseType> is not valid")
        entitlements.append(
            Entitlement(
                tag=_text(item, "tag"),
                count=int(count),
                start_date=parse_date(_text(item, "startDate", 20)),
                end_date=parse_date(_text(item, "endDate", 20)),
                license_type=license_type,  # type: ignore[arg-type] # checked just above
                display_name=_text(item, "displayName"),
                tag_description=_text(item, "tagDescription"),
                subscription_id=_text(item, "subscriptionID"),
            )
        )
    return AuthorizationCode(
        piid=_text(signed, "piid", 64),
        timestamp=int(timestamp_text),
        entitlements=tuple(entitlements),
        udi=unescape(udi),
        text=text,
    )


# --- confirmation and return codes ---------------------------------------------------------


@dataclass(frozen=True)
class ProductCode:
    """A confirmation or return code: which authorization code (piid, timestamp) it answers."""

    kind: Literal["confirmation", "return"]
    piid: str
    timestamp: int
    signature: bytes  # raw r || s
    signed: bytes

    def verify(self, public_key: str) -> None:
        key = public_key_from_text(public_key)
        r, s = int.from_bytes(self.signature[:32]), int.from_bytes(self.signature[32:])
        try:
            key.verify(encode_dss_signature(r, s), self.signed, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as exc:
            raise CodeError(
                f"the {self.kind} code does not verify: mistyped, or not made by this product"
            ) from exc


def _context(kind: Literal["confirmation", "return"]) -> bytes:
    return _CONFIRM_CONTEXT if kind == "confirmation" else _RETURN_CONTEXT


def _prefix(kind: Literal["confirmation", "return"]) -> str:
    return CONFIRMATION_PREFIX if kind == "confirmation" else RETURN_PREFIX


def make_product_code(
    kind: Literal["confirmation", "return"],
    key: ec.EllipticCurvePrivateKey,
    piid: str,
    timestamp: int,
) -> str:
    body = uuid.UUID(piid).bytes + timestamp.to_bytes(8, "big")
    r, s = decode_dss_signature(key.sign(_context(kind) + body, ec.ECDSA(hashes.SHA256())))
    return _prefix(kind) + _b32(body + r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def decode_product_code(kind: Literal["confirmation", "return"], code: str) -> ProductCode:
    text = _compact(code, MAX_SHORT_CODE_CHARS)
    prefix = _prefix(kind)
    if not text.startswith(prefix):
        raise CodeError(f"a {kind} code starts with {prefix}")
    raw = _unb32(text[len(prefix) :])
    if len(raw) != 16 + 8 + 64:
        raise CodeError(f"it is not a {kind} code: mistyped, or cut short")
    body = raw[:24]
    return ProductCode(
        kind=kind,
        piid=str(uuid.UUID(bytes=body[:16])),
        timestamp=int.from_bytes(body[16:24], "big"),
        signature=raw[24:],
        signed=_context(kind) + body,
    )


def load_private_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = keys.load_private_key(pem)
    if key is None:
        raise CodeError("the reservation key is not an ECDSA key")
    return key
