"""Issue 12 section 1: the admin API's conventions as public SSM On-Prem automation relies
on them (one test per fact, named after it), over real HTTP on a real database."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import structlog

from satellite.http.openapi import build_document
from satellite.http.routes import ROUTES
from tests.conftest import BASIC, CUWL, ENHANCED, Api, Credentials, new_client
from tests.test_cli import Cli, _toml_config

ACME = "/api/v1/accounts/Acme"
VAS = ACME + "/virtual-accounts"
DEFAULT = VAS + "/DEFAULT"
TOKENS = DEFAULT + "/tokens"
POOL = DEFAULT + "/license-pool"
SUBSCRIPTIONS = ACME + "/license-subscriptions"


async def ok(api: Api, path: str, body: Any = None) -> Any:
    status, answer = await api.post(path, body)
    assert status == 200, answer
    return answer


async def setup(admin: Api, *vas: str, export: bool = False) -> None:
    await ok(admin, "/api/v1/accounts", {"name": "Acme", "exportControlledAllowed": export})
    for va in vas:
        await ok(admin, VAS, {"name": va})


async def refused(api: Api, path: str, body: Any, field: str, status: int = 422) -> None:
    got, answer = await api.post(path, body)
    assert got == status, answer
    assert answer["field"] == field, answer


# --- limit -1 and offset ---------------------------------------------------------------------


async def test_limit_minus_one_means_all_on_every_list_endpoint(admin: Api) -> None:
    await setup(admin, "Lab", "Voice")  # three audit events at least, one token below
    await ok(admin, TOKENS, {"description": "one"})
    await ok(admin, TOKENS, {"description": "two"})
    for path, body, key in (
        (ACME + "/alerts", {"limit": -1}, "alerts"),
        ("/api/v1/events", {"limit": -1}, "events"),
        (ACME + "/licenses", {"limit": -1}, "licenses"),
        (SUBSCRIPTIONS, {"limit": -1}, "subscriptions"),
    ):
        answer = await ok(admin, path, body)
        assert isinstance(answer[key], list), (path, answer)
    status, events = await admin.get("/api/v1/events?limit=-1")
    assert status == 200, events
    assert len(events["events"]) == events["totalRecords"] >= 4
    for path, key in (
        (DEFAULT + "/devices?limit=-1", "devices"),
        (DEFAULT + "/export-keys?limit=-1", "exportKeys"),
        (TOKENS + "?limit=-1", "tokens"),
    ):
        status, answer = await admin.get(path)
        assert status == 200, (path, answer)
        assert isinstance(answer[key], list)
    status, tokens = await admin.get(TOKENS + "?limit=-1")
    assert len(tokens["tokens"]) == 2


async def test_offset_skips_the_same_records_on_every_list_endpoint(admin: Api) -> None:
    await setup(admin, "Lab", "Voice")
    for description in ("one", "two", "three"):
        await ok(admin, TOKENS, {"description": description})
    status, every = await admin.get(TOKENS + "?limit=-1")
    assert status == 200
    status, page = await admin.get(TOKENS + "?limit=1&offset=1")
    assert status == 200, page
    assert page["tokens"] == every["tokens"][1:2]
    status, events = await admin.get("/api/v1/events?limit=-1")
    answer = await ok(admin, "/api/v1/events", {"limit": 2, "offset": 1})
    assert answer["events"] == events["events"][1:3]
    # All from an offset: -1 with an offset is the rest of the list.
    answer = await ok(admin, "/api/v1/events", {"limit": -1, "offset": 2})
    assert answer["events"] == events["events"][2:]
    alerts = await ok(admin, ACME + "/alerts", {"limit": -1, "offset": 0})
    assert alerts["alerts"] == []


# --- creates answer 200 ------------------------------------------------------------------------


async def test_creates_answer_200_with_the_created_object(admin: Api) -> None:
    account = await ok(admin, "/api/v1/accounts", {"name": "Acme"})
    assert account["account"]["name"] == "Acme"
    va = await ok(admin, VAS, {"name": "Voice"})
    assert va["virtualAccounts"][0]["name"] == "Voice"
    token = await ok(admin, TOKENS, {"description": "play"})
    assert token["tokenInfo"]["description"] == "play"
    line = await ok(admin, POOL, {"entitlementTag": ENHANCED, "quantity": 5})
    assert line["license"]["quantity"] == 5
    client = await ok(admin, "/api/v1/clients", {"role": "account-admin", "accounts": ["Acme"]})
    assert client["clientSecret"]
    user = await ok(
        admin,
        "/api/v1/users",
        {
            "username": "ops",
            "password": "a-long-enough-passw0rd",
            "role": "account-viewer",
            "accounts": ["Acme"],
        },
    )
    assert user["item"]["name"] == "ops"
    # (An upstream's satellite tokens too: tests/sync/ creates them.)
    # The document says so too.
    creates = [
        r for r in ROUTES if r.summary.startswith("Create") or r.summary == "Add a pool line"
    ]
    assert creates
    assert all(r.status == 200 for r in creates)


# --- optional bodies -----------------------------------------------------------------------------


async def test_action_bodies_may_be_absent_empty_or_null(admin: Api) -> None:
    await setup(admin, "A", "B", "C")
    for name, raw in (("A", None), ("B", b"{}"), ("C", b"null")):
        status, answer = await admin.call("POST", f"{VAS}/{name}/delete", raw=raw)
        assert status == 200, (name, answer)
    for raw in (None, b"{}", b"null", b" null "):
        created = await ok(
            admin, "/api/v1/clients", {"role": "account-viewer", "accounts": ["Acme"]}
        )
        status, answer = await admin.call(
            "POST", f"/api/v1/clients/{created['clientId']}/disable", raw=raw
        )
        assert status == 200, (raw, answer)
        assert answer["item"]["disabled"] is True


# --- numbers as strings or integral floats ------------------------------------------------


async def test_numbers_may_be_json_strings_or_integral_floats(admin: Api) -> None:
    await setup(admin)
    token = await ok(admin, TOKENS, {"expiresAfterDays": "365", "numberOfUses": 2.0})
    assert token["tokenInfo"]["numberOfUses"] == 2
    token = await ok(admin, TOKENS, {"expiresAfterDays": 30.0, "numberOfUses": "7"})
    assert token["tokenInfo"]["numberOfUses"] == 7
    line = await ok(admin, POOL, {"entitlementTag": ENHANCED, "quantity": "12"})
    assert line["license"]["quantity"] == 12
    line = await ok(admin, POOL, {"entitlementTag": BASIC, "quantity": 3.0})
    assert line["license"]["quantity"] == 3
    page = await ok(admin, ACME + "/licenses", {"limit": "1", "offset": 1.0})
    assert page["totalRecords"] == 2
    assert len(page["licenses"]) == 1
    events = await ok(admin, "/api/v1/events", {"limit": "-1", "offset": "0"})
    assert events["events"]
    await ok(admin, ACME + "/alerts", {"limit": 5.0})


async def test_numbers_that_are_not_exact_integers_are_refused_naming_the_field(
    admin: Api, db: asyncpg.Connection
) -> None:
    await setup(admin)
    before = await db.fetchval("SELECT count(*) FROM registration_tokens")
    for value in ("1.5", 1.5, "abc", True, "", [1]):
        await refused(admin, TOKENS, {"numberOfUses": value}, "numberOfUses")
        await refused(admin, TOKENS, {"expiresAfterDays": value}, "expiresAfterDays")
        await refused(admin, POOL, {"entitlementTag": ENHANCED, "quantity": value}, "quantity")
        await refused(admin, ACME + "/licenses", {"limit": value}, "limit")
        await refused(admin, "/api/v1/events", {"offset": value}, "offset")
    assert await db.fetchval("SELECT count(*) FROM registration_tokens") == before
    assert await db.fetchval("SELECT count(*) FROM license_lines") == 0
    status, answer = await admin.get(TOKENS + "?limit=1.5")
    assert (status, answer["field"]) == (422, "limit")


async def test_export_controlled_takes_allowed_not_allowed_or_a_boolean(admin: Api) -> None:
    await setup(admin, export=True)
    for given, answered in (
        ("Allowed", "Allowed"),
        ("Not Allowed", "Not Allowed"),
        (True, "Allowed"),
        (False, "Not Allowed"),
    ):
        token = await ok(admin, TOKENS, {"exportControlled": given})
        assert token["tokenInfo"]["exportControlled"] == answered, given
    await refused(admin, TOKENS, {"exportControlled": "maybe"}, "exportControlled")


# --- virtual account names ---------------------------------------------------------------


async def test_virtual_account_names_match_ignoring_case_and_answer_the_stored_spelling(
    admin: Api,
) -> None:
    await setup(admin, "Voice")
    token = await ok(admin, VAS + "/default/tokens", {"description": "x"})
    assert token["tokenInfo"]["virtualAccount"] == "DEFAULT"
    status, listed = await admin.get(VAS + "/Default/tokens")
    assert status == 200
    assert len(listed["tokens"]) == 1
    await ok(admin, VAS + "/VOICE/license-pool", {"entitlementTag": ENHANCED, "quantity": 4})
    view = await ok(admin, ACME + "/licenses", {"virtualAccounts": ["voice"]})
    assert [p["virtualAccount"] for p in view["licenses"]] == ["Voice"]
    await refused(admin, VAS, {"name": "VOICE"}, "name", status=409)
    await refused(admin, VAS, {"name": "default"}, "name", status=409)
    status, vas = await admin.get(VAS)
    assert sorted(v["name"] for v in vas["virtualAccounts"]) == ["DEFAULT", "Voice"]


async def test_migration_012_keeps_case_duplicates_apart_by_renaming_the_later_ones(
    fresh_db: str,
) -> None:
    from satellite.resources import migrations_dir
    from satellite.storage.migrations import load_migrations, migrate

    migrations = load_migrations(migrations_dir())
    conn = await asyncpg.connect(fresh_db)
    try:
        await migrate(conn, [m for m in migrations if m.version < 12])
        account = await conn.fetchval("INSERT INTO accounts (name) VALUES ('Acme') RETURNING id")
        for name in ("Voice", "VOICE", "voice", "Voice~2"):
            await conn.execute(
                "INSERT INTO virtual_accounts (account_id, name) VALUES ($1, $2)", account, name
            )
        await migrate(conn, migrations)
        names = [
            r["name"] for r in await conn.fetch("SELECT name FROM virtual_accounts ORDER BY id")
        ]
        assert names[0] == "Voice"
        assert names[3] == "Voice~2"
        assert len({n.lower() for n in names}) == 4, names
        assert all(n.lower().startswith("voice") for n in names)
        renamed = await conn.fetch(
            "SELECT target, details FROM events WHERE action = 'virtual_account.renamed'"
        )
        assert len(renamed) == 2
    finally:
        await conn.close()


# --- flags, domain and id ------------------------------------------------------------------------


async def test_is_default_is_answered_as_a_string_true_or_false(admin: Api) -> None:
    await setup(admin, "Voice")
    status, answer = await admin.get(VAS)
    assert status == 200, answer
    flags = {v["name"]: v["isDefault"] for v in answer["virtualAccounts"]}
    assert flags == {"DEFAULT": "true", "Voice": "false"}
    created = await ok(admin, VAS, {"name": "Lab"})
    assert created["virtualAccounts"][0]["isDefault"] == "false"


async def test_accounts_carry_their_domain_and_an_id(admin: Api) -> None:
    created = await ok(admin, "/api/v1/accounts", {"name": "Acme", "domain": "acme.example"})
    assert created["account"]["domain"] == "acme.example"
    await ok(admin, "/api/v1/accounts", {"name": "Other"})
    listed = await ok(admin, "/api/v1/upstream_satellites/accounts")
    by_name = {a["name"]: a for a in listed["accounts"]}
    assert by_name["Acme"]["domain"] == "acme.example"
    assert by_name["Other"]["domain"] is None
    ids = {a["id"] for a in listed["accounts"]}
    assert len(ids) == 2
    assert all(isinstance(i, int) for i in ids)
    updated = await ok(admin, ACME + "/update", {"domain": "voice.acme.example"})
    assert updated["account"]["domain"] == "voice.acme.example"
    assert updated["account"]["id"] == by_name["Acme"]["id"]
    await refused(admin, ACME + "/update", {"domain": "not a domain"}, "domain")
    await refused(admin, "/api/v1/accounts", {"name": "X", "domain": "-bad-.example"}, "domain")
    # ``$`` matches before a final newline too: such a domain was taken and stored.
    await refused(admin, ACME + "/update", {"domain": "acme.example\n"}, "domain")
    await refused(admin, "/api/v1/accounts", {"name": "X", "domain": "x.example\n"}, "domain")


def test_the_cli_sets_and_shows_an_accounts_domain(
    tmp_path: Path, db_dsn: str, state_dir: Path
) -> None:
    cli = Cli(_toml_config(tmp_path / "satellite.toml", state_dir, db_dsn), tmp_path)
    created = cli("account", "create", "Acme", "--domain", "acme.example", "--json").json()
    assert created["account"]["domain"] == "acme.example"
    updated = cli("account", "update", "Acme", "--domain", "voice.acme.example").ok()
    assert ["domain", "voice.acme.example"] in [line.split() for line in updated.out.splitlines()]
    listed = cli("account", "list").ok()
    assert "voice.acme.example" in listed.out
    error = cli("account", "update", "Acme", "--domain", "not a domain").one_error_line()
    assert "domain" in error
    removed = cli("account", "update", "Acme", "--domain", "", "--json").json()
    assert removed["account"]["domain"] is None


# --- OAuth parameters in the query string ----------------------------------------------------


async def test_oauth_token_takes_the_grant_from_the_query_string_on_both_urls(
    anon: Api, system_admin: Credentials
) -> None:
    query = urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": system_admin.client_id,
            "client_secret": system_admin.client_secret,
        }
    )
    for url in ("/oauth/token", "/backend/oauth/token"):
        with structlog.testing.capture_logs() as logs:
            status, answer = await anon.call("POST", f"{url}?{query}")
        assert status == 200, answer
        assert answer["token_type"] == "Bearer"
        status, accounts = await anon.as_token(answer["access_token"]).get("/api/v1/accounts")
        assert status == 200, accounts
        # The secret in the URL never reaches the log.
        assert system_admin.client_secret not in repr(logs)
        assert all("client_secret" not in str(e.get("path", "")) for e in logs)
    # Split between the query string and the body works; one parameter given twice, with
    # two values, is refused.
    split = urlencode({"grant_type": "client_credentials"})
    credentials = {"client_id": system_admin.client_id, "client_secret": system_admin.client_secret}
    status, answer = await anon.post(f"/oauth/token?{split}", credentials)
    assert status == 200, answer
    twice = urlencode({"grant_type": "client_credentials", "client_id": "sat-other"})
    status, answer = await anon.post(f"/oauth/token?{twice}", credentials)
    assert status == 400, answer
    assert (answer["error"], answer["field"]) == ("invalid_request", "client_id")


async def test_oauth_query_string_grants_are_rate_limited_and_never_logged(
    anon: Api, system_admin: Credentials
) -> None:
    wrong = urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": system_admin.client_id,
            "client_secret": "wrong-secret-guess",
        }
    )
    statuses = []
    with structlog.testing.capture_logs() as logs:
        for _ in range(11):
            status, _answer = await anon.call("POST", f"/oauth/token?{wrong}")
            statuses.append(status)
    assert statuses[:10] == [401] * 10
    assert statuses[10] == 429
    assert "wrong-secret-guess" not in repr(logs)


# --- license subscriptions -----------------------------------------------------------------------


async def test_license_subscriptions_lists_each_subscription_with_its_lines(admin: Api) -> None:
    await setup(admin, "Voice")
    term = {"licenseType": "TERM", "subscriptionId": "Sub-1001"}
    await ok(
        admin,
        POOL,
        {
            "entitlementTag": CUWL,
            "quantity": 20,
            "startDate": "2026-01-01",
            "endDate": "2027-12-31",
            **term,
        },
    )
    await ok(
        admin,
        POOL,
        {
            "entitlementTag": ENHANCED,
            "quantity": 5,
            "startDate": "2026-02-01",
            "endDate": "2027-06-30",
            **term,
        },
    )
    await ok(
        admin,
        VAS + "/Voice/license-pool",
        {
            "entitlementTag": BASIC,
            "quantity": 7,
            "licenseType": "SUBSCRIPTION",
            "startDate": "2020-01-01",
            "endDate": "2021-01-01",
            "subscriptionId": "Sub-9",
        },
    )
    await ok(admin, POOL, {"entitlementTag": BASIC, "quantity": 1})  # perpetual: no subscription
    answer = await ok(admin, SUBSCRIPTIONS)
    assert answer["totalRecords"] == 2
    first, second = answer["subscriptions"]
    assert first["subscriptionId"] == "Sub-1001"
    assert first["virtualAccount"] == "DEFAULT"
    assert (first["startDate"], first["endDate"]) == ("2026-01-01", "2027-12-31")
    assert {(x["entitlementTag"], x["quantity"]) for x in first["licenses"]} == {
        (CUWL, 20),
        (ENHANCED, 5),
    }
    assert all(x["license"] and x["licenseType"] == "TERM" for x in first["licenses"])
    assert second["subscriptionId"] == "Sub-9"
    assert (second["virtualAccount"], second["status"]) == ("Voice", "Expired")
    only = await ok(admin, SUBSCRIPTIONS, {"virtualAccounts": ["voice"]})
    assert [s["subscriptionId"] for s in only["subscriptions"]] == ["Sub-9"]
    page = await ok(admin, SUBSCRIPTIONS, {"limit": 1, "offset": 1})
    assert page["totalRecords"] == 2
    assert [s["subscriptionId"] for s in page["subscriptions"]] == ["Sub-9"]
    assert (await ok(admin, SUBSCRIPTIONS, None)) == answer


async def test_license_subscriptions_are_scoped_to_the_callers_accounts(admin: Api) -> None:
    await setup(admin)
    await ok(admin, "/api/v1/accounts", {"name": "Other"})
    await ok(
        admin,
        POOL,
        {
            "entitlementTag": CUWL,
            "quantity": 2,
            "licenseType": "TERM",
            "subscriptionId": "S-1",
            "startDate": "2026-01-01",
            "endDate": "2030-01-01",
        },
    )
    other = await new_client(admin, "account-admin", ["Other"])
    status, answer = await other.post(SUBSCRIPTIONS, {})
    assert status == 404, answer
    mine = await new_client(admin, "account-viewer", ["Acme"])
    answer = await ok(mine, SUBSCRIPTIONS, {})
    assert [s["subscriptionId"] for s in answer["subscriptions"]] == ["S-1"]


# --- the OpenAPI document ---------------------------------------------------------------------


def test_openapi_describes_every_query_parameter() -> None:
    document = build_document()
    events = document["paths"]["/api/v1/events"]["get"]
    query = {p["name"] for p in events["parameters"] if p["in"] == "query"}
    assert {"account", "action", "actor", "since", "until", "limit", "offset"} <= query
    devices = document["paths"]["/api/v1/accounts/{account}/virtual-accounts/{va}/devices"]
    names = {p["name"] for p in devices["get"]["parameters"] if p["in"] == "query"}
    assert {"status", "udiPid", "udiSerialNumber", "hostName", "limit", "offset"} <= names
    limit = next(p for p in devices["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["minimum"] == -1
    token = document["paths"]["/oauth/token"]["post"]
    grant = {p["name"] for p in token["parameters"] if p["in"] == "query"}
    assert {"grant_type", "client_id", "client_secret"} <= grant


def test_openapi_operation_ids_are_plain_identifiers() -> None:
    document = build_document()
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert ids
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", i) for i in ids), ids
    assert len(ids) == len(set(ids))
