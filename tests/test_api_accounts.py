"""Accounts through the admin API, under both of its prefixes."""

from __future__ import annotations

import asyncpg

from satellite.http.routes import ROUTES
from tests.conftest import Api, Credentials, new_client
from tests.helpers.accounts import PREFIXES, create_account, raw_post, va_names
from tests.helpers.events import event_count

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


async def test_the_toolkits_account_list_never_reads_its_body(admin: Api) -> None:
    """The toolkit's POST of the account list takes no parameters: whatever it sends as the
    body (a form, as ``curl -d`` sends; not JSON; a JSON array) is not read, as it never was."""
    await create_account(admin, "Acme")
    for raw in (b"limit=1&x=y", b"{not json", b"[1, 2]", b'"x"', b"[" * 100 + b"]" * 100):
        status, posted = await admin.post("/api/v1/upstream_satellites/accounts", raw=raw)
        assert status == 200, (raw, posted)
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
        "{name}": "forget-nonces",
        "{webhook}": "5a7e0000-0000-4000-8000-000000000001",
    }
    routes = []
    for route in ROUTES:
        if not route.api:
            continue
        path = route.path
        for placeholder, value in fill.items():
            path = path.replace(placeholder, value)
        assert "{" not in path, f"fill the placeholder of {route.path}"
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
