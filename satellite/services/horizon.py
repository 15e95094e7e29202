"""The authorization horizon: a satellite out of step with its upstream for too long grants
no new authorizations (registrations, renewals, export keys, reservations)."""

from __future__ import annotations

import datetime as dt

from satellite.domain.sync import horizon_passed
from satellite.errors import SyncHorizonPassed
from satellite.storage import sync as sync_links
from satellite.storage.db import Connection


async def require_in_step(
    conn: Connection, account_id: int, now: dt.datetime, horizon_days: int
) -> None:
    """Refuse when the account is linked to an upstream and has not been in step with it
    for longer than the horizon (what it knows of its pools may no longer be true)."""
    refuse_if_passed(await sync_links.in_step_since(conn, account_id), now, horizon_days)


def refuse_if_passed(since: dt.datetime | None, now: dt.datetime, horizon_days: int) -> None:
    """``require_in_step`` for a caller that has read ``since`` (``in_step_since``) already."""
    if since is not None and horizon_passed(since, now, horizon_days):
        raise SyncHorizonPassed(
            f"this satellite has not synced with its upstream since {since:%Y-%m-%d} (more "
            f"than {horizon_days} days), so it grants no new authorizations until it syncs: "
            "ask its operator to sync it"
        )
