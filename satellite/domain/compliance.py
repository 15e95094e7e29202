"""License positions per virtual account and tag: the one place compliance is computed.

purchased   valid pool lines (a TERM or SUBSCRIPTION line counts from its start date to
            its end date inclusive)
reserved    taken out of the pool by specific license reservations
in use      consumed by products whose authorization is valid
exported    export authorization keys granted to products (one license each)
borrowed    a shortfall covered by a higher tier of the same family or, after those, by a
            version-independent license that stands in for the tag (see the catalog)
available   purchased - reserved - in use - exported + borrowed - lent (negative: a shortage)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from satellite.domain.catalog import Catalog
from satellite.domain.catalog import LicenseType as LicenseType

LineStatus = Literal["Active", "Pending", "Expired"]
ComplianceStatus = Literal["In Compliance", "Out Of Compliance"]


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
    source: Literal["local", "upstream"]


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
    return [positions[tag] for tag in ordered]
