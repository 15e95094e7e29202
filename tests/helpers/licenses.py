"""The license pool, the licenses view and the alerts of account Acme through the admin API."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from tests.conftest import Api

POOL = "/api/v1/accounts/Acme/virtual-accounts/DEFAULT/license-pool"
LICENSES = "/api/v1/accounts/Acme/licenses"
ALERTS = "/api/v1/accounts/Acme/alerts"
ENHANCED_NAME = "UC Manager Enhanced License (12.x)"
BASIC_NAME = "UC Manager Basic License (12.x)"
CUWL_NAME = "UC Manager CUWL License (12.x)"
LAB_POOL = "/api/v1/accounts/Acme/virtual-accounts/Lab/license-pool"


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def day(offset: int) -> str:
    return (today() + dt.timedelta(days=offset)).isoformat()


async def setup_account(admin: Api, *vas: str) -> None:
    status, body = await admin.post("/api/v1/accounts", {"name": "Acme"})
    assert status == 200, body
    for va in vas:
        status, body = await admin.post("/api/v1/accounts/Acme/virtual-accounts", {"name": va})
        assert status == 200, body


async def add_line(api: Api, path: str = POOL, **fields: Any) -> dict[str, Any]:
    status, body = await api.post(path, fields)
    assert status == 200, body
    line: dict[str, Any] = body["license"]
    return line


async def pool(api: Api, path: str = POOL) -> list[dict[str, Any]]:
    status, body = await api.get(path)
    assert status == 200, body
    lines: list[dict[str, Any]] = body["licenses"]
    return lines


async def licenses(api: Api, query: dict[str, Any] | None = None) -> dict[str, Any]:
    status, body = await api.post(LICENSES, query if query is not None else {})
    assert status == 200, body
    result: dict[str, Any] = body
    return result


async def alerts(api: Api, query: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    status, body = await api.post(ALERTS, query if query is not None else {})
    assert status == 200, body
    result: list[dict[str, Any]] = body["alerts"]
    return result


async def insert_upstream_line(db: asyncpg.Connection, va: str, tag: str, quantity: int) -> int:
    line_id = await db.fetchval(
        "INSERT INTO license_lines (virtual_account_id, tag, quantity, license_type, source) "
        "SELECT va.id, $2, $3, 'PERPETUAL', 'upstream' FROM virtual_accounts va "
        "JOIN accounts a ON a.id = va.account_id WHERE a.name = 'Acme' AND va.name = $1 "
        "RETURNING id",
        va,
        tag,
        quantity,
    )
    return int(line_id)
