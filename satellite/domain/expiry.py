"""What runs out with time on a registered product: its authorization and its ID certificate.

An authorization not renewed within its validity lapses: the product's usage stops
counting until it renews. An ID certificate past its expiry ends the registration: the
product must register again with a token. The scheduled jobs find both in SQL
(``storage.expiry``) as at the instant they are given, so their tests can run them at any
date.
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
        """The audit target, as the device API service writes it."""
        return f"{self.virtual_account}/{self.id}"

    @property
    def lapse_is_recorded(self) -> bool:
        """The current authorization's lapse was recorded already (by an earlier run)."""
        return self.authorization_lapse_recorded == self.authorization_expires_at
