"""What runs out with time on a registered product: its authorization and its ID certificate.

An authorization not renewed within its validity lapses: the product's usage stops
counting until it renews. An ID certificate past its expiry ends the registration: the
product must register again with a token. Both are judged at a given instant, so the
scheduled jobs (and their tests) can judge them at any time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

CERTIFICATE_WARNING = dt.timedelta(days=30)


@dataclass(frozen=True)
class ProductInstanceTimers:
    """A product instance as the scheduled jobs see it: where it is and when what expires."""

    id: str
    account_id: int
    virtual_account_id: int
    virtual_account: str
    udi_pid: str
    udi_serial: str
    hostname: str | None
    certificate_expires_at: dt.datetime
    authorization_expires_at: dt.datetime
    authorization_lapse_recorded: dt.datetime | None

    @property
    def name(self) -> str:
        """How people know the product: its host name, else its PID and serial number."""
        return self.hostname or f"PID:{self.udi_pid} SN:{self.udi_serial}"

    @property
    def target(self) -> str:
        """The audit target, as the device service writes it."""
        return f"{self.virtual_account}/{self.id}"

    def authorization_lapsed(self, now: dt.datetime) -> bool:
        return self.authorization_expires_at <= now

    @property
    def lapse_is_recorded(self) -> bool:
        """The current authorization's lapse was recorded already (by an earlier run)."""
        return self.authorization_lapse_recorded == self.authorization_expires_at

    def certificate_expired(self, now: dt.datetime) -> bool:
        return self.certificate_expires_at <= now

    def certificate_expiring(self, now: dt.datetime) -> bool:
        """Valid now, but not for the warning period any more."""
        return now < self.certificate_expires_at <= now + CERTIFICATE_WARNING
