"""The isolation matrix, account A against account B: every account-scoped route is driven
from ``TABLE`` (tests/helpers/isolation.py), and a route without a row in it fails
``test_table_covers_every_account_route``."""

from __future__ import annotations

import json

import asyncpg
import pytest

from satellite.api.paths import ACCOUNT
from satellite.http.routes import API_PREFIXES, ROUTES
from tests.conftest import ENHANCED, Api
from tests.helpers.isolation import (
    ALPHA,
    BRAVO,
    GHOST,
    PROBLEM,
    SLR_LICENSES,
    TABLE,
    World,
    label,
    normalized,
    perform,
    snapshot,
)

# --- the table is complete -----------------------------------------------------------------


@pytest.mark.unit
def test_table_covers_every_account_route() -> None:
    routes = {
        (r.method, r.path)
        for r in ROUTES
        if r.path == ACCOUNT or r.path.startswith(ACCOUNT + "/") or "{account}" in r.path
    }
    table = {(c.method, c.path) for c in TABLE}
    missing = sorted(routes - table)
    assert not missing, f"routes without isolation coverage, add them to TABLE: {missing}"
    stale = sorted(table - routes)
    assert not stale, f"TABLE rows naming no route: {stale}"
    assert len(table) == len(TABLE), "a route appears twice in TABLE"


# --- account A against account B -----------------------------------------------------------


async def test_system_admin_may_do_everything(world: World) -> None:
    """The table's requests are valid: a system admin's succeed (so refusals mean refusals)."""
    failures = []
    for call in TABLE:
        status, body, _ = await perform(world.admin, call, world.b)
        if status != call.status:
            failures.append((label(call), status, body))
    assert not failures
    # ...and an account that does not exist is missing for the system admin too.
    for call in TABLE:
        status, body, _ = await perform(world.admin, call, world.b, account=GHOST)
        assert status == 404, (label(call), body)
        assert body["field"] == "account"


async def test_foreign_account_is_not_found(world: World, db: asyncpg.Connection) -> None:
    """Anything of B answers a caller of A exactly as an account that does not exist."""
    before = await snapshot(db)
    failures = []
    for caller in ("admin", "viewer"):
        api: Api = getattr(world.a, caller)
        for call in TABLE:
            for prefix in API_PREFIXES:
                status, problem, content_type = await perform(api, call, world.b, prefix=prefix)
                _, ghost, _ = await perform(api, call, world.b, account=GHOST, prefix=prefix)
                where = f"{caller} of A: {call.method} {prefix}{call.path}"
                if status != 404 or not content_type.startswith(PROBLEM):
                    failures.append(f"{where}: {status} {problem}")
                    continue
                if problem.get("field") != "account" or problem.get("status") != 404:
                    failures.append(f"{where}: not an account 404: {problem}")
                if normalized(problem, BRAVO) != normalized(ghost, GHOST):
                    failures.append(f"{where}: differs from a missing account: {problem} {ghost}")
    assert not failures, "\n".join(failures)
    assert await snapshot(db) == before, "a refused request changed the database"


async def test_objects_of_b_through_own_account_are_not_found(
    world: World, db: asyncpg.Connection
) -> None:
    """B's pool lines, tokens and products are not reachable under A's account either."""
    a, b = world.a, world.b
    base = f"/api/v1/accounts/{ALPHA}/virtual-accounts/Main"
    before = await snapshot(db)
    b_product = {"udiPid": "UCM", "udiSerialNumber": b.moving}
    a_product = {"udiPid": "UCM", "udiSerialNumber": a.moving}
    for path, body in (
        (f"{base}/license-pool/{b.line}/update", {"entitlementTag": ENHANCED, "quantity": 1}),
        (f"{base}/license-pool/{b.line}/delete", {}),
        (f"{base}/tokens/revoke", {"tokens": [b.token]}),
        (f"{base}/tokens/revoke", {"tokens": [a.token, b.token]}),
        (
            f"{base}/devices/transfer",
            {"productInstances": [{"sudi": b_product, "targetVirtualAccount": "DEFAULT"}]},
        ),
        (
            f"{base}/devices/transfer",
            {
                "productInstances": [
                    {"sudi": a_product, "targetVirtualAccount": "DEFAULT"},
                    {"sudi": b_product, "targetVirtualAccount": "DEFAULT"},
                ]
            },
        ),
        (f"{base}/devices/remove", {"productInstacesRemoveRequests": [{"sudi": b_product}]}),
        # B's specific license reservations: its reserved products by id, its codes.
        (f"{base}/reservations/{b.settled}/update", {"licenses": SLR_LICENSES}),
        (f"{base}/reservations/{b.forced}/force-remove", {"reason": "not A's"}),
        (f"{base}/reservations/confirm", {"confirmationCode": b.confirmation}),
        (f"{base}/reservations/return", {"returnCode": b.return_code}),
        (
            f"{base}/devices/remove",
            {
                "productInstacesRemoveRequests": [
                    {
                        "sudi": {"udiPid": "UCM", "udiSerialNumber": f"{BRAVO.upper()}-returning"},
                        "returnCode": b.return_code,
                    }
                ]
            },
        ),
    ):
        status, problem = await a.admin.post(path, body)
        assert status == 404, (path, problem)
        assert problem["status"] == 404
        assert BRAVO not in json.dumps(problem), problem
    for path in (
        f"{base}/devices/{b.product}",
        f"{base}/devices/{b.product}/export-keys",
        f"{base}/devices/{b.settled}",
        f"{base}/reservations/{b.settled}/authorization-code",
        f"{base}/reservations/{b.forced}/authorization-code",
    ):
        status, problem = await a.admin.get(path)
        assert status == 404, (path, problem)
        assert problem["field"] == "productInstanceId"
    # A's own export keys only.
    status, keys = await a.viewer.get(f"{base}/export-keys?status=all")
    assert status == 200, keys
    assert [k["productInstanceId"] for k in keys["exportKeys"]] == [a.product]
    # A's own products only, even with every status.
    status, listing = await a.viewer.get(f"{base}/devices?status=all")
    assert status == 200, listing
    reserved = {f"{ALPHA.upper()}-{role}" for role in ("settled", "pending", "returning", "forced")}
    assert listing["totalRecords"] == 3 + len(reserved)
    assert {d["sudi"]["udiSerialNumber"] for d in listing["devices"]} == {
        f"{ALPHA.upper()}-{n}" for n in range(3)
    } | reserved
    assert await snapshot(db) == before
    # A's own token was not revoked by the refused mixed list either.
    status, tokens = await a.viewer.get(f"{base}/tokens")
    assert status == 200
    assert [t["status"] for t in tokens["tokens"]] == ["Active"]
    assert b.token not in {t["token"] for t in tokens["tokens"]}
