"""The one retry rule (satellite_protocol.backoff) of the agent, its exports and the sync."""

from __future__ import annotations

import pytest

from satellite_protocol.backoff import Backoff


def test_the_wait_doubles_up_to_the_cap() -> None:
    exact = Backoff(30, 3600, jitter=lambda: 1.0)
    assert [exact.wait(n) for n in (1, 2, 3, 7, 8, 50, 10_000)] == [
        30,
        60,
        120,
        1920,
        3600,
        3600,
        3600,
    ]


def test_the_jitter_keeps_at_least_half_the_wait() -> None:
    low = Backoff(30, 3600, jitter=lambda: 0.0)
    middle = Backoff(30, 3600, jitter=lambda: 0.5)
    assert [low.wait(1), middle.wait(1), low.wait(50)] == [15, 22.5, 1800]


def test_a_fleet_does_not_retry_in_lockstep() -> None:
    """Products that lost the server together come back spread over the wait."""
    fleet = Backoff(30, 3600)
    waits = [fleet.wait(3) for _ in range(200)]
    assert all(60 <= wait <= 120 for wait in waits)
    assert len({round(wait, 3) for wait in waits}) > 150


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError, match="first_seconds"):
        Backoff(10, 5)
