"""Specific license reservation (SLR): what a reservation holds, and from which pool lines.

A reservation takes licenses out of its virtual account's pool for one product. Each
authorization code issued for it names licenses taken from particular pool lines (so that
a TERM line's end date travels with them). The code the product confirmed is ``current``;
a newer code not yet confirmed is ``pending``, and while there is one the reservation is
"in transition": it holds, per tag, the larger of the two, because the product may run on
either until its confirmation code is entered. SLR never borrows from a higher tier.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from satellite.domain.compliance import LicenseType, PoolLine, line_status

Precedence = Literal["LONGEST_TERM_FIRST", "SHORTEST_TERM_FIRST"]
ReservationStatus = Literal["active", "returned", "removed"]
# As the admin sees it (the toolkit's words); every one but the last two is active.
ReservationState = Literal[
    "Pending Confirmation", "Reserved", "In Transition", "Returned", "Removed"
]
FAR_FUTURE = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)  # a reserved product's timers never run out


@dataclass(frozen=True)
class ReservedLine:
    line_id: int
    tag: str
    quantity: int
    license_type: LicenseType
    start_date: dt.date | None
    end_date: dt.date | None
    subscription_id: str | None

    def counts_on(self, day: dt.date) -> bool:
        if self.start_date is not None and day < self.start_date:
            return False
        return self.end_date is None or day <= self.end_date


def _by_tag(lines: tuple[ReservedLine, ...], day: dt.date | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in lines:
        if day is None or line.counts_on(day):
            counts[line.tag] = counts.get(line.tag, 0) + line.quantity
    return counts


@dataclass(frozen=True)
class Reservation:
    product_id: str
    public_key: str
    request_code: str
    status: ReservationStatus
    current_timestamp: int | None
    current_code: str | None
    pending_timestamp: int | None
    pending_code: str | None
    current: tuple[ReservedLine, ...]
    pending: tuple[ReservedLine, ...]
    created_at: dt.datetime

    @property
    def in_transition(self) -> bool:
        return self.pending_timestamp is not None

    @property
    def state(self) -> ReservationState:
        """As the admin sees it."""
        if self.status == "returned":
            return "Returned"
        if self.status == "removed":
            return "Removed"
        if self.current_timestamp is None:
            return "Pending Confirmation"  # the first code: issued, not confirmed yet
        return "In Transition" if self.in_transition else "Reserved"

    @property
    def latest_code(self) -> str | None:
        return self.pending_code or self.current_code

    @property
    def latest_timestamp(self) -> int:
        return max(self.pending_timestamp or 0, self.current_timestamp or 0)

    def issued(self, timestamp: int) -> bool:
        """``timestamp`` is that of a code the product may hold (the current or pending)."""
        return timestamp in (self.current_timestamp, self.pending_timestamp)

    def confirmed(self, day: dt.date | None = None) -> dict[str, int]:
        return _by_tag(self.current, day)

    def requested(self, day: dt.date | None = None) -> dict[str, int]:
        return _by_tag(self.pending, day)

    def held(self, day: dt.date | None = None) -> dict[str, int]:
        """Per tag, what is out of the pool (on ``day``; None: whatever the dates)."""
        current, pending = self.confirmed(day), self.requested(day)
        return {
            tag: max(current.get(tag, 0), pending.get(tag, 0))
            for tag in sorted(set(current) | set(pending))
        }

    def held_on_lines(self) -> dict[int, int]:
        per_line: dict[int, int] = {}
        for line in self.current:
            per_line[line.line_id] = max(per_line.get(line.line_id, 0), line.quantity)
        pending: dict[int, int] = {}
        for line in self.pending:
            pending[line.line_id] = pending.get(line.line_id, 0) + line.quantity
        for line_id, quantity in pending.items():
            per_line[line_id] = max(per_line.get(line_id, 0), quantity)
        return per_line


def _term_key(line: PoolLine) -> tuple[dt.date, int]:
    return (line.end_date or dt.date.max, line.id)


def allocate(
    tag: str,
    quantity: int,
    lines: list[PoolLine],
    held_by_others: dict[int, int],
    today: dt.date,
    precedence: Precedence,
    kept: dict[int, int] | None = None,
) -> list[ReservedLine] | None:
    """Take ``quantity`` of ``tag`` from the active pool lines, in the order ``precedence``
    says (PERPETUAL counts as the longest term); None when the lines cannot hold it.

    ``kept``: per pool line, what the product holds already (an update). Those licenses
    stay where they are, up to ``quantity``, and only the increase comes from other room:
    while the update is in transition the product then holds, on each line, the larger of
    its old and new counts, and these add up to the larger of its old and new totals.
    """
    kept = kept or {}
    candidates = [
        line for line in lines if line.tag == tag and line_status(line, today) == "Active"
    ]
    candidates.sort(key=_term_key, reverse=precedence == "LONGEST_TERM_FIRST")
    taking: dict[int, int] = {}
    remaining = quantity
    for line in candidates:
        room = line.quantity - held_by_others.get(line.id, 0)
        take = min(kept.get(line.id, 0), room, remaining)
        if take > 0:
            taking[line.id] = take
            remaining -= take
    for line in candidates:
        if remaining <= 0:
            break
        room = line.quantity - held_by_others.get(line.id, 0) - taking.get(line.id, 0)
        take = min(room, remaining)
        if take > 0:
            taking[line.id] = taking.get(line.id, 0) + take
            remaining -= take
    if remaining > 0:
        return None
    return [
        ReservedLine(
            line_id=line.id,
            tag=tag,
            quantity=taking[line.id],
            license_type=line.license_type,
            start_date=line.start_date,
            end_date=line.end_date,
            subscription_id=line.subscription_id,
        )
        for line in candidates
        if taking.get(line.id, 0) > 0
    ]


@dataclass(frozen=True)
class LicenseRequest:
    """Licenses of one tag to reserve, taken from the pool lines in ``precedence`` order."""

    tag: str
    quantity: int
    precedence: Precedence = "LONGEST_TERM_FIRST"
