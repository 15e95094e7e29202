"""Rate-limit counters (sql/010_rate_limits.sql): count, give back, forget.

Several counters change in one statement, always locked in (kind, key) order, so that two
requests counting the same counters cannot deadlock. Windows are timed by the database's
clock, the one clock every daemon on it shares.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

# Seconds until a window ends, rounded up: what Retry-After says.
_RESET = "greatest(1, ceil(extract(epoch FROM c.window_ends - statement_timestamp())))::int"


@dataclass(frozen=True)
class Counter:
    kind: str
    key: bytes
    hits: int  # attempts counted in the current window (this one too, if it counted)
    window_ends: dt.datetime
    reset_seconds: int


@dataclass(frozen=True)
class Count:
    """One attempt on counter (kind, key), in a window of ``window_seconds``; ``weight``:
    1 counts it, 0 only reads the counter (starting its window if there is none)."""

    kind: str
    key: bytes
    window_seconds: int
    weight: int = 1


def _counter(row: asyncpg.Record) -> Counter:
    return Counter(row["kind"], row["key"], row["hits"], row["window_ends"], row["reset_seconds"])


async def count(conn: asyncpg.Connection, counts: list[Count]) -> list[Counter]:
    """Count the attempts (a window that ended starts again); the counters as they are
    now, in (kind, key) order."""
    rows = await conn.fetch(
        "INSERT INTO rate_limit_counters AS c (kind, key, window_ends, hits) "
        "SELECT t.kind, t.key, statement_timestamp() + make_interval(secs => t.seconds), "
        "t.weight FROM unnest($1::text[], $2::bytea[], $3::int[], $4::int[]) "
        "AS t(kind, key, seconds, weight) ORDER BY t.kind, t.key "
        "ON CONFLICT (kind, key) DO UPDATE SET "
        "hits = CASE WHEN c.window_ends > statement_timestamp() THEN c.hits + excluded.hits "
        "ELSE excluded.hits END, "
        "window_ends = CASE WHEN c.window_ends > statement_timestamp() THEN c.window_ends "
        "ELSE excluded.window_ends END "
        f"RETURNING c.kind, c.key, c.hits, c.window_ends, {_RESET} AS reset_seconds",
        [c.kind for c in counts],
        [c.key for c in counts],
        [c.window_seconds for c in counts],
        [c.weight for c in counts],
    )
    return sorted((_counter(row) for row in rows), key=lambda c: (c.kind, c.key))


async def give_back(
    conn: asyncpg.Connection, counters: list[Counter], *, forget_emptied: bool = False
) -> None:
    """Uncount one attempt on each counter, if its window is still the one it was counted in.

    ``forget_emptied``: a counter left at no attempt is deleted rather than kept at zero
    (for an attempt that was refused: a guesser past one limit would otherwise leave a row
    for every new name it tries). Kept otherwise, so that the next attempt on it is the
    cheap update of a row in place, not an insert.
    """
    if not counters:
        return
    await conn.execute(
        "WITH mine AS (SELECT c.kind, c.key, c.hits FROM rate_limit_counters c "
        "JOIN unnest($1::text[], $2::bytea[], $3::timestamptz[]) AS t(kind, key, window_ends) "
        "ON c.kind = t.kind AND c.key = t.key AND c.window_ends = t.window_ends "
        "WHERE c.hits > 0 ORDER BY c.kind, c.key FOR UPDATE OF c), "
        "emptied AS (DELETE FROM rate_limit_counters c USING mine "
        "WHERE $4::boolean AND c.kind = mine.kind AND c.key = mine.key AND mine.hits = 1) "
        "UPDATE rate_limit_counters c SET hits = c.hits - 1 FROM mine "
        "WHERE c.kind = mine.kind AND c.key = mine.key AND (mine.hits > 1 OR NOT $4::boolean)",
        [c.kind for c in counters],
        [c.key for c in counters],
        [c.window_ends for c in counters],
        forget_emptied,
    )


async def forget_ended(conn: asyncpg.Connection, before: dt.datetime, limit: int) -> int:
    """Delete up to ``limit`` counters whose window ended before ``before``; how many."""
    result = await conn.execute(
        "DELETE FROM rate_limit_counters WHERE ctid IN (SELECT ctid FROM rate_limit_counters "
        "WHERE window_ends < $1 LIMIT $2)",
        before,
        limit,
    )
    return int(result.rsplit(" ", 1)[1])
