"""Virtual accounts through the admin API."""

from __future__ import annotations

import asyncpg
import pytest

from satellite.domain.access import host_operator
from satellite.errors import InvalidInput
from satellite.wiring import Runtime, open_services
from tests.conftest import BASIC, ENHANCED, Api, Credentials, new_client
from tests.helpers.accounts import create_account, create_va, va_names
from tests.helpers.events import event_count, refuse_events

# --- virtual accounts ------------------------------------------------------------------------


async def test_create_and_list_virtual_accounts(admin: Api) -> None:
    await create_account(admin, "Acme")
    status, body = await admin.post(
        "/api/v1/accounts/Acme/virtual-accounts", {"name": "Lab", "description": "the lab"}
    )
    assert status == 200, body
    [created] = body["virtualAccounts"]
    assert created["name"] == "Lab"
    assert created["description"] == "the lab"
    assert created["isDefault"] == "false"
    await create_va(admin, "Acme", "Branch")
    status, body = await admin.get("/api/v1/accounts/Acme/virtual-accounts")
    assert status == 200, body
    assert [(v["name"], v["isDefault"]) for v in body["virtualAccounts"]] == [
        ("DEFAULT", "true"),
        ("Branch", "false"),
        ("Lab", "false"),
    ]
    assert body["virtualAccounts"][2]["description"] == "the lab"


async def test_duplicate_virtual_account_is_409(admin: Api, db: asyncpg.Connection) -> None:
    await create_account(admin, "Acme")
    await create_account(admin, "Globex")
    await create_va(admin, "Acme", "Lab")
    events_before = await event_count(db)
    for name in ("Lab", "DEFAULT"):
        status, body = await admin.post("/api/v1/accounts/Acme/virtual-accounts", {"name": name})
        assert status == 409, body
        assert body["field"] == "name"
    assert await event_count(db) == events_before
    # The same name in another account is another virtual account.
    await create_va(admin, "Globex", "Lab")
    assert await va_names(admin, "Globex") == ["DEFAULT", "Lab"]


async def test_virtual_accounts_of_unknown_account_are_404(admin: Api) -> None:
    status, body = await admin.get("/api/v1/accounts/Nobody/virtual-accounts")
    assert status == 404, body
    status, body = await admin.post("/api/v1/accounts/Nobody/virtual-accounts", {"name": "Lab"})
    assert status == 404, body
    assert body["field"] == "account"


async def test_delete_empty_virtual_account(admin: Api, system_admin: Credentials) -> None:
    await create_account(admin, "Acme")
    await create_va(admin, "Acme", "Lab")
    status, body = await admin.post("/api/v1/accounts/Acme/virtual-accounts/Lab/delete")
    assert status == 200, body
    assert body["status"] == "SUCCESS"
    assert await va_names(admin, "Acme") == ["DEFAULT"]
    status, body = await admin.get("/api/v1/events?action=virtual_account")
    assert [(e["action"], e["target"]) for e in body["events"]] == [
        ("virtual_account.deleted", "Acme/Lab"),
        ("virtual_account.created", "Acme/Lab"),
    ]
    assert {e["actor"] for e in body["events"]} == {f"client:{system_admin.client_id}"}
    # The name is free again.
    await create_va(admin, "Acme", "Lab")


async def test_delete_of_virtual_account_holding_licenses_is_refused(
    admin: Api, db: asyncpg.Connection
) -> None:
    await create_account(admin, "Acme")
    await create_va(admin, "Acme", "Lab")
    for tag in (ENHANCED, BASIC):
        status, body = await admin.post(
            "/api/v1/accounts/Acme/virtual-accounts/Lab/license-pool",
            {"entitlementTag": tag, "quantity": 5},
        )
        assert status == 200, body
    events_before = await event_count(db)
    status, body = await admin.post("/api/v1/accounts/Acme/virtual-accounts/Lab/delete")
    assert status == 409, body
    assert "Lab" in body["detail"]
    assert "2 license line" in body["detail"]
    assert await va_names(admin, "Acme") == ["DEFAULT", "Lab"]
    assert await db.fetchval("SELECT count(*) FROM license_lines") == 2
    assert await event_count(db) == events_before


async def test_delete_of_virtual_account_with_a_live_token_is_refused(
    admin: Api, db: asyncpg.Connection
) -> None:
    await create_account(admin, "Acme")
    await create_va(admin, "Acme", "Lab")
    tokens = "/api/v1/accounts/Acme/virtual-accounts/Lab/tokens"
    status, body = await admin.post(tokens, {"description": "rack 4"})
    assert status == 200, body
    token = body["tokenInfo"]["token"]
    status, body = await admin.post("/api/v1/accounts/Acme/virtual-accounts/Lab/delete")
    assert status == 409, body
    assert "1 active registration token" in body["detail"]
    assert await va_names(admin, "Acme") == ["DEFAULT", "Lab"]
    # Once revoked (an audited change of its own) the token no longer holds the account.
    assert (await admin.post(tokens + "/revoke", {"tokens": [token]}))[0] == 200
    status, body = await admin.post("/api/v1/accounts/Acme/virtual-accounts/Lab/delete")
    assert status == 200, body
    assert await va_names(admin, "Acme") == ["DEFAULT"]


async def test_names_are_checked_whatever_the_caller(runtime: Runtime) -> None:
    """The host CLI calls the services directly: they refuse what the API would refuse."""
    async with open_services(runtime) as services:
        operator = host_operator("pytest")
        for bad in ("a/b", "", " padded", "tab\there", "x" * 101, "Lab\n"):
            with pytest.raises(InvalidInput) as caught:
                await services.accounts.create_account(operator, bad, "", False)
            assert caught.value.field == "name"
        with pytest.raises(InvalidInput):
            await services.accounts.create_account(operator, "Acme", "x" * 501, False)
        await services.accounts.create_account(operator, "Acme Corp", "", False)
        with pytest.raises(InvalidInput):
            await services.accounts.create_virtual_account(operator, "Acme Corp", "a/b", "")
        assert [a.name for a in await services.accounts.visible_accounts(operator)] == ["Acme Corp"]


async def test_default_virtual_account_cannot_be_deleted(
    admin: Api, db: asyncpg.Connection
) -> None:
    await create_account(admin, "Acme")
    events_before = await event_count(db)
    status, body = await admin.post("/api/v1/accounts/Acme/virtual-accounts/DEFAULT/delete")
    assert status == 409, body
    assert "default" in body["detail"]
    assert await va_names(admin, "Acme") == ["DEFAULT"]
    assert await event_count(db) == events_before


async def test_delete_of_unknown_virtual_account_is_404(admin: Api) -> None:
    await create_account(admin, "Acme")
    status, body = await admin.post("/api/v1/accounts/Acme/virtual-accounts/Nope/delete")
    assert status == 404, body
    assert body["field"] == "virtualAccount"
    assert "Nope" in body["detail"]


async def test_delete_takes_no_parameters(admin: Api) -> None:
    await create_account(admin, "Acme")
    await create_va(admin, "Acme", "Lab")
    status, body = await admin.post(
        "/api/v1/accounts/Acme/virtual-accounts/Lab/delete", {"force": True}
    )
    assert status == 422, body
    assert body["field"] == "force"
    assert await va_names(admin, "Acme") == ["DEFAULT", "Lab"]


async def test_viewer_reads_but_cannot_change_virtual_accounts(
    admin: Api, db: asyncpg.Connection
) -> None:
    await create_account(admin, "Acme")
    await create_va(admin, "Acme", "Lab")
    viewer = await new_client(admin, "account-viewer", ["Acme"])
    assert await va_names(viewer, "Acme") == ["DEFAULT", "Lab"]
    events_before = await event_count(db)
    status, body = await viewer.post("/api/v1/accounts/Acme/virtual-accounts", {"name": "X"})
    assert status == 403, body
    status, body = await viewer.post("/api/v1/accounts/Acme/virtual-accounts/Lab/delete")
    assert status == 403, body
    assert await va_names(admin, "Acme") == ["DEFAULT", "Lab"]
    assert await event_count(db) == events_before


async def test_account_admin_manages_virtual_accounts_of_its_account_only(admin: Api) -> None:
    await create_account(admin, "Acme")
    await create_account(admin, "Globex")
    account_admin = await new_client(admin, "account-admin", ["Acme"])
    status, body = await account_admin.post(
        "/api/v1/accounts/Acme/virtual-accounts", {"name": "Lab"}
    )
    assert status == 200, body
    status, body = await account_admin.post(
        "/api/v1/accounts/Globex/virtual-accounts", {"name": "Lab"}
    )
    assert status == 404, body
    assert await va_names(admin, "Globex") == ["DEFAULT"]


async def test_names_with_spaces_work_in_paths(admin: Api) -> None:
    await create_account(admin, "Acme Corp")
    await create_va(admin, "Acme Corp", "Lab North")
    assert await va_names(admin, "Acme%20Corp") == ["DEFAULT", "Lab North"]
    status, body = await admin.post(
        "/api/v1/accounts/Acme%20Corp/virtual-accounts/Lab%20North/delete"
    )
    assert status == 200, body
    assert await va_names(admin, "Acme%20Corp") == ["DEFAULT"]


async def test_events_carry_the_request_id(admin: Api) -> None:
    traced = Api(admin.client, admin.token, {"X-Request-ID": "trace-0042"})
    await create_account(traced, "Acme")
    status, body = await admin.get("/api/v1/events?action=account.created")
    assert status == 200, body
    assert [e["requestId"] for e in body["events"]] == ["trace-0042"]


async def test_account_is_not_created_when_its_event_cannot_be_written(
    admin: Api, db: asyncpg.Connection
) -> None:
    await refuse_events(db, "account.created")
    status, body = await admin.post("/api/v1/accounts", {"name": "Acme"})
    assert status == 500, body
    assert await db.fetchval("SELECT count(*) FROM accounts") == 0
    assert await db.fetchval("SELECT count(*) FROM virtual_accounts") == 0


async def test_virtual_account_stays_when_its_deletion_cannot_be_audited(
    admin: Api, db: asyncpg.Connection
) -> None:
    await create_account(admin, "Acme")
    await create_va(admin, "Acme", "Lab")
    await refuse_events(db, "virtual_account.deleted")
    status, body = await admin.post("/api/v1/accounts/Acme/virtual-accounts/Lab/delete")
    assert status == 500, body
    assert await va_names(admin, "Acme") == ["DEFAULT", "Lab"]


async def test_a_name_ending_in_a_newline_is_refused(admin: Api, db: asyncpg.Connection) -> None:
    """A name with a line break at its end was taken and stored (``$`` matches before a
    final newline): a name no URL spells plainly, and a line break in every log line."""
    await create_account(admin, "Acme")
    before = await event_count(db)
    for path in ("/api/v1/accounts", "/api/v1/accounts/Acme/virtual-accounts"):
        status, body = await admin.post(path, {"name": "Lab\n"})
        assert status == 422, body
        assert body["field"] == "name", body
    assert await event_count(db) == before
    assert await va_names(admin, "Acme") == ["DEFAULT"]
