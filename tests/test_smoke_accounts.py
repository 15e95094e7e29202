"""Accounts and virtual accounts through the admin API."""

from __future__ import annotations

from tests.conftest import ENHANCED, Api


async def test_create_and_list_accounts(admin: Api) -> None:
    status, body = await admin.post(
        "/api/v1/accounts", {"name": "Acme", "exportControlledAllowed": True}
    )
    assert status == 201, body
    status, body = await admin.post("/api/v1/upstream_satellites/accounts")
    assert status == 200
    assert [a["name"] for a in body["accounts"]] == ["Acme"]
    status, body = await admin.get("/backend/api/v1/accounts/Acme/virtual-accounts")
    assert status == 200
    assert [v["name"] for v in body["virtualAccounts"]] == ["DEFAULT"]
