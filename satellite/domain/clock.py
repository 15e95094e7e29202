"""The server's clock: the one place the server reads the time.

Services read it where they decide (nonces, expiry, authorization periods, reservations);
no other clock is injected into them, and a test that needs a later date moves the stored
times instead. The scheduled jobs take the time as an argument (``scheduler.jobs``), so
their tests run them "at" any date. The agent keeps a clock of its own (its tests move it).
"""

from __future__ import annotations

import datetime as dt


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
