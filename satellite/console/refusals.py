"""The status of a page that shows an operation's refusal in its words (English, as the
API's problem documents have them): one table for every page of the console."""

from __future__ import annotations

from satellite.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    SatelliteError,
    UpstreamError,
)

# In order: a more particular kind before the one it is a kind of (too large is invalid).
STATUSES: tuple[tuple[type[SatelliteError], int], ...] = (
    (PayloadTooLarge, 413),
    (InvalidInput, 400),
    (NotFound, 404),
    (Conflict, 409),
    (UpstreamError, 502),
)
# The refusals a page shows itself (Forbidden and the rest go to the guard's error page).
SHOWN = tuple(kind for kind, _ in STATUSES)


def refusal_status(exc: SatelliteError) -> int:
    return next(status for kind, status in STATUSES if isinstance(exc, kind))
