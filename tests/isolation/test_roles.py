"""The isolation matrix, viewer against admin, and what a caller sees: lists, events and
principals of its own accounts only."""

from __future__ import annotations

from typing import Any

import asyncpg

from satellite.http.routes import API_PREFIXES
from tests.conftest import Credentials, login
from tests.helpers.api import EXPORT_KEY
from tests.helpers.isolation import (
    ALPHA,
    BRAVO,
    GHOST,
    PROBLEM,
    TABLE,
    World,
    account_view,
    label,
    normalized,
    ok,
    perform,
    snapshot,
)

# --- viewer against admin ------------------------------------------------------------------


async def test_viewer_reads_but_never_writes(world: World, db: asyncpg.Connection) -> None:
    before = await snapshot(db)
    failures = []
    for call in TABLE:
        for prefix in API_PREFIXES:
            status, body, content_type = await perform(world.a.viewer, call, world.a, prefix=prefix)
            expected = 403 if call.write else call.status
            if status != expected:
                failures.append(f"{call.method} {prefix}{call.path}: {status} {body}")
            elif call.write and not content_type.startswith(PROBLEM):
                failures.append(f"{call.method} {prefix}{call.path}: not a problem document")
    assert not failures, "\n".join(failures)
    assert await snapshot(db) == before, "a viewer changed the database"


async def test_a_refused_write_says_why_as_it_always_did(world: World) -> None:
    """A viewer's write is refused naming the account it may not change; an account admin's
    system admin work, saying only a system admin may do it (the services' words)."""
    a = world.a
    failures = []
    for call in TABLE:
        if not call.write:
            continue
        expected = [(a.viewer, f"role account-viewer may not change account {ALPHA!r}")]
        if call.writer == "system-admin":
            expected.append((a.admin, "only a system admin may do this"))
        for api, detail in expected:
            status, body, _ = await perform(api, call, a)
            if status != 403 or body.get("detail") != detail:
                failures.append(f"{label(call)}: {status} {body}")
    assert not failures, "\n".join(failures)


async def test_account_admin_writes_in_own_account(world: World) -> None:
    a = world.a
    b_before = await account_view(world.admin, BRAVO)
    failures = []
    for call in TABLE:
        status, body, _ = await perform(a.admin, call, a)
        expected = 403 if call.writer == "system-admin" else call.status
        if status != expected:
            failures.append(f"{label(call)}: {status} {body}")
    assert not failures, "\n".join(failures)

    # The writes took effect in A...
    base = f"/api/v1/accounts/{ALPHA}"
    _, vas = await a.viewer.get(f"{base}/virtual-accounts")
    assert {v["name"] for v in vas["virtualAccounts"]} == {"DEFAULT", "Main", "Fresh"}
    _, tokens = await a.admin.get(f"{base}/virtual-accounts/Main/tokens")
    by_token = {t["token"]: t["status"] for t in tokens["tokens"]}
    assert by_token.pop(a.token) == "Revoked"
    assert list(by_token.values()) == ["Active"]
    _, pool = await a.viewer.get(f"{base}/virtual-accounts/Main/license-pool")
    quantities = {
        line["id"]: line["quantity"]
        for line in pool["licenses"]
        if line["entitlementTag"] != EXPORT_KEY
    }
    assert a.spare_line not in quantities
    assert quantities.pop(a.line) == 7
    assert list(quantities.values()) == [5]
    _, main = await a.viewer.get(f"{base}/virtual-accounts/Main/devices?status=all")
    states = {d["sudi"]["udiSerialNumber"]: d["status"] for d in main["devices"]}
    prefix = ALPHA.upper()
    assert states == {
        f"{prefix}-0": "Registered",
        a.doomed: "Removed",
        f"{prefix}-settled": "Registered",
        f"{prefix}-pending": "Registered",
        f"{prefix}-returning": "Removed",  # by its return code
        f"{prefix}-forced": "Removed",
        f"{prefix}-asking": "Registered",  # reserved by the table's request
    }
    reservations = {
        d["sudi"]["udiSerialNumber"]: d["reservation"]["status"]
        for d in main["devices"]
        if d["reservation"]
    }
    assert reservations == {
        f"{prefix}-settled": "In Transition",  # updated
        f"{prefix}-pending": "Reserved",  # confirmed
        f"{prefix}-returning": "Returned",
        f"{prefix}-forced": "Removed",
        f"{prefix}-asking": "Pending Confirmation",
    }
    _, moved = await a.viewer.get(f"{base}/virtual-accounts/DEFAULT/devices")
    assert [d["sudi"]["udiSerialNumber"] for d in moved["devices"]] == [a.moving]
    # ...and nothing changed in B.
    assert await account_view(world.admin, BRAVO) == b_before


async def test_only_system_admin_creates_accounts_clients_users(
    world: World, db: asyncpg.Connection
) -> None:
    a = world.a
    await ok(
        world.admin,
        "/api/v1/users",
        {
            "username": "ann",
            "password": "long enough pass",
            "role": "account-viewer",
            "accounts": [ALPHA],
        },
    )
    system_only: tuple[tuple[str, dict[str, Any]], ...] = (
        ("/api/v1/accounts", {"name": "acct-new"}),
        ("/api/v1/clients", {"role": "account-viewer", "accounts": [ALPHA]}),
        ("/api/v1/clients", {"role": "system-admin"}),
        (
            "/api/v1/users",
            {
                "username": "eve",
                "password": "long enough pass",
                "role": "account-admin",
                "accounts": [ALPHA],
            },
        ),
        (f"/api/v1/clients/{a.viewer_id}/disable", {}),
        ("/api/v1/users/ann/disable", {}),
        ("/api/v1/users/ann/password", {"password": "another long one"}),
    )
    before = await snapshot(db)
    failures = []
    for api, who in ((a.admin, "admin"), (a.viewer, "viewer")):
        for prefix in API_PREFIXES:
            for path, body in system_only:
                path = path.replace("/api/v1", prefix, 1)
                status, problem = await api.post(path, body)
                if status != 403 or problem.get("status") != 403:
                    failures.append(f"{who} of A: POST {path}: {status} {problem}")
    assert not failures, "\n".join(failures)
    assert await snapshot(db) == before
    # The viewer's client still works: its disabling was refused.
    assert (await a.viewer.get(f"/api/v1/accounts/{ALPHA}/virtual-accounts"))[0] == 200
    # A system admin may.
    await ok(world.admin, *system_only[0])
    await ok(world.admin, *system_only[1])
    await ok(world.admin, *system_only[3])


# --- what a caller sees --------------------------------------------------------------------


async def test_account_lists_show_own_accounts(world: World) -> None:
    both = await ok(
        world.admin, "/api/v1/clients", {"role": "account-viewer", "accounts": [ALPHA, BRAVO]}
    )
    both_api = await login(world.admin, Credentials(both["clientId"], both["clientSecret"]))
    expected = (
        (world.admin, [ALPHA, BRAVO]),
        (world.a.admin, [ALPHA]),
        (world.a.viewer, [ALPHA]),
        (world.b.admin, [BRAVO]),
        (world.b.viewer, [BRAVO]),
        (both_api, [ALPHA, BRAVO]),
    )
    for api, names in expected:
        for prefix in API_PREFIXES:
            status, body = await api.post(f"{prefix}/upstream_satellites/accounts")
            assert status == 200, body
            assert sorted(a["name"] for a in body["accounts"]) == names
            status, body = await api.get(f"{prefix}/accounts")
            assert status == 200, body
            assert sorted(a["name"] for a in body["accounts"]) == names


async def test_events_show_own_account_only(world: World, db: asyncpg.Connection) -> None:
    a, b = world.a, world.b
    # Changes by each tenant's own admin, on top of the system admin's set-up.
    await ok(a.admin, f"/api/v1/accounts/{ALPHA}/virtual-accounts", {"name": "OnlyA"})
    await ok(b.admin, f"/api/v1/accounts/{BRAVO}/virtual-accounts", {"name": "OnlyB"})
    a_events = await db.fetchval(
        "SELECT count(*) FROM events e JOIN accounts x ON x.id = e.account_id WHERE x.name = $1",
        ALPHA,
    )
    assert a_events > 0

    for api in (a.admin, a.viewer):
        for path in ("/api/v1/events?limit=1000", "/backend/api/v1/events?limit=1000"):
            status, body = await api.get(path)
            assert status == 200, body
            assert body["totalRecords"] == a_events
            assert len(body["events"]) == a_events
            assert {e["account"] for e in body["events"]} == {ALPHA}
            assert not [e for e in body["events"] if BRAVO in e["target"] or "OnlyB" in e["target"]]
            assert any(e["target"] == f"{ALPHA}/OnlyA" for e in body["events"])
        status, body = await api.post("/api/v1/events", {"limit": 1000})
        assert status == 200, body
        assert {e["account"] for e in body["events"]} == {ALPHA}
        status, body = await api.get(f"/api/v1/events?account={ALPHA}")
        assert status == 200, body
        assert body["totalRecords"] == a_events

        # Asking for B's events is asking for an account that does not exist.
        status, foreign = await api.get(f"/api/v1/events?account={BRAVO}")
        _, ghost = await api.get(f"/api/v1/events?account={GHOST}")
        assert status == 404, foreign
        assert normalized(foreign, BRAVO) == normalized(ghost, GHOST)
        status, foreign = await api.post("/api/v1/events", {"account": BRAVO})
        _, ghost = await api.post("/api/v1/events", {"account": GHOST})
        assert status == 404, foreign
        assert normalized(foreign, BRAVO) == normalized(ghost, GHOST)
        # Filters do not widen the view.
        status, body = await api.get("/api/v1/events?action=virtual_account&limit=1000")
        assert status == 200
        assert {e["account"] for e in body["events"]} == {ALPHA}

    # The system admin sees both.
    status, body = await world.admin.get("/api/v1/events?limit=1000")
    assert status == 200
    assert {ALPHA, BRAVO} <= {e["account"] for e in body["events"]}


async def test_principal_lists_show_own_account_only(world: World) -> None:
    a, b = world.a, world.b
    for name, accounts in (("ann", [ALPHA]), ("bob", [BRAVO]), ("cy", [ALPHA, BRAVO])):
        await ok(
            world.admin,
            "/api/v1/users",
            {
                "username": name,
                "password": "long enough pass",
                "role": "account-viewer",
                "accounts": accounts,
            },
        )
    shared = await ok(
        world.admin, "/api/v1/clients", {"role": "account-viewer", "accounts": [ALPHA, BRAVO]}
    )
    for api in (a.admin, a.viewer):
        status, body = await api.get("/api/v1/clients")
        assert status == 200, body
        names = sorted(c["name"] for c in body["items"])
        assert names == sorted([a.admin_id, a.viewer_id, shared["clientId"]])
        status, users = await api.get("/api/v1/users")
        assert status == 200, users
        assert sorted(u["name"] for u in users["items"]) == ["ann", "cy"]
        # A principal shared with B is listed with A's part of its scope only:
        # the name of B is not A's to learn.
        for item in body["items"] + users["items"]:
            assert item["accounts"] == [ALPHA], item
    status, body = await world.admin.get("/api/v1/clients")
    assert {a.admin_id, b.admin_id, b.viewer_id} <= {c["name"] for c in body["items"]}
    [listed] = [c for c in body["items"] if c["name"] == shared["clientId"]]
    assert listed["accounts"] == [ALPHA, BRAVO]
