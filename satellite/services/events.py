"""Reading the audit log."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from satellite.domain.access import Principal
from satellite.domain.models import Event
from satellite.services import scope
from satellite.storage import events
from satellite.storage.db import Database


@dataclass(frozen=True)
class EventFilter:
    account: str | None = None
    action: str | None = None
    actor: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int = 100
    offset: int = 0


class EventService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list_events(
        self, principal: Principal, query: EventFilter
    ) -> tuple[int, list[Event]]:
        """Events the caller may see: a system admin sees all, others their accounts' only."""
        async with self._db.connection() as conn:
            if query.account is not None:
                account_ids: list[int] | None = [
                    (await scope.readable_account(conn, principal, query.account)).id
                ]
            elif principal.is_system_admin:
                account_ids = None
            else:
                account_ids = sorted(principal.account_ids)
            return await events.list_events(
                conn,
                account_ids=account_ids,
                action=query.action,
                actor=query.actor,
                since=query.since,
                until=query.until,
                limit=query.limit,
                offset=query.offset,
            )
