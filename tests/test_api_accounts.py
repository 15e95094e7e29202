"""Accounts and virtual accounts through the admin API, on a real database over real HTTP."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec
import pytest

from satellite.domain.access import host_operator
from satellite.errors import InvalidInput
from satellite.http.routes import ROUTES
from satellite.wiring import Runtime, open_services
from tests.conftest import BASIC, ENHANCED, Api, Credentials, new_client

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


async def event_count(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM events"))


async def raw_post(api: Api, path: str, body: Any) -> tuple[int, str, Any]:
    """Status, content type and decoded body, for checks on the media type."""
    headers = {"Authorization": f"Bearer {api.token}", "Content-Type": "application/json"}
    async with api.client.post(path, data=msgspec.json.encode(body), headers=headers) as response:
        return response.status, response.content_type, msgspec.json.decode(await response.read())


# --- accounts --------------------------------------------------------------------------------


async def test_create_account_answers_with_the_account(admin: Api) -> None:
    status, body = await admin.post(
        "/api/v1/accounts",
        {"name": "Acme", "description": "Acme Corp", "exportControlledAllowed": True},
    )
    assert status == 200, body
    account = body["account"]
    assert account["name"] == "Acme"
    assert account["description"] == "Acme Corp"
    assert account["exportControlledAllowed"] is True
    assert account["createdAt"]


async def test_account_export_controlled_defaults_to_not_allowed(admin: Api) -> None:
    status, body = await admin.post("/api/v1/accounts", {"name": "Plain"})
    assert status == 200, body
    assert body["account"]["exportControlledAllowed"] is False


async def test_duplicate_account_name_is_a_409_problem_naming_the_field(
    admin: Api, db: asyncpg.Connection
) -> None:
    await create_account(admin, "Acme")
    events_before = await event_count(db)
    status, content_type, body = await raw_post(admin, "/api/v1/accounts", {"name": "Acme"})
    assert status == 409
    assert content_type == "application/problem+json"
    assert body["status"] == 409
    assert body["field"] == "name"
    assert body["type"].endswith("conflict")
    assert "Acme" in body["detail"]
    # Nothing of the refused attempt is left behind.
    assert await db.fetchval("SELECT count(*) FROM accounts") == 1
    assert await db.fetchval("SELECT count(*) FROM virtual_accounts") == 1
    assert await event_count(db) == events_before


async def test_invalid_account_name_is_refused(admin: Api, db: asyncpg.Connection) -> None:
    for name in ["", "a/b", "x" * 101]:
        status, body = await admin.post("/api/v1/accounts", {"name": name})
        assert status == 422, (name, body)
        assert body["field"] == "name"
    assert await db.fetchval("SELECT count(*) FROM accounts") == 0


async def test_only_a_system_admin_creates_accounts(admin: Api, db: asyncpg.Connection) -> None:
    await create_account(admin, "Acme")
    account_admin = await new_client(admin, "account-admin", ["Acme"])
    events_before = await event_count(db)
    status, body = await account_admin.post("/api/v1/accounts", {"name": "Other"})
    assert status == 403, body
    assert await db.fetchval("SELECT count(*) FROM accounts WHERE name = 'Other'") == 0
    assert await event_count(db) == events_before


async def test_accounts_are_listed_by_both_list_calls(admin: Api) -> None:
    await create_account(admin, "Zeta")
    await create_account(admin, "Acme", export=True)
    status, listed = await admin.post("/api/v1/upstream_satellites/accounts")
    assert status == 200, listed
    assert [a["name"] for a in listed["accounts"]] == ["Acme", "Zeta"]
    assert [a["exportControlledAllowed"] for a in listed["accounts"]] == [True, False]
    status, got = await admin.get("/api/v1/accounts")
    assert status == 200, got
    assert got == listed


async def test_lists_without_parameters_ignore_the_query_string(admin: Api) -> None:
    """The account, virtual account, client and user lists never read a query string
    (nor the toolkit's POST its body): a parameter they do not take changes nothing."""
    await create_account(admin, "Acme")
    for path in (
        "/api/v1/accounts",
        "/api/v1/accounts/Acme/virtual-accounts",
        "/api/v1/clients",
        "/api/v1/users",
    ):
        status, plain = await admin.get(path)
        assert status == 200, plain
        status, with_query = await admin.get(path + "?limit=1&whatever=x")
        assert status == 200, with_query
        assert with_query == plain
    status, posted = await admin.post("/api/v1/upstream_satellites/accounts", {"limit": 1})
    assert status == 200, posted
    assert [a["name"] for a in posted["accounts"]] == ["Acme"]


async def test_account_list_shows_only_the_callers_accounts(admin: Api) -> None:
    await create_account(admin, "Acme")
    await create_account(admin, "Globex")
    viewer = await new_client(admin, "account-viewer", ["Globex"])
    status, body = await viewer.post("/api/v1/upstream_satellites/accounts")
    assert status == 200, body
    assert [a["name"] for a in body["accounts"]] == ["Globex"]
    status, body = await viewer.get("/api/v1/accounts")
    assert [a["name"] for a in body["accounts"]] == ["Globex"]


async def test_every_account_gets_a_default_virtual_account(admin: Api) -> None:
    await create_account(admin, "Acme")
    status, body = await admin.get("/api/v1/accounts/Acme/virtual-accounts")
    assert status == 200, body
    [default] = body["virtualAccounts"]
    assert default["name"] == "DEFAULT"
    assert default["isDefault"] == "true"


async def test_account_creation_is_audited(
    admin: Api, system_admin: Credentials, db: asyncpg.Connection
) -> None:
    await create_account(admin, "Acme", export=True)
    status, body = await admin.get("/api/v1/events?action=account")
    assert status == 200, body
    [event] = body["events"]
    assert event["action"] == "account.created"
    assert event["target"] == "Acme"
    assert event["account"] == "Acme"
    assert event["actor"] == f"client:{system_admin.client_id}"


async def test_update_changes_export_controlled_allowed(admin: Api, db: asyncpg.Connection) -> None:
    await create_account(admin, "Acme")
    status, body = await admin.post(
        "/api/v1/accounts/Acme/update", {"exportControlledAllowed": True}
    )
    assert status == 200, body
    assert body["account"]["exportControlledAllowed"] is True
    status, body = await admin.get("/api/v1/accounts")
    assert body["accounts"][0]["exportControlledAllowed"] is True
    # The new flag takes effect: an export-controlled token is now offered.
    status, body = await admin.post(
        "/api/v1/accounts/Acme/virtual-accounts/DEFAULT/tokens", {"exportControlled": "Allowed"}
    )
    assert status == 200, body
    token = body["tokenInfo"]["token"]
    # And back: refused while that token could still register export-controlled products.
    status, body = await admin.post(
        "/api/v1/accounts/Acme/update", {"exportControlledAllowed": False}
    )
    assert status == 409, body
    assert body["field"] == "exportControlledAllowed"
    assert "1 active export-controlled token" in body["detail"]
    assert await db.fetchval("SELECT export_controlled_allowed FROM accounts") is True
    status, body = await admin.post(
        "/api/v1/accounts/Acme/virtual-accounts/DEFAULT/tokens/revoke", {"tokens": [token]}
    )
    assert status == 200, body
    status, body = await admin.post(
        "/api/v1/accounts/Acme/update", {"exportControlledAllowed": False}
    )
    assert status == 200, body
    assert body["account"]["exportControlledAllowed"] is False
    assert await db.fetchval("SELECT count(*) FROM events WHERE action = 'account.updated'") == 2


async def test_update_of_description_keeps_the_flag(admin: Api) -> None:
    await create_account(admin, "Acme", export=True)
    status, body = await admin.post("/api/v1/accounts/Acme/update", {"description": "new text"})
    assert status == 200, body
    assert body["account"]["description"] == "new text"
    assert body["account"]["exportControlledAllowed"] is True


async def test_update_without_changes_records_nothing(admin: Api, db: asyncpg.Connection) -> None:
    await create_account(admin, "Acme", export=True)
    before = await event_count(db)
    status, body = await admin.post("/api/v1/accounts/Acme/update", {})
    assert status == 200, body
    assert body["account"]["exportControlledAllowed"] is True
    assert await event_count(db) == before


async def test_update_refusals(admin: Api, db: asyncpg.Connection) -> None:
    await create_account(admin, "Acme")
    account_admin = await new_client(admin, "account-admin", ["Acme"])
    events_before = await event_count(db)
    status, body = await admin.post(
        "/api/v1/accounts/Nobody/update", {"exportControlledAllowed": True}
    )
    assert status == 404, body
    status, body = await account_admin.post(
        "/api/v1/accounts/Acme/update", {"exportControlledAllowed": True}
    )
    assert status == 403, body
    status, body = await admin.post("/api/v1/accounts/Acme/update", {"exportControlled": True})
    assert status == 422, body
    assert body["field"] == "exportControlled"
    assert await db.fetchval("SELECT export_controlled_allowed FROM accounts") is False
    assert await event_count(db) == events_before


# --- both prefixes ---------------------------------------------------------------------------


def _api_routes() -> list[tuple[str, str]]:
    fill = {
        "{account}": "Acme",
        "{va}": "DEFAULT",
        "{line}": "1",
        "{product}": "p",
        "{client}": "c",
        "{user}": "u",
        "{token}": "1",
        "{satellite}": "s",
    }
    routes = []
    for route in ROUTES:
        if not route.api:
            continue
        path = route.path
        for placeholder, value in fill.items():
            path = path.replace(placeholder, value)
        routes.append((route.method, path))
    return routes


async def test_every_api_path_answers_under_both_prefixes(admin: Api) -> None:
    anonymous = admin.as_token(None)
    routes = _api_routes()
    assert len(routes) > 20
    for method, path in routes:
        for prefix in PREFIXES:
            status, body = await anonymous.call(method, prefix + path)
            # 401 (not 404 "no such path") proves the path is served under the prefix.
            assert status == 401, (method, prefix + path, body)
    status, body = await anonymous.get("/elsewhere/api/v1/accounts")
    assert status == 404, body


async def test_backend_prefix_serves_the_same_data(admin: Api) -> None:
    status, body = await admin.post("/backend/api/v1/accounts", {"name": "Acme"})
    assert status == 200, body
    status, body = await admin.post(
        "/backend/api/v1/accounts/Acme/virtual-accounts", {"name": "Lab"}
    )
    assert status == 200, body
    for method, path in [
        ("GET", "/accounts"),
        ("POST", "/upstream_satellites/accounts"),
        ("GET", "/accounts/Acme/virtual-accounts"),
        ("POST", "/accounts/Acme/licenses"),
        ("GET", "/license-catalog"),
    ]:
        answers = [await admin.call(method, prefix + path) for prefix in PREFIXES]
        assert answers[0][0] == 200, answers[0]
        assert answers[0] == answers[1], path
    assert await va_names(admin, "Acme") == ["DEFAULT", "Lab"]


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


async def refuse_events(db: asyncpg.Connection, action: str) -> None:
    """Make the audit insert of ``action`` fail inside the database."""
    await db.execute(
        f"ALTER TABLE events ADD CONSTRAINT refuse_{action.replace('.', '_')} "
        f"CHECK (action <> '{action}') NOT VALID"
    )


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
