"""License positions per virtual account and tag: the one place compliance is computed.

purchased   valid pool lines (a TERM or SUBSCRIPTION line counts from its start date to
            its end date inclusive)
reserved    taken out of the pool by specific license reservations
in use      consumed by products whose authorization is valid
exported    export authorization keys granted to products (one license each)
borrowed    a shortfall covered by a higher tier of the same family or, after those, by a
            version-independent license that stands in for the tag (see the catalog);
            loans move where that covers a shortfall they left (_move_loans)
available   purchased - reserved - in use - exported + borrowed - lent (negative: a shortage)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Literal

from satellite_protocol.catalog import Catalog
from satellite_protocol.catalog import LicenseType as LicenseType

LineStatus = Literal["Active", "Pending", "Expired"]
ComplianceStatus = Literal["In Compliance", "Out Of Compliance"]
LineSource = Literal["local", "upstream"]


@dataclass(frozen=True)
class PoolLine:
    id: int
    virtual_account: str
    tag: str
    quantity: int
    license_type: LicenseType
    start_date: dt.date | None
    end_date: dt.date | None
    subscription_id: str | None
    export_restricted: bool
    source: LineSource

    @property
    def editable(self) -> bool:
        """Changed or removed here: a line from the upstream changes only there (and syncs)."""
        return self.source == "local"


@dataclass(frozen=True)
class LineValues:
    """What an operator sets on a pool line."""

    tag: str
    quantity: int
    license_type: LicenseType
    start_date: dt.date | None
    end_date: dt.date | None
    subscription_id: str | None
    export_restricted: bool | None  # None: as the catalog says for the tag


def line_status(line: PoolLine, today: dt.date) -> LineStatus:
    if line.start_date is not None and today < line.start_date:
        return "Pending"
    if line.end_date is not None and today > line.end_date:
        return "Expired"
    return "Active"


@dataclass
class Position:
    virtual_account: str
    tag: str
    purchased: int = 0
    reserved: int = 0
    in_use: int = 0
    exported: int = 0
    borrowed: dict[str, int] = field(default_factory=dict)  # higher tag -> count
    lent: dict[str, int] = field(default_factory=dict)  # lower tag -> count
    lines: list[PoolLine] = field(default_factory=list)

    @property
    def in_use_total(self) -> int:
        """In use as the licenses operation shows it: product usage plus export keys granted."""
        return self.in_use + self.exported

    @property
    def available(self) -> int:
        return (
            self.purchased
            - self.reserved
            - self.in_use
            - self.exported
            + sum(self.borrowed.values())
            - sum(self.lent.values())
        )

    @property
    def free(self) -> int:
        """What a reservation or an export key may still take: not reserved, not in use, not
        granted as export keys, not lent to a lower tier; never anything borrowed (neither
        SLR nor export keys borrow, not even from a version-independent license)."""
        return max(
            0,
            self.purchased - self.reserved - self.in_use - self.exported - sum(self.lent.values()),
        )

    @property
    def status(self) -> ComplianceStatus:
        return "In Compliance" if self.available >= 0 else "Out Of Compliance"


@dataclass(frozen=True)
class PoolState:
    """What one virtual account's positions are computed from: its pool lines, and per tag
    what is reserved, in use and granted as export keys."""

    lines: list[PoolLine]
    reserved: dict[str, int]
    in_use: dict[str, int]
    exported: dict[str, int]

    def tags(self) -> set[str]:
        return (
            {line.tag for line in self.lines}
            | set(self.reserved)
            | set(self.in_use)
            | set(self.exported)
        )


def related_tags(catalog: Catalog, tags: set[str], present: set[str]) -> set[str]:
    """``tags`` and every tag of ``present`` linked to them through borrowing (a substitute
    that may cover a shortfall, or a tag it may cover, and so on): a tag's position
    depends on these and on no other, so they are all that moves when ``tags`` change."""
    related = set(tags)
    queue = list(tags)
    for tag in queue:
        for other in present - related:
            if other in catalog.substitutes(tag) or tag in catalog.substitutes(other):
                related.add(other)
                queue.append(other)
    return related


def positions_of_tags(
    virtual_account: str, catalog: Catalog, tags: set[str], state: PoolState, today: dt.date
) -> list[Position]:
    """The positions of ``tags`` and of the tags related to them (``related_tags``), as
    ``positions_for_virtual_account`` computes them for the whole virtual account: borrowing
    never crosses from one set of related tags to another, so leaving the others out
    changes none of these."""
    keep = related_tags(catalog, tags, state.tags())
    return positions_for_virtual_account(
        virtual_account,
        catalog,
        [line for line in state.lines if line.tag in keep],
        today,
        reserved={t: n for t, n in state.reserved.items() if t in keep},
        in_use={t: n for t, n in state.in_use.items() if t in keep},
        exported={t: n for t, n in state.exported.items() if t in keep},
    )


def positions_for_virtual_account(
    virtual_account: str,
    catalog: Catalog,
    lines: list[PoolLine],
    today: dt.date,
    reserved: dict[str, int] | None = None,
    in_use: dict[str, int] | None = None,
    exported: dict[str, int] | None = None,
) -> list[Position]:
    """Positions of one virtual account, lowest tier first within each family."""
    reserved = reserved or {}
    in_use = in_use or {}
    exported = exported or {}
    tags = {line.tag for line in lines} | set(reserved) | set(in_use) | set(exported)
    positions = {tag: Position(virtual_account, tag) for tag in tags}
    for line in lines:
        position = positions[line.tag]
        position.lines.append(line)
        if line_status(line, today) == "Active":
            position.purchased += line.quantity
    for tag, count in reserved.items():
        positions[tag].reserved = count
    for tag, count in in_use.items():
        positions[tag].in_use = count
    for tag, count in exported.items():
        positions[tag].exported = count

    ordered = catalog.tier_order(tags)
    # What each tag has beyond its own reservations and use, before any lending.
    spare = {tag: max(0, positions[tag].available) for tag in ordered}
    for tag in ordered:
        shortfall = -positions[tag].available
        for higher in catalog.substitutes(tag):
            if shortfall <= 0:
                break
            take = min(shortfall, spare.get(higher, 0))
            if take <= 0:
                continue
            spare[higher] -= take
            shortfall -= take
            positions[tag].borrowed[higher] = take
            positions[higher].lent[tag] = take
    _move_loans(positions, catalog, ordered, spare)
    return [positions[tag] for tag in ordered]


def _move_loans(
    positions: dict[str, Position], catalog: Catalog, ordered: list[str], spare: dict[str, int]
) -> None:
    """Cover what the loans above left short where moving loans can.

    Lowest tier first, nearest substitute first is the best cover along one family, where
    a higher tier covers everything below it; a version-independent license covers only
    the tiers it lists. So Basic, short first, may have taken the CUWL that Enhanced Plus
    needs while a Flex NU Access, which covers Basic only, stayed spare. A shortfall left
    looks for a chain of loans to move that ends at a spare license (Enhanced Plus takes
    Basic's CUWL, Basic takes the Flex Access): an augmenting path, so that in the end
    everything that can be covered is. Loans nothing needs to move stay as they are."""
    for tag in ordered:
        while positions[tag].available < 0:
            path = _loan_path(positions, catalog, ordered, spare, tag)
            if path is None:
                break
            # path: (borrower, lender) steps; each borrower after the first gives up what
            # it borrowed from the lender of the step before to the borrower before it.
            amount = min(-positions[tag].available, spare[path[-1][1]])
            for (_, given_up), (borrower, _) in pairwise(path):
                amount = min(amount, positions[borrower].borrowed[given_up])
            for index, (borrower, lender) in enumerate(path):
                _lend(positions, lender, borrower, amount)
                if index:
                    _lend(positions, path[index - 1][1], borrower, -amount)
            spare[path[-1][1]] -= amount


def _loan_path(
    positions: dict[str, Position],
    catalog: Catalog,
    ordered: list[str],
    spare: dict[str, int],
    short: str,
) -> list[tuple[str, str]] | None:
    """The shortest chain of loans from ``short`` to a spare license (breadth first, in
    the catalog's order of substitutes), or None."""
    via: dict[str, str] = {}  # borrower -> the lender it would give up
    reached_from: dict[str, str] = {}  # lender -> the borrower that would take from it
    queue = [short]
    seen = {short}
    for borrower in queue:
        for lender in catalog.substitutes(borrower):
            if lender in reached_from or lender not in positions:
                continue
            reached_from[lender] = borrower
            if spare.get(lender, 0) > 0:
                path = [(borrower, lender)]
                while borrower != short:
                    lender = via[borrower]
                    borrower = reached_from[lender]
                    path.append((borrower, lender))
                return path[::-1]
            for other in ordered:
                if other not in seen and positions[lender].lent.get(other, 0) > 0:
                    seen.add(other)
                    via[other] = lender
                    queue.append(other)
    return None


def _lend(positions: dict[str, Position], lender: str, borrower: str, amount: int) -> None:
    """Add ``amount`` (negative: take it back) to what ``lender`` lends ``borrower``."""
    total = positions[borrower].borrowed.get(lender, 0) + amount
    if total:
        positions[borrower].borrowed[lender] = total
        positions[lender].lent[borrower] = total
    else:
        positions[borrower].borrowed.pop(lender, None)
        positions[lender].lent.pop(borrower, None)
