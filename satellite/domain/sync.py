"""Sync with the upstream: the records both sides keep, and the authorization horizon."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from satellite.domain.models import TokenStatus
from satellite_protocol.catalog import LicenseType

SyncMode = Literal["connected", "disconnected"]
Outcome = Literal["success", "failure"]
# What a history entry records: a sync request written (export), an answer applied
# (import), a sync now, a scheduled sync.
SyncOperation = Literal["export", "import", "sync-now", "scheduled"]
# The counts an applied answer records.
SyncCount = Literal["added", "changed", "removed", "virtualAccountsCreated", "flagsChanged"]


@dataclass(frozen=True)
class SyncLink:
    """A local account's link to its smart account at the upstream (satellite side)."""

    account_id: int
    account: str
    satellite_id: str
    upstream_url: str | None
    upstream_account: str
    upstream_key: str
    private_key: bytes  # encrypted
    certificate: str
    registered_at: dt.datetime
    request_sequence: int
    applied_sequence: int
    applied_digest: bytes | None
    acknowledged_xid: int
    last_success_at: dt.datetime | None
    last_attempt_at: dt.datetime | None
    last_error: str | None
    last_error_at: dt.datetime | None
    next_run_at: dt.datetime | None

    @property
    def mode(self) -> SyncMode:
        return "connected" if self.upstream_url else "disconnected"

    def in_step_since(self) -> dt.datetime:
        """From when the horizon counts: the last successful sync, else the registration."""
        return self.last_success_at or self.registered_at


@dataclass(frozen=True)
class WrittenSyncRequest:
    sequence: int
    digest: bytes
    through_xid: int


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    mode: SyncMode
    operation: SyncOperation
    started_at: dt.datetime
    finished_at: dt.datetime
    outcome: Outcome
    sequence: int | None
    counts: dict[str, Any]
    error: str | None


@dataclass(frozen=True)
class SatelliteToken:
    id: int
    account_id: int
    description: str
    created_by: str
    created_at: dt.datetime
    expires_at: dt.datetime
    used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    def status(self, now: dt.datetime) -> TokenStatus:
        if self.revoked_at is not None:
            return "Revoked"
        if self.used_at is not None:
            return "Used"
        if now >= self.expires_at:
            return "Expired"
        return "Active"


@dataclass(frozen=True)
class RegisteredSatellite:
    """A satellite as its upstream knows it."""

    id: str
    account_id: int
    account: str
    name: str
    public_key: str
    registered_at: dt.datetime
    last_sequence: int
    last_digest: bytes | None
    last_answer: bytes | None
    last_sync_at: dt.datetime | None
    revoked_at: dt.datetime | None
    products: int = 0


def horizon_passed(in_step_since: dt.datetime, now: dt.datetime, horizon_days: int) -> bool:
    """A satellite out of step with its upstream for longer than the horizon grants no new
    authorizations: what it knows of the pools may no longer be true."""
    return now - in_step_since > dt.timedelta(days=horizon_days)


@dataclass(frozen=True)
class MirroredProduct:
    """A satellite's product as the satellite's last sync request left it at the upstream."""

    id: str
    virtual_account: str
    udi_pid: str
    udi_serial: str
    udi_uuid: str
    product_type: str
    product_version: str
    hostname: str | None
    ip_address: str | None
    export_controlled: bool
    status: str
    registered_at: dt.datetime
    ended_at: dt.datetime | None
    export_keys: list[str]  # the features it holds export keys for
    reservation: dict[str, Any] | None  # its status and reserved licenses, as reported


@dataclass(frozen=True)
class MirroredUsage:
    """What a satellite's products take of a tag in a virtual account, as last reported."""

    virtual_account: str
    tag: str
    in_use: int
    reserved: int
    exported: int  # granted as export keys


# Structs, not dataclasses: a sync request of a million product instances builds one of
# each per instance, and a Struct is the cheaper to build.
class ReservationLine(msgspec.Struct, frozen=True, kw_only=True):
    """A license a product instance's reservation (SLR) holds, as a sync request says it."""

    tag: str
    quantity: int
    license_type: LicenseType
    end_date: dt.date | None
    stage: ReservationStage


# What left a satellite's account (a sync request says so): a product by its id, a
# virtual account by its name.
DepartureKind = Literal["product", "virtualAccount"]
# A reserved license's stage; pending: not confirmed by the product yet.
ReservationStage = Literal["current", "pending"]


class ChangedProductInstance(msgspec.Struct, frozen=True):
    """A product instance changed since the upstream's last acknowledgement: what a sync
    request carries of it. (Storage builds it from its columns in this order.)"""

    id: str
    virtual_account: str
    udi_pid: str
    udi_serial: str
    udi_uuid: str
    product_type: str
    product_version: str
    hostname: str | None
    ip_address: str | None
    export_controlled: bool
    status: str
    registered_at: dt.datetime
    ended_at: dt.datetime | None
    reservation: str | None  # its reservation's status, if it has one
    reserved: list[ReservationLine]
    export_keys: list[str]  # the features it holds export keys for
