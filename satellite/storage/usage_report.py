"""A product's usage report in one statement: the function of sql/023_usage_report.sql,
which locks the product, uses the nonce, replaces its usage and reads its virtual
account's pool, refusing (and writing nothing) unless the product is still as the caller
checked it."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from satellite.domain.compliance import PoolLine, PoolState

# (Constant text: asyncpg prepares it once per connection and keeps it.)
REPORT_USAGE = "SELECT * FROM report_usage($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"


@dataclass(frozen=True)
class Reported:
    """What a report the function took changed and read. ``in_use``: per tag, what is in
    use in the virtual account after; ``changes``: what the report changed of that;
    ``open_alerts``: the dedupe keys of the virtual account's open alerts, read only when
    the report released all usage (else None)."""

    virtual_account_id: int
    virtual_account: str
    account_id: int
    authorization_expires_at: dt.datetime
    in_use: dict[str, int]
    changes: dict[str, int]
    pool: PoolState
    open_alerts: list[str] | None


@dataclass(frozen=True)
class Refused:
    """The function wrote nothing: why, in its words (the caller tells the product why as
    the envelope's checks do)."""

    reason: str


def _date(text: str | None) -> dt.date | None:
    return None if text is None else dt.date.fromisoformat(text)


def _pool(va_name: str, row: asyncpg.Record, in_use: dict[str, int]) -> PoolState:
    lines = [
        PoolLine(
            id=line["id"],
            virtual_account=va_name,
            tag=line["tag"],
            quantity=line["quantity"],
            license_type=line["license_type"],
            start_date=_date(line["start_date"]),
            end_date=_date(line["end_date"]),
            subscription_id=line["subscription_id"],
            export_restricted=line["export_restricted"],
            source=line["source"],
        )
        for line in row["lines"]
    ]
    return PoolState(lines, dict(row["reserved"]), in_use, dict(row["exported"]))


async def report_usage(
    conn: asyncpg.Connection,
    product_instance_id: str,
    *,
    jwk: dict[str, Any],
    nonce: str,
    forget_host: bool,
    usage: dict[str, int],
    now: dt.datetime,
    day: dt.date,
    pool_lock_base: int,
) -> Reported | Refused:
    """The report of product ``product_instance_id``, whose request verified with ``jwk``
    and whose nonce is one of ours: its usage becomes ``usage`` at ``now`` (its host
    identity forgotten first with ``forget_host``), unless, under its row lock, ``jwk``
    is no longer its key, it is not registered with a certificate that holds at ``now``,
    or ``nonce`` was used. ``day``: the day its reservations are counted at;
    ``pool_lock_base`` + its virtual account's id: the lock that virtual account's
    shortage refreshes take, which the report takes shared."""
    row = await conn.fetchrow(
        REPORT_USAGE,
        uuid.UUID(product_instance_id),
        jwk,
        nonce,
        forget_host,
        list(usage),
        list(usage.values()),
        usage,
        now,
        day,
        pool_lock_base,
    )
    assert row is not None
    if row["refusal"] is not None:
        return Refused(row["refusal"])
    in_use = {tag: int(n) for tag, n in row["in_use"].items()}
    changes = {tag: int(n) for tag, n in row["changes"].items()}
    return Reported(
        virtual_account_id=row["virtual_account_id"],
        virtual_account=row["virtual_account"],
        account_id=row["account_id"],
        authorization_expires_at=row["authorization_expires_at"],
        in_use=in_use,
        changes=changes,
        pool=_pool(row["virtual_account"], row, in_use),
        open_alerts=row["open_alerts"],
    )
