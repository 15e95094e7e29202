"""Usage reports: an account's usage per virtual account and tag, day by day.

Answered as JSON, or as CSV when asked (``Accept: text/csv``; the CLI's ``--csv``): one
row per virtual account, tag and UTC day.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from satellite.api.context import Services
from satellite.api.operation import READ, operation
from satellite.api.paths import ACCOUNT
from satellite.api.scopes import InAccount
from satellite.api.types import Name, Offset, Response
from satellite.domain.access import Principal
from satellite.errors import InvalidInput
from satellite.storage.usage import UsageDay

MAX_DAYS = 400  # days a report spans at most (from and to included)
PAGE = 10_000  # rows an answer holds at most: a quarter of 100 virtual account tags

Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
RowLimit = Annotated[int, msgspec.Meta(ge=1, le=PAGE)]

DESCRIPTION = f"""One row per virtual account, entitlement tag and UTC day, oldest day first
(then by virtual account and tag), from `from` to `to` inclusive (at most {MAX_DAYS} days).
The rows are paged: at most `limit` ({PAGE} unless smaller) from `offset`;
`totalRecords` says how many the range holds.

The rows are samples, taken by the scheduled job `usage-rollup` every
`timers.usage_rollup_minutes`: `peakInUse` is the highest in use among the day's samples (a
peak between two samples is not seen), `lastInUse`, `purchased`, `reserved` and `available`
are the day's last sample, and `samples` is how many samples the row rests on. In use,
purchased, reserved and available count as the license positions do (in use: product usage
plus export keys granted). A day the job did not run has no row. Rows are kept for
`timers.usage_history_days`.

With `Accept: text/csv` the same rows are answered as CSV (RFC 4180, a header row of these
field names; text a spreadsheet would read as a formula is prefixed with `'`); the
headers `X-Total-Count` (the total) and, but on the last page, `Link: <...>; rel="next"`
(this request with the next `offset`) say what `totalRecords` says in JSON."""


class UsageQuery(InAccount):
    first: dt.date = msgspec.field(name="from")
    last: dt.date = msgspec.field(name="to")
    virtual_account: Name | None = None
    tag: Tag | None = None
    limit: RowLimit = PAGE
    offset: Offset = 0

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise InvalidInput(
                f"to ({self.last.isoformat()}) is before from ({self.first.isoformat()})",
                field="to",
            )
        if (self.last - self.first).days >= MAX_DAYS:
            raise InvalidInput(
                f"from {self.first.isoformat()} to {self.last.isoformat()} is more than "
                f"{MAX_DAYS} days",
                field="to",
            )


class UsageDayOut(Response):
    day: dt.date
    virtual_account: str
    entitlement_tag: str
    license: str  # the tag's display name
    peak_in_use: int
    last_in_use: int
    purchased: int
    reserved: int
    available: int
    samples: int
    last_sampled_at: dt.datetime


class UsageReport(Response):
    total_records: int
    usage: list[UsageDayOut]


@operation(
    "GET",
    ACCOUNT + "/usage",
    "Usage per virtual account and tag, day by day",
    tag="licenses",
    access=READ,
    description=DESCRIPTION,
    csv="usage",
)
async def usage_report(services: Services, caller: Principal, request: UsageQuery) -> UsageReport:
    total, days = await services.usage.days(
        caller,
        request.account,
        request.first,
        request.last,
        virtual_account=request.virtual_account,
        tag=request.tag,
        limit=request.limit,
        offset=request.offset,
    )
    return UsageReport(total_records=total, usage=[_day(d, services) for d in days])


OPERATIONS = (usage_report,)


def _day(day: UsageDay, services: Services) -> UsageDayOut:
    return UsageDayOut(
        day=day.day,
        virtual_account=day.virtual_account,
        entitlement_tag=day.tag,
        license=services.catalog.display_name(day.tag),
        peak_in_use=day.peak_in_use,
        last_in_use=day.last_in_use,
        purchased=day.purchased,
        reserved=day.reserved,
        available=day.available,
        samples=day.samples,
        last_sampled_at=day.last_sampled_at,
    )
