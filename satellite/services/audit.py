"""Audit events, written in the transaction of the change they describe."""

from __future__ import annotations

from typing import Any

import structlog

from satellite.domain.access import Principal
from satellite.storage import events
from satellite.storage.db import Connection


async def record(
    conn: Connection,
    principal: Principal,
    action: str,
    target: str,
    *,
    account_id: int | None,
    **details: Any,
) -> None:
    # The HTTP layer binds the request id into structlog's context for the request's task.
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    await events.insert_event(
        conn,
        account_id=account_id,
        actor=principal.actor,
        action=action,
        target=target,
        details=details,
        request_id=request_id,
    )
