"""The upstream's side of sync: satellite tokens, registering satellites, answering them.

Each part is a class of its own module over ``base.UpstreamBase`` (the state they share);
``UpstreamSync`` puts them together for the wiring and the callers.
"""

from __future__ import annotations

from sync.upstream.answering import Answering
from sync.upstream.base import Answered
from sync.upstream.satellites import Satellites
from sync.upstream.tokens import NewSatelliteToken, SatelliteTokens

__all__ = ["Answered", "NewSatelliteToken", "UpstreamSync"]


class UpstreamSync(SatelliteTokens, Satellites, Answering):
    """Satellite tokens, the satellites registered here, and answering their bundles."""
