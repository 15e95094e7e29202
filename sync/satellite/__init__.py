"""The satellite's side of sync: registration with an upstream, then sync requests and
sync answers.

One code path for both modes: a sync request is written to a file, and a sync answer is
imported from a file. Connected mode only adds the transport in between (``sync now``
and the scheduled job); disconnected mode leaves the carrying to an operator.

Each step is a class of its own module over ``base.SatelliteBase`` (the state they
share); ``SatelliteSync`` puts them together for the wiring and the callers.
"""

from __future__ import annotations

from sync.satellite.base import Imported, SyncStatus
from sync.satellite.connected import ConnectedMode, SyncInProgress
from sync.satellite.registration import Registration
from sync.satellite.status import SyncStatusReports

__all__ = ["Imported", "SatelliteSync", "SyncInProgress", "SyncStatus"]


class SatelliteSync(Registration, ConnectedMode, SyncStatusReports):
    """Registration, sync requests, sync answers, connected mode and status of every
    account this satellite syncs."""
