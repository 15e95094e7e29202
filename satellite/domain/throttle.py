"""Slowing down password guessing: consecutive failures per user name earn a wait."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

FREE_FAILURES = 5
MAX_WAIT_SECONDS = 300.0
MAX_TRACKED = 10_000  # names remembered at once; the oldest are forgotten first


class LoginThrottle:
    """After ``FREE_FAILURES`` failures in a row, each further attempt for that name must
    wait 1, 2, 4 … seconds (at most ``MAX_WAIT_SECONDS``) after the last failure.

    Kept per process: several daemons on one database each keep their own count.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def retry_after(self, name: str) -> float:
        """Seconds to wait before ``name`` may try again; 0 when it may try now."""
        count, last = self._failures.get(name, (0, 0.0))
        if count < FREE_FAILURES:
            return 0.0
        wait = min(2.0 ** (count - FREE_FAILURES), MAX_WAIT_SECONDS)
        return max(0.0, last + wait - self._clock())

    def failed(self, name: str) -> None:
        count, _ = self._failures.pop(name, (0, 0.0))
        self._failures[name] = (count + 1, self._clock())
        while len(self._failures) > MAX_TRACKED:
            self._failures.popitem(last=False)

    def succeeded(self, name: str) -> None:
        self._failures.pop(name, None)
