"""Usage per virtual account, tag and UTC day (sql/017_usage_daily.sql): the roll-up job's
samples folded into their day, the rows of an account over a date range, and the rows
older than the history forgotten."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class UsageSample:
    """One virtual account's position in one tag at the moment of a sample."""

    virtual_account_id: int
    tag: str
    in_use: int
    purchased: int
    reserved: int
    available: int


@dataclass(frozen=True)
class UsageDay:
    day: dt.date
    virtual_account: str
    tag: str
    peak_in_use: int
    last_in_use: int
    purchased: int
    reserved: int
    available: int
    samples: int
    first_sampled_at: dt.datetime
    last_sampled_at: dt.datetime


_LAST = "CASE WHEN excluded.last_sampled_at >= d.last_sampled_at THEN excluded.{0} ELSE d.{0} END"


async def record_samples(
    conn: asyncpg.Connection, samples: list[UsageSample], at: dt.datetime
) -> int:
    """Fold the samples taken at ``at`` into the rows of ``at``'s UTC day, in two
    statements whatever their number: a new row per (virtual account, tag) not yet sampled
    that day; else the peak is the higher of the two, the last values are those of the
    later sample, and the sample counts once (a second sample at the same moment is the
    same sample). A tag sampled earlier that day but absent now (no line, no use, nothing
    reserved any more) is sampled as all zero. The number of rows sampled."""
    day = at.astimezone(dt.UTC).date()
    samples = sorted(samples, key=lambda s: (s.virtual_account_id, s.tag))
    await conn.execute(
        "INSERT INTO usage_daily AS d (virtual_account_id, tag, day, peak_in_use, last_in_use, "
        "purchased, reserved, available, samples, first_sampled_at, last_sampled_at) "
        "SELECT va, tag, $7::date, n, n, p, r, a, 1, $8, $8 "
        "FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], "
        "$6::bigint[]) AS s(va, tag, n, p, r, a) "
        "ON CONFLICT (virtual_account_id, tag, day) DO UPDATE SET "
        "peak_in_use = greatest(d.peak_in_use, excluded.peak_in_use), "
        f"last_in_use = {_LAST.format('last_in_use')}, "
        f"purchased = {_LAST.format('purchased')}, "
        f"reserved = {_LAST.format('reserved')}, "
        f"available = {_LAST.format('available')}, "
        "samples = d.samples + (excluded.last_sampled_at <> d.last_sampled_at)::int, "
        "first_sampled_at = least(d.first_sampled_at, excluded.first_sampled_at), "
        "last_sampled_at = greatest(d.last_sampled_at, excluded.last_sampled_at)",
        [s.virtual_account_id for s in samples],
        [s.tag for s in samples],
        [s.in_use for s in samples],
        [s.purchased for s in samples],
        [s.reserved for s in samples],
        [s.available for s in samples],
        day,
        at,
    )
    await conn.execute(
        "UPDATE usage_daily d SET last_in_use = 0, purchased = 0, reserved = 0, available = 0, "
        "samples = d.samples + 1, last_sampled_at = $4 "
        "WHERE d.day = $3 AND d.last_sampled_at < $4 AND (d.virtual_account_id, d.tag) NOT IN "
        "(SELECT * FROM unnest($1::bigint[], $2::text[]))",
        [s.virtual_account_id for s in samples],
        [s.tag for s in samples],
        day,
        at,
    )
    return len(samples)


_WHERE = (
    "FROM usage_daily d JOIN virtual_accounts va ON va.id = d.virtual_account_id "
    "WHERE va.account_id = $1 AND d.day BETWEEN $2 AND $3 "
    "AND ($4::bigint IS NULL OR d.virtual_account_id = $4) AND ($5::text IS NULL OR d.tag = $5)"
)


async def days_of_account(
    conn: asyncpg.Connection,
    account_id: int,
    first: dt.date,
    last: dt.date,
    *,
    va_id: int | None,
    tag: str | None,
    limit: int,
    offset: int,
) -> tuple[int, list[UsageDay]]:
    """The account's rows from ``first`` to ``last`` (inclusive), oldest day first, then by
    virtual account and tag: how many there are, and the page of ``limit`` from
    ``offset``."""
    args = (account_id, first, last, va_id, tag)
    total = await conn.fetchval(f"SELECT count(*) {_WHERE}", *args)
    rows = await conn.fetch(
        "SELECT d.day, va.name AS virtual_account, d.tag, d.peak_in_use, d.last_in_use, "
        "d.purchased, d.reserved, d.available, d.samples, d.first_sampled_at, "
        f"d.last_sampled_at {_WHERE} ORDER BY d.day, va.name, d.tag LIMIT $6 OFFSET $7",
        *args,
        limit,
        offset,
    )
    return int(total), [UsageDay(**dict(row)) for row in rows]


async def forget_days(conn: asyncpg.Connection, before: dt.date, limit: int) -> int:
    """Delete up to ``limit`` rows of days before ``before``, oldest first; the number
    deleted."""
    result = await conn.execute(
        "DELETE FROM usage_daily WHERE (virtual_account_id, tag, day) IN ("
        "SELECT virtual_account_id, tag, day FROM usage_daily WHERE day < $1 "
        "ORDER BY day LIMIT $2)",
        before,
        limit,
    )
    return int(result.rsplit(" ", 1)[1])
