"""Plain records the services pass around."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from satellite.domain.access import Role
from satellite.domain.alerts import AlertDetails

Severity = Literal["Info", "Minor", "Major", "Critical"]
TokenStatus = Literal["Active", "Expired", "Revoked", "Used"]
PrincipalKind = Literal["client", "user"]


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    domain: str | None  # the smart account's domain name
    description: str
    export_controlled_allowed: bool
    created_at: dt.datetime


@dataclass(frozen=True)
class VirtualAccount:
    id: int
    account_id: int
    name: str
    description: str
    is_default: bool
    created_at: dt.datetime


@dataclass(frozen=True)
class RegistrationToken:
    """A token row; ``ciphertext`` holds the token itself, encrypted with the server key."""

    id: int
    virtual_account_id: int
    virtual_account: str
    digest: bytes
    ciphertext: bytes
    description: str
    export_controlled: bool
    max_uses: int | None
    uses: int
    created_by: str
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None

    def status(self, now: dt.datetime) -> TokenStatus:
        if self.revoked_at is not None:
            return "Revoked"
        if now >= self.expires_at:
            return "Expired"
        if self.max_uses is not None and self.uses >= self.max_uses:
            return "Used"
        return "Active"


@dataclass(frozen=True)
class PrincipalRecord:
    id: int
    kind: PrincipalKind
    login: str
    role: Role
    description: str
    accounts: tuple[tuple[int, str], ...]  # (id, name) of its scope, by name
    created_at: dt.datetime
    disabled_at: dt.datetime | None

    @property
    def account_ids(self) -> frozenset[int]:
        return frozenset(account_id for account_id, _ in self.accounts)

    @property
    def account_names(self) -> tuple[str, ...]:
        return tuple(name for _, name in self.accounts)


@dataclass(frozen=True)
class Event:
    id: int
    occurred_at: dt.datetime
    account: str | None
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    request_id: str | None


@dataclass(frozen=True)
class Alert:
    id: int
    account: str
    virtual_account: str | None
    message_type: str
    severity: Severity
    source: str
    message: str
    details: AlertDetails | None  # None: raised before alerts kept their details (sql/018)
    created_at: dt.datetime
    cleared_at: dt.datetime | None


ProductInstanceStatus = Literal[
    "registered", "registration_expired", "deregistered", "removed", "replaced"
]
AuthorizationStatus = Literal["Authorized", "Expired"]


@dataclass(frozen=True)
class ProductInstance:
    id: str
    virtual_account_id: int
    virtual_account: str
    account_id: int
    udi_pid: str
    udi_serial: str
    udi_uuid: str
    product_type: str
    product_version: str
    hostname: str | None
    ip_address: str | None
    public_jwk: dict[str, Any]
    export_controlled: bool
    status: ProductInstanceStatus
    registered_at: dt.datetime
    last_contact_at: dt.datetime
    certificate_expires_at: dt.datetime
    authorization_expires_at: dt.datetime
    ended_at: dt.datetime | None

    def authorization_status(self, now: dt.datetime) -> AuthorizationStatus:
        """Authorized while the last authorization holds; ending the product ends it too."""
        if self.status == "registered" and now < self.authorization_expires_at:
            return "Authorized"
        return "Expired"


@dataclass(frozen=True)
class UsageRecord:
    """One usage report of a product, as it was received."""

    id: int
    reported_at: dt.datetime
    usage: dict[str, int]


ExportKeyStatus = Literal["granted", "returned", "released"]
# Why an export key ended (returned by the product, or released by what it went through).
ExportKeyEndReason = Literal[
    "returned", "deregistered", "removed", "re-registered", "replaced", "registration expired"
]


class HasUdi(Protocol):
    @property
    def udi_pid(self) -> str: ...
    @property
    def udi_serial(self) -> str: ...


def udi_label(product: HasUdi) -> str:
    """How the audit log and alerts name a product: ``PID:<pid> SN:<serial>``."""
    return f"PID:{product.udi_pid} SN:{product.udi_serial}"


@dataclass(frozen=True)
class ExportKey:
    """An export authorization key granted to a product: one license of ``tag`` out of its
    virtual account's pool while ``status`` is granted."""

    id: str
    product_id: str
    virtual_account_id: int
    virtual_account: str
    udi_pid: str
    udi_serial: str
    udi_uuid: str
    feature: str
    tag: str
    status: ExportKeyStatus
    granted_at: dt.datetime
    ended_at: dt.datetime | None
    end_reason: ExportKeyEndReason | None
