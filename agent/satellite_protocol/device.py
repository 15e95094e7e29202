"""The device API's messages (``/device/v1``).

A product signs every request as a flattened JWS (ES256) whose protected header carries
the server ``nonce`` and the request path as ``url``; registration carries the product's
public key as ``jwk``, later requests name it by ``kid`` = product instance id. The server
answers with a JWS signed by its answer-signing key: the payload is the answer proper, and
the protected header carries the ``nonce`` and ``url`` of the request it answers, so an
answer cannot be replayed for another request. Every device API response, success or
problem, carries the next nonce in ``Replay-Nonce``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

import msgspec

PREFIX = "/device/v1"
NONCE_HEADER = "Replay-Nonce"
# A protected header parameter (true) of a product's signed request: it does not share its
# host name and IP address (any more): the server forgets what it had of them.
WITHHOLD_HOST = "withholdHost"
# GET: the server's CA certificate (PEM), whose fingerprint a registration token carries;
# a product fetches it before it registers over https:// to verify TLS with it.
CA_CERTIFICATE = "/ca-certificate"

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
# The ID certificate names the product by PID and serial number in an X.509 attribute of
# type PrintableString, which holds these characters only (no "_", "@", "#", "*", accents).
PRINTABLE_STRING = r"\A[A-Za-z0-9 '()+,\-./:=?]+\Z"
UdiPart = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=PRINTABLE_STRING)]
# The product's CSR carries "PID:serial" as its common name, of at most 64 characters.
CSR_NAME_MAX = 64
TagState = Literal["AUTHORIZED", "OUT_OF_COMPLIANCE", "NOT_AUTHORIZED"]
AuthorizationState = Literal["AUTHORIZED", "OUT_OF_COMPLIANCE", "NOT_AUTHORIZED"]


class _Message(msgspec.Struct, forbid_unknown_fields=True, rename="camel", kw_only=True):
    pass


class Udi(_Message):
    udi_pid: UdiPart = msgspec.field(name="pid")
    udi_serial: UdiPart = msgspec.field(name="serialNumber")
    udi_uuid: Text = msgspec.field(name="uuid")


# One part of a flattened JWS: base64url, no padding.
Base64Url = Annotated[str, msgspec.Meta(min_length=1, max_length=4096, pattern="^[A-Za-z0-9_-]+$")]


class KeyProof(_Message):
    """A flattened JWS signed with the registering product's current key: protected header
    ``kid`` = its product instance id, ``nonce`` and ``url`` those of the registration
    request; payload: the JWK thumbprint of the new key. It proves that the request comes
    from the live product instance of the UDI (only it holds that key)."""

    protected: Base64Url
    payload: Base64Url
    signature: Base64Url


def udi_refusal(pid: str, serial_number: str) -> str | None:
    """Why a product with this PID and serial number cannot register, or None."""
    for name, value in (("PID", pid), ("serial number", serial_number)):
        if not re.search(PRINTABLE_STRING, value):
            return (
                f"the {name} {value!r} must be letters, digits, spaces and ' ( ) + , - . / : = ? "
                "only (X.509 PrintableString)"
            )
    if len(pid) + 1 + len(serial_number) > CSR_NAME_MAX:
        return f"PID:serial is longer than {CSR_NAME_MAX} characters"
    return None


class RegisterRequest(_Message):
    # The token never travels: its id (SHA-256, base64url) and a proof of possession,
    # HMAC-SHA256 keyed with the token over "satellite-register|<nonce>|<jwk thumbprint>".
    token_id: Annotated[str, msgspec.Meta(min_length=43, max_length=43)]
    token_proof: Annotated[str, msgspec.Meta(min_length=43, max_length=43)]
    udi: Udi
    csr: Annotated[str, msgspec.Meta(min_length=1, max_length=8192)]
    product_type: Text
    product_version: Text
    hostname: Text | None = None  # absent when the product does not share it
    ip_address: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    # A UDI that is registered already moves or is replaced only when the request proves
    # it is that product (``current_key_proof``), or, with ``force``, when the token is of
    # that product's own virtual account (the old registration ends as replaced).
    current_key_proof: KeyProof | None = None
    force: bool = False


class UsageEntry(_Message):
    tag: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    count: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]


class UsageReport(_Message):
    usage: Annotated[list[UsageEntry], msgspec.Meta(max_length=1000)]


class RenewRegistrationRequest(_Message):
    csr: Annotated[str, msgspec.Meta(min_length=1, max_length=8192)]


class NoParameters(_Message):
    pass


class TagAuthorization(_Message):
    tag: str
    display_name: str
    count: int
    state: TagState


class Authorization(_Message):
    state: AuthorizationState
    tags: list[TagAuthorization]
    issued_at: dt.datetime
    expires_at: dt.datetime
    renew_after: dt.datetime


class Registration(_Message):
    product_instance_id: str
    virtual_account: str
    certificate: str  # PEM, issued by the CA the token pinned
    certificate_expires_at: dt.datetime
    renew_registration_after: dt.datetime
    export_controlled: bool


class RegisterAnswer(_Message):
    registration: Registration
    authorization: Authorization
    ca_certificate: str  # PEM: its fingerprint must be the one in the token
    signing_certificate: str  # PEM, issued by that CA: it signs every answer
    # Export-controlled features whose keys the server took back as the product registered
    # again (into another virtual account, or without export-controlled features); the
    # product raises SmartLicenseExportControlNotAllowed for them.
    released_export_features: list[str] = []


class Deregistered(_Message):
    product_instance_id: str
    deregistered_at: dt.datetime
    # Export-controlled features whose keys the server took back (their licenses went back
    # to the pool); the product raises SmartLicenseExportControlNotAllowed for them.
    released_export_features: list[str] = []


# --- export-controlled features ------------------------------------------------------------

# The ``typ`` of the JWS header of an export authorization key: a JWS signed with the
# server's answer-signing key (the one whose certificate the product pinned), verifiable
# on its own, whose payload is ``ExportKeyClaims``.
EXPORT_KEY_TYPE = "satellite-export-key"


class ExportRequest(_Message):
    """``license smart export request|return local <feature>``."""

    feature: Text


class ExportKeyClaims(_Message):
    """What an export authorization key says: this feature, for this very product."""

    key_id: str
    product_instance_id: str
    udi: Udi
    feature: str
    tag: str
    issued_at: dt.datetime


class ExportGranted(_Message):
    feature: str
    tag: str
    display_name: str
    key: dict[str, str]  # the export authorization key: a flattened JWS of ExportKeyClaims
    granted_at: dt.datetime


class ExportReturned(_Message):
    feature: str
    returned: bool  # False: the product held no key for it (given back already)


class Answer(_Message):
    """The signed payload of every successful device API answer."""

    request_nonce: str
    body: dict[str, Any]
