"""Subscriptions behind the pool lines: the lines that carry one subscription id, grouped
per virtual account (a subscription split across virtual accounts is listed in each)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from satellite.domain.compliance import LineStatus, PoolLine, line_status

_PRECEDENCE: tuple[LineStatus, ...] = ("Active", "Pending", "Expired")


@dataclass(frozen=True)
class Subscription:
    subscription_id: str
    virtual_account: str
    lines: list[PoolLine]
    start_date: dt.date | None  # the earliest of its lines'
    end_date: dt.date | None  # the latest of its lines'
    status: LineStatus  # Active while one of its lines is; else Pending before Expired


def subscriptions(lines: list[PoolLine], today: dt.date) -> list[Subscription]:
    """The subscriptions of ``lines`` by subscription id, then virtual account; lines
    without a subscription id (perpetual licenses, mostly) belong to none."""
    grouped: dict[tuple[str, str], list[PoolLine]] = {}
    for line in lines:
        if line.subscription_id:
            grouped.setdefault((line.subscription_id, line.virtual_account), []).append(line)
    result = []
    for (subscription_id, virtual_account), members in sorted(grouped.items()):
        starts = [line.start_date for line in members if line.start_date is not None]
        ends = [line.end_date for line in members if line.end_date is not None]
        statuses = {line_status(line, today) for line in members}
        status = next(s for s in _PRECEDENCE if s in statuses)
        result.append(
            Subscription(
                subscription_id=subscription_id,
                virtual_account=virtual_account,
                lines=members,
                start_date=min(starts, default=None),
                end_date=max(ends, default=None),
                status=status,
            )
        )
    return result
