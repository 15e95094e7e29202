"""Accounts and virtual accounts through the admin API: made, listed, and posted to raw."""

from __future__ import annotations

from typing import Any

import msgspec

from tests.conftest import Api

PREFIXES = ("/api/v1", "/backend/api/v1")


async def create_account(admin: Api, name: str, *, export: bool = False) -> dict[str, Any]:
    status, body = await admin.post(
        "/api/v1/accounts", {"name": name, "exportControlledAllowed": export}
    )
    assert status == 200, body
    account: dict[str, Any] = body["account"]
    return account


async def create_va(admin: Api, account: str, name: str, description: str = "") -> None:
    status, body = await admin.post(
        f"/api/v1/accounts/{account}/virtual-accounts", {"name": name, "description": description}
    )
    assert status == 200, body


async def va_names(api: Api, account: str) -> list[str]:
    status, body = await api.get(f"/api/v1/accounts/{account}/virtual-accounts")
    assert status == 200, body
    return [v["name"] for v in body["virtualAccounts"]]


async def raw_post(api: Api, path: str, body: Any) -> tuple[int, str, Any]:
    """Status, content type and decoded body, for checks on the media type."""
    headers = {"Authorization": f"Bearer {api.token}", "Content-Type": "application/json"}
    async with api.client.post(path, data=msgspec.json.encode(body), headers=headers) as response:
        return response.status, response.content_type, msgspec.json.decode(await response.read())
