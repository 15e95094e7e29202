"""Password guessing slows down per user name (pure rule, with a clock of our own)."""

from __future__ import annotations

from satellite.domain.throttle import FREE_FAILURES, MAX_TRACKED, MAX_WAIT_SECONDS, LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_waits_double_after_the_free_failures_and_success_resets() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock)
    for _ in range(FREE_FAILURES):
        assert throttle.retry_after("alice") == 0
        throttle.failed("alice")
    assert throttle.retry_after("alice") == 1.0
    assert throttle.retry_after("bob") == 0  # per name
    clock.now += 1.0
    assert throttle.retry_after("alice") == 0
    throttle.failed("alice")
    assert throttle.retry_after("alice") == 2.0
    clock.now += 2.0
    throttle.failed("alice")
    assert throttle.retry_after("alice") == 4.0
    throttle.succeeded("alice")
    assert throttle.retry_after("alice") == 0


def test_the_wait_is_capped_and_memory_is_bounded() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock)
    for _ in range(FREE_FAILURES + 40):
        throttle.failed("mallory")
    assert throttle.retry_after("mallory") == MAX_WAIT_SECONDS
    for n in range(MAX_TRACKED):
        throttle.failed(f"user{n}")
    assert throttle.retry_after("mallory") == 0  # the oldest name was forgotten
