"""A virtual account read by its name, renamed and described through the admin API and
the CLI: what refers to it by name (the default's name, a sync's other end, open pool
alerts) is kept right."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from satellite.api.context import Services
from tests.conftest import ENHANCED, AiohttpClient, Api, Credentials, new_client
from tests.helpers.accounts import create_account, create_va, va_names
from tests.helpers.cli import Cli, toml_config
from tests.helpers.events import event_count, refuse_events
from tests.helpers.sync import (
    SITE,
    UP_ACCOUNT,
    open_upstream,
    register_online,
    setup_site,
    setup_upstream,
)

UPDATE = "/api/v1/accounts/Acme/virtual-accounts/{}/update"


async def test_rename_and_describe_a_virtual_account(admin: Api, system_admin: Credentials) -> None:
    """What the virtual account holds goes with it; its old name no longer finds it."""
    await create_account(admin, "Acme")
    await create_va(admin, "Acme", "Lab", "the lab")
    status, body = await admin.post(
        "/api/v1/accounts/Acme/virtual-accounts/Lab/license-pool",
        {"entitlementTag": ENHANCED, "quantity": 5},
    )
    assert status == 200, body
    status, body = await admin.post(
        "/api/v1/accounts/Acme/virtual-accounts/Lab/tokens", {"description": "rack 4"}
    )
    assert status == 200, body

    status, body = await admin.post(
        UPDATE.format("Lab"), {"name": "Bench", "description": "the test bench"}
    )
    assert status == 200, body
    [updated] = body["virtualAccounts"]
    assert (updated["name"], updated["description"], updated["isDefault"]) == (
        "Bench",
        "the test bench",
        "false",
    )
    assert await va_names(admin, "Acme") == ["DEFAULT", "Bench"]
    status, body = await admin.get("/api/v1/accounts/Acme/virtual-accounts/Bench/license-pool")
    assert status == 200, body
    assert [line["quantity"] for line in body["licenses"]] == [5]
    status, body = await admin.get("/api/v1/accounts/Acme/virtual-accounts/Bench/tokens")
    assert [t["description"] for t in body["tokens"]] == ["rack 4"]
    status, body = await admin.get("/api/v1/accounts/Acme/virtual-accounts/Lab/license-pool")
    assert status == 404, body

    # The description alone; then the name's case alone (its own name is not "taken").
    status, body = await admin.post(UPDATE.format("bench"), {"description": ""})
    assert status == 200, body
    assert body["virtualAccounts"][0]["name"] == "Bench"
    assert body["virtualAccounts"][0]["description"] == ""
    status, body = await admin.post(UPDATE.format("Bench"), {"name": "BENCH"})
    assert status == 200, body
    assert await va_names(admin, "Acme") == ["DEFAULT", "BENCH"]

    status, body = await admin.get("/api/v1/events?action=virtual_account.updated")
    assert status == 200, body
    events = [(e["target"], e["details"]) for e in reversed(body["events"])]
    assert events == [
        ("Acme/Bench", {"from": "Lab", "to": "Bench", "description": "the test bench"}),
        ("Acme/Bench", {"description": ""}),
        ("Acme/BENCH", {"from": "Bench", "to": "BENCH"}),
    ]
    assert {e["actor"] for e in body["events"]} == {f"client:{system_admin.client_id}"}


async def test_rename_to_a_taken_name_is_409_and_changes_nothing(
    admin: Api, db: asyncpg.Connection
) -> None:
    await create_account(admin, "Acme")
    await create_va(admin, "Acme", "Lab", "the lab")
    await create_va(admin, "Acme", "Branch")
    before = await event_count(db)
    for name in ("Branch", "branch", "DEFAULT", "Default"):
        status, body = await admin.post(
            UPDATE.format("Lab"), {"name": name, "description": "changed"}
        )
        assert status == 409, body
        assert body["field"] == "name", body
    assert await va_names(admin, "Acme") == ["DEFAULT", "Branch", "Lab"]
    status, body = await admin.get("/api/v1/accounts/Acme/virtual-accounts")
    assert body["virtualAccounts"][2]["description"] == "the lab"
    assert await event_count(db) == before


async def test_the_default_virtual_account_keeps_its_name(
    admin: Api, db: asyncpg.Connection
) -> None:
    """Every account's default is DEFAULT: a sync maps it by that name at both ends."""
    await create_account(admin, "Acme")
    before = await event_count(db)
    status, body = await admin.post(UPDATE.format("DEFAULT"), {"name": "Main"})
    assert status == 409, body
    assert body["field"] == "name", body
    assert "default" in body["detail"]
    assert await va_names(admin, "Acme") == ["DEFAULT"]
    assert await event_count(db) == before
    # Its description may change, and naming it by its own name is no rename.
    status, body = await admin.post(
        UPDATE.format("default"), {"name": "DEFAULT", "description": "everything else"}
    )
    assert status == 200, body
    assert body["virtualAccounts"][0]["description"] == "everything else"
    assert body["virtualAccounts"][0]["isDefault"] == "true"


async def test_update_checks_names_and_descriptions_as_create_does(
    admin: Api, db: asyncpg.Connection
) -> None:
    await create_account(admin, "Acme")
    await create_va(admin, "Acme", "Lab")
    before = await event_count(db)
    for body_in, status_out, field in (
        ({"name": "a/b"}, 422, "name"),
        ({"name": ""}, 422, "name"),
        ({"name": "x" * 101}, 422, "name"),
        ({"name": "Lab\n"}, 422, "name"),
        ({"name": " padded"}, 422, "name"),
        ({"description": "x" * 501}, 422, "description"),
        ({"description": "bell\x07"}, 422, "description"),
        ({"name": 7}, 422, "name"),
        ({"colour": "red"}, 422, "colour"),
    ):
        status, body = await admin.post(UPDATE.format("Lab"), body_in)
        assert status == status_out, (body_in, body)
        assert body["field"] == field, (body_in, body)
    assert await va_names(admin, "Acme") == ["DEFAULT", "Lab"]
    assert await event_count(db) == before
    # Nothing to change: the virtual account as it is, nothing recorded.
    status, body = await admin.post(UPDATE.format("Lab"), {})
    assert status == 200, body
    assert body["virtualAccounts"][0]["name"] == "Lab"
    assert await event_count(db) == before
    status, body = await admin.post(UPDATE.format("Nope"), {"name": "Other"})
    assert status == 404, body
    assert body["field"] == "virtualAccount"


async def test_viewer_and_other_accounts_admin_cannot_rename(
    admin: Api, db: asyncpg.Connection
) -> None:
    await create_account(admin, "Acme")
    await create_account(admin, "Globex")
    await create_va(admin, "Acme", "Lab")
    viewer = await new_client(admin, "account-viewer", ["Acme"])
    other = await new_client(admin, "account-admin", ["Globex"])
    own = await new_client(admin, "account-admin", ["Acme"])
    before = await event_count(db)
    status, body = await viewer.post(UPDATE.format("Lab"), {"name": "Mine"})
    assert status == 403, body
    status, body = await other.post(UPDATE.format("Lab"), {"name": "Mine"})
    assert status == 404, body
    assert await va_names(admin, "Acme") == ["DEFAULT", "Lab"]
    assert await event_count(db) == before
    status, body = await own.post(UPDATE.format("Lab"), {"name": "Mine"})
    assert status == 200, body
    assert await va_names(admin, "Acme") == ["DEFAULT", "Mine"]


async def test_an_open_pool_alert_names_the_new_name(admin: Api) -> None:
    await create_account(admin, "Acme")
    await create_va(admin, "Acme", "Lab")
    status, body = await admin.post(
        "/api/v1/accounts/Acme/virtual-accounts/Lab/license-pool",
        {
            "entitlementTag": ENHANCED,
            "quantity": 5,
            "licenseType": "TERM",
            "startDate": "2020-01-01",
            "endDate": "2020-12-31",
        },
    )
    assert status == 200, body
    status, body = await admin.post("/api/v1/accounts/Acme/alerts")
    assert [(a["virtualAccount"], a["source"]) for a in body["alerts"]] == [("Lab", "Lab")]
    status, body = await admin.post(UPDATE.format("Lab"), {"name": "Bench"})
    assert status == 200, body
    status, body = await admin.post("/api/v1/accounts/Acme/alerts")
    assert [(a["virtualAccount"], a["source"]) for a in body["alerts"]] == [("Bench", "Bench")]


async def test_virtual_account_keeps_its_name_when_the_rename_cannot_be_audited(
    admin: Api, db: asyncpg.Connection
) -> None:
    await create_account(admin, "Acme")
    await create_va(admin, "Acme", "Lab")
    await refuse_events(db, "virtual_account.updated")
    status, body = await admin.post(UPDATE.format("Lab"), {"name": "Bench"})
    assert status == 500, body
    assert await va_names(admin, "Acme") == ["DEFAULT", "Lab"]


async def test_names_of_a_synced_account_are_kept_at_both_ends(
    admin: Api,
    services: Services,
    upstream_state_dir: Path,
    upstream_dsn: str,
    tmp_path: Path,
    aiohttp_client: AiohttpClient,
) -> None:
    """A satellite and its upstream know each virtual account by its name: a rename at
    either end would split one into two. Descriptions are each end's own."""
    async with open_upstream(upstream_state_dir, upstream_dsn, tmp_path, aiohttp_client) as up:
        await setup_upstream(up, enhanced=0)
        await setup_site(admin)
        await register_online(up, services)
        for api, path in ((admin, SITE), (up.admin, UP_ACCOUNT)):
            update = path + "/virtual-accounts/Voice/update"
            status, body = await api.post(update, {"name": "Phones"})
            assert status == 409, body
            assert body["field"] == "name", body
            assert "upstream" in body["detail"] or "satellite" in body["detail"], body
            status, body = await api.post(update, {"description": "desk phones"})
            assert status == 200, body
            assert body["virtualAccounts"][0]["name"] == "Voice"


def test_va_update_command(tmp_path: Path, db_dsn: str, state_dir: Path) -> None:
    cli = Cli(toml_config(tmp_path / "satellite.toml", state_dir, db_dsn), tmp_path)
    cli("account", "create", "Acme").ok()
    cli("va", "create", "Acme", "Lab").ok()
    renamed = cli("va", "update", "Acme", "Lab", "--name", "Bench", "--description", "bench")
    assert "Bench" in renamed.ok().out
    listed = cli("va", "list", "Acme", "--json").json()
    assert [(v["name"], v["description"]) for v in listed["virtualAccounts"]] == [
        ("DEFAULT", "Default virtual account"),
        ("Bench", "bench"),
    ]
    assert "default" in cli("va", "update", "Acme", "DEFAULT", "--name", "X").one_error_line()


async def test_one_virtual_account_by_its_name(admin: Api) -> None:
    await create_account(admin, "Acme")
    await create_account(admin, "Globex")
    await create_va(admin, "Acme", "Lab North", "the lab")
    viewer = await new_client(admin, "account-viewer", ["Acme"])
    other = await new_client(admin, "account-admin", ["Globex"])
    # Named ignoring case, answered with the stored spelling.
    status, body = await viewer.get("/api/v1/accounts/Acme/virtual-accounts/lab%20north")
    assert status == 200, body
    va = body["virtualAccount"]
    assert (va["name"], va["description"], va["isDefault"]) == ("Lab North", "the lab", "false")
    status, body = await viewer.get("/api/v1/accounts/Acme/virtual-accounts/Nope")
    assert status == 404, body
    assert body["field"] == "virtualAccount"
    status, body = await other.get("/api/v1/accounts/Acme/virtual-accounts/DEFAULT")
    assert status == 404, body
    assert body["field"] == "account"


def test_va_show_command(tmp_path: Path, db_dsn: str, state_dir: Path) -> None:
    cli = Cli(toml_config(tmp_path / "satellite.toml", state_dir, db_dsn), tmp_path)
    cli("account", "create", "Acme").ok()
    shown = cli("va", "show", "Acme", "default", "--json").json()
    assert shown["virtualAccount"]["name"] == "DEFAULT"
    assert "Default virtual account" in cli("va", "show", "Acme", "DEFAULT").ok().out
    assert "Nope" in cli("va", "show", "Acme", "Nope").one_error_line()
