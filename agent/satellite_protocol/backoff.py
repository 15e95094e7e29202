"""How long to wait before retrying: one rule for every retry loop of the product and the
satellite (the agent's timers, its export requests, the sync with the upstream).

The wait doubles from the first one up to a cap, and is jittered ("equal jitter": half of
it fixed, the other half at random) so that a fleet that lost its server together does not
come back in lockstep, while no retry comes sooner than half its wait.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

# 2**60 times any first wait is beyond every cap; the exponent stops there (no overflow).
_MAX_DOUBLINGS = 60


@dataclass(frozen=True)
class Backoff:
    first_seconds: float
    longest_seconds: float
    # A number in [0, 1); tests pass a constant to get exact waits.
    jitter: Callable[[], float] = field(default=random.random)

    def __post_init__(self) -> None:
        if self.first_seconds < 0 or self.longest_seconds < self.first_seconds:
            raise ValueError("backoff needs 0 <= first_seconds <= longest_seconds")

    def ceiling(self, attempt: int) -> float:
        """The un-jittered wait before retry ``attempt`` (1 is the first retry)."""
        doublings = min(max(0, attempt - 1), _MAX_DOUBLINGS)
        return min(self.first_seconds * (1 << doublings), self.longest_seconds)

    def wait(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt``: between half the ceiling and all of it."""
        ceiling = self.ceiling(attempt)
        return ceiling / 2 + ceiling / 2 * self.jitter()
