"""The isolation matrix: account A against account B, viewer against admin.

Every account-scoped route is driven from ``TABLE``. A route added under
``/accounts/{account}`` without a row here fails ``test_table_covers_every_account_route``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from satellite.api.paths import ACCOUNT, VA
from satellite.http.routes import API_PREFIXES, ROUTES
from satellite_agent.export import ExportControl
from tests.conftest import ENHANCED, Api, Credentials, login
from tests.test_device import new_agent
from tests.test_export import EXPORT_KEY, FEATURE
from tests.test_reservation import new_product

PROBLEM = "application/problem+json"
ALPHA, BRAVO, GHOST = "acct-alpha", "acct-bravo", "acct-ghost"


@dataclass(frozen=True)
class Call:
    """One account-scoped route and a valid request to it.

    ``path`` is the route's template exactly as ``ROUTES`` has it; ``fill`` says which
    object of the tenant fills a placeholder when it is not the one named like it
    (a delete takes the spare object, so that the others stay for the other rows).
    Strings of ``body`` are templates too.
    """

    method: str
    path: str
    body: Any
    write: bool
    status: int = 200  # on success
    writer: Literal["account-admin", "system-admin"] = "account-admin"
    fill: dict[str, str] = field(default_factory=dict)


POOL_LINE = {"entitlementTag": ENHANCED, "quantity": 5}
MOVING = {"udiPid": "UCM", "udiSerialNumber": "{moving}"}
DOOMED = {"udiPid": "UCM", "udiSerialNumber": "{doomed}"}
SLR_LICENSES = [{"entitlementTag": ENHANCED, "quantity": 1}]

TABLE: tuple[Call, ...] = (
    Call("POST", ACCOUNT + "/update", {"description": "changed"}, True, writer="system-admin"),
    Call("GET", ACCOUNT + "/virtual-accounts", None, False),
    Call(
        "POST",
        ACCOUNT + "/virtual-accounts",
        {"name": "Fresh", "description": "new"},
        True,
    ),
    Call("POST", VA + "/delete", {}, True, fill={"va": "spare_va"}),
    Call("GET", VA + "/tokens", None, False),
    Call(
        "POST",
        VA + "/tokens",
        {"description": "t", "expiresAfterDays": 7, "exportControlled": "Not Allowed"},
        True,
    ),
    Call("POST", VA + "/tokens/revoke", {"tokens": ["{token}"]}, True),
    Call("POST", ACCOUNT + "/licenses", {"limit": -1}, False),
    Call(
        "POST",
        ACCOUNT + "/licenses/transfer",
        {
            "sourceVirtualAccount": "{va}",
            "licenses": [{"license": ENHANCED, "quantity": 1, "targetVirtualAccount": "DEFAULT"}],
        },
        True,
    ),
    Call("POST", ACCOUNT + "/license-subscriptions", {"limit": -1}, False),
    Call("GET", VA + "/license-pool", None, False),
    Call("POST", VA + "/license-pool", POOL_LINE, True),
    Call(
        "POST",
        VA + "/license-pool/{line}/update",
        {"entitlementTag": ENHANCED, "quantity": 7},
        True,
    ),
    Call("POST", VA + "/license-pool/{line}/delete", {}, True, fill={"line": "spare_line"}),
    Call("POST", ACCOUNT + "/alerts", {"limit": 10}, False),
    Call("GET", VA + "/devices", None, False),
    Call("GET", VA + "/devices/{product}", None, False),
    Call("GET", VA + "/devices/{product}/export-keys", None, False),
    Call("GET", VA + "/export-keys", None, False),
    Call(
        "POST",
        VA + "/devices/transfer",
        {
            "productInstances": [
                {"sudi": MOVING, "productTagName": "UCM", "targetVirtualAccount": "DEFAULT"}
            ]
        },
        True,
    ),
    Call(
        "POST",
        VA + "/devices/remove",
        {"productInstacesRemoveRequests": [{"sudi": DOOMED, "productTagName": "UCM"}]},
        True,
    ),
    Call(
        "POST",
        VA + "/reserve-licenses",
        {
            "reservationRequests": [
                {
                    "reservationCode": "{request}",
                    "reservationType": "SPECIFIC",
                    "licenses": SLR_LICENSES,
                }
            ]
        },
        True,
    ),
    Call(
        "POST",
        VA + "/reservations/{product}/update",
        {"licenses": SLR_LICENSES},
        True,
        fill={"product": "settled"},
    ),
    Call(
        "GET",
        VA + "/reservations/{product}/authorization-code",
        None,
        False,
        fill={"product": "settled"},
    ),
    Call("POST", VA + "/reservations/confirm", {"confirmationCode": "{confirmation}"}, True),
    Call("POST", VA + "/reservations/return", {"returnCode": "{return_code}"}, True),
    Call(
        "POST",
        VA + "/reservations/{product}/force-remove",
        {"reason": "failed board"},
        True,
        fill={"product": "forced"},
    ),
    # Sync, on this satellite whose accounts are not registered with an upstream: past the
    # account's checks, each request meets the next rule (which tests/sync/ covers).
    Call("GET", ACCOUNT + "/sync", None, False),
    Call(
        "POST",
        ACCOUNT + "/sync/register",
        {"upstream": "http://127.0.0.1:9", "token": "sat-none"},
        True,
        status=502,  # nothing listens there
    ),
    Call("POST", ACCOUNT + "/sync/now", {}, True, status=409),  # not registered
    Call("POST", ACCOUNT + "/sync/unregister", {}, True, status=409),
    Call("GET", ACCOUNT + "/sync/request", None, True, status=409),
    Call("POST", ACCOUNT + "/sync/answer", None, True, status=409),
    # The upstream's side, on a satellite: lists are empty, changes are refused (409).
    Call("GET", ACCOUNT + "/satellite-tokens", None, False),
    Call("POST", ACCOUNT + "/satellite-tokens", {"description": "s"}, True, status=409),
    Call(
        "POST",
        ACCOUNT + "/satellite-tokens/{token}/revoke",
        {},
        True,
        status=409,
        fill={"token": "line"},
    ),
    Call("GET", ACCOUNT + "/satellites", None, False),
    Call("POST", ACCOUNT + "/satellites/{satellite}/revoke", {}, True, status=409),
    Call(
        "GET",
        ACCOUNT + "/satellites/{satellite}/products",
        None,
        False,
        status=404,  # (field satelliteId: there is none)
    ),
)


def _label(call: Call) -> str:
    return f"{call.method} {call.path}"


@dataclass
class Tenant:
    account: str
    admin: Api
    viewer: Api
    admin_id: str
    viewer_id: str
    line: int
    spare_line: int
    token: str
    product: str  # id of a registered product of the tenant's Main
    moving: str  # serial numbers of two more: one to transfer, one to remove
    doomed: str
    # Specific license reservation: an open request code; reserved products (one settled,
    # one awaiting its confirmation code, one to return by its return code, one to force
    # out).
    request: str
    settled: str
    confirmation: str
    return_code: str
    forced: str
    va: str = "Main"
    spare_va: str = "Spare"

    def values(self, account: str | None = None) -> dict[str, str]:
        return {
            "account": account or self.account,
            "va": self.va,
            "spare_va": self.spare_va,
            "line": str(self.line),
            "spare_line": str(self.spare_line),
            "token": self.token,
            "product": self.product,
            "moving": self.moving,
            "doomed": self.doomed,
            "request": self.request,
            "settled": self.settled,
            "confirmation": self.confirmation,
            "return_code": self.return_code,
            "forced": self.forced,
            "satellite": "5a7e0000-0000-4000-8000-000000000000",
        }


def _fill(template: Any, values: dict[str, str]) -> Any:
    if isinstance(template, str):
        return template.format(**values)
    if isinstance(template, list):
        return [_fill(item, values) for item in template]
    if isinstance(template, dict):
        return {key: _fill(item, values) for key, item in template.items()}
    return template


def request_for(
    call: Call, tenant: Tenant, *, account: str | None = None, prefix: str = API_PREFIXES[0]
) -> tuple[str, Any]:
    """The path and body of ``call`` aimed at ``tenant``'s objects (in ``account``)."""
    values = tenant.values(account)
    path_values = {**values, **{name: values[source] for name, source in call.fill.items()}}
    return prefix + call.path.format(**path_values), _fill(call.body, values)


async def perform(
    api: Api, call: Call, tenant: Tenant, *, account: str | None = None, prefix: str = "/api/v1"
) -> tuple[int, Any, str]:
    path, body = request_for(call, tenant, account=account, prefix=prefix)
    async with api.client.request(
        call.method,
        path,
        json=body,
        headers={"Authorization": f"Bearer {api.token}"},
    ) as response:
        content_type = response.headers.get("Content-Type", "")
        if content_type.startswith("application/xml"):  # an authorization code file
            payload = await response.text()
        else:
            payload = await response.json(content_type=None)
        return response.status, payload, content_type


def normalized(problem: Any, account: str) -> Any:
    """A problem document with the account's name and the request id taken out."""
    assert isinstance(problem, dict)
    return {
        key: value.replace(account, "<account>") if isinstance(value, str) else value
        for key, value in problem.items()
        if key != "requestId"
    }


async def _ok(api: Api, path: str, body: Any = None, status: int = 200) -> Any:
    got, answer = await api.post(path, body)
    assert got == status, (path, answer)
    return answer


async def make_reservations(
    admin: Api, account: str, state_dir: Path, tmp_path: Path
) -> dict[str, str]:
    """Reserved products of the tenant's Main, by the real agent library."""
    va = f"/api/v1/accounts/{account}/virtual-accounts/Main"
    made: dict[str, str] = {}
    products = {}
    for role in ("settled", "pending", "returning", "forced"):
        product = new_product(tmp_path, state_dir, f"{account.upper()}-{role}")
        product.enable()
        answer = await _ok(
            admin,
            f"{va}/reserve-licenses",
            {
                "reservationRequests": [
                    {"reservationCode": product.request(), "licenses": SLR_LICENSES}
                ]
            },
            200,
        )
        [issued] = answer["authorizationCodes"]
        made[role] = issued["productInstanceId"]
        products[role] = (product, product.install(issued["authorizationCode"]))
    await _ok(
        admin, f"{va}/reservations/confirm", {"confirmationCode": products["settled"][1]}, 200
    )
    made["confirmation"] = products["pending"][1]
    made["return_code"] = products["returning"][0].give_back()
    asking = new_product(tmp_path, state_dir, f"{account.upper()}-asking")
    asking.enable()
    made["request"] = asking.request()
    return made


async def make_tenant(
    admin: Api, account: str, server: TestServer, tmp_path: Path, state_dir: Path
) -> Tenant:
    base = f"/api/v1/accounts/{account}"
    await _ok(admin, "/api/v1/accounts", {"name": account, "exportControlledAllowed": True})
    await _ok(admin, f"{base}/virtual-accounts", {"name": "Main"})
    await _ok(admin, f"{base}/virtual-accounts", {"name": "Spare"})
    line = await _ok(admin, f"{base}/virtual-accounts/Main/license-pool", POOL_LINE)
    spare = await _ok(admin, f"{base}/virtual-accounts/Main/license-pool", POOL_LINE)
    token = await _ok(admin, f"{base}/virtual-accounts/Main/tokens", {"description": account})
    clients: dict[str, tuple[str, Api]] = {}
    for role in ("account-admin", "account-viewer"):
        created = await _ok(admin, "/api/v1/clients", {"role": role, "accounts": [account]})
        creds = Credentials(created["clientId"], created["clientSecret"])
        clients[role] = (creds.client_id, await login(admin, creds))
    # Three products registered by the real agent (UDIs are unique across accounts).
    serials = [f"{account.upper()}-{n}" for n in range(3)]
    products = []
    for serial in serials:
        agent = new_agent(tmp_path, server, serial)
        state = await agent.register(token["tokenInfo"]["token"])
        await agent.report_usage({ENHANCED: 1})
        assert state.product_instance_id is not None
        products.append(state.product_instance_id)
        if not products[1:]:  # the first one holds an export key
            await _ok(
                admin,
                f"{base}/virtual-accounts/Main/license-pool",
                {"entitlementTag": EXPORT_KEY, "quantity": 1},
            )
            await ExportControl(agent).request(FEATURE)
    slr = await make_reservations(admin, account, state_dir, tmp_path)
    return Tenant(
        account=account,
        admin=clients["account-admin"][1],
        viewer=clients["account-viewer"][1],
        admin_id=clients["account-admin"][0],
        viewer_id=clients["account-viewer"][0],
        line=line["license"]["id"],
        spare_line=spare["license"]["id"],
        token=token["tokenInfo"]["token"],
        product=products[0],
        moving=serials[1],
        doomed=serials[2],
        request=slr["request"],
        settled=slr["settled"],
        confirmation=slr["confirmation"],
        return_code=slr["return_code"],
        forced=slr["forced"],
    )


@dataclass
class World:
    admin: Api
    a: Tenant
    b: Tenant


@pytest.fixture
async def world(admin: Api, tmp_path: Path, state_dir: Path) -> World:
    server = admin.client.server
    assert isinstance(server, TestServer)
    return World(
        admin,
        await make_tenant(admin, ALPHA, server, tmp_path, state_dir),
        await make_tenant(admin, BRAVO, server, tmp_path, state_dir),
    )


_SNAPSHOT = {
    table: f"SELECT x::text AS row FROM {table} x ORDER BY x::text"  # noqa: S608 - constants
    for table in (
        "accounts",
        "virtual_accounts",
        "license_lines",
        "registration_tokens",
        "principals",
        "principal_accounts",
        "alerts",
        "events",
        "product_instances",
        "product_usage",
        "reservations",
        "reservation_licenses",
        "export_keys",
    )
}


async def snapshot(db: asyncpg.Connection) -> dict[str, list[str]]:
    return {table: [r["row"] for r in await db.fetch(query)] for table, query in _SNAPSHOT.items()}


async def account_view(admin: Api, account: str) -> dict[str, Any]:
    """What a system admin sees of one account, through the API."""
    base = f"/api/v1/accounts/{account}"
    view: dict[str, Any] = {
        "accounts": [a for a in (await admin.get("/api/v1/accounts"))[1]["accounts"]],
        "vas": (await admin.get(f"{base}/virtual-accounts"))[1],
        "tokens": (await admin.get(f"{base}/virtual-accounts/Main/tokens"))[1],
        "pool": (await admin.get(f"{base}/virtual-accounts/Main/license-pool"))[1],
        "licenses": (await admin.post(f"{base}/licenses", {}))[1],
        "alerts": (await admin.post(f"{base}/alerts", {}))[1],
        "devices": (await admin.get(f"{base}/virtual-accounts/Main/devices?status=all"))[1],
        "moved": (await admin.get(f"{base}/virtual-accounts/DEFAULT/devices?status=all"))[1],
    }
    view["accounts"] = [a for a in view["accounts"] if a["name"] == account]
    return view


# --- the table is complete -----------------------------------------------------------------


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
            failures.append((_label(call), status, body))
    assert not failures
    # ...and an account that does not exist is missing for the system admin too.
    for call in TABLE:
        status, body, _ = await perform(world.admin, call, world.b, account=GHOST)
        assert status == 404, (_label(call), body)
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


async def test_account_admin_writes_in_own_account(world: World) -> None:
    a = world.a
    b_before = await account_view(world.admin, BRAVO)
    failures = []
    for call in TABLE:
        status, body, _ = await perform(a.admin, call, a)
        expected = 403 if call.writer == "system-admin" else call.status
        if status != expected:
            failures.append(f"{_label(call)}: {status} {body}")
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
    await _ok(
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
    await _ok(world.admin, *system_only[0])
    await _ok(world.admin, *system_only[1])
    await _ok(world.admin, *system_only[3])


# --- what a caller sees --------------------------------------------------------------------


async def test_account_lists_show_own_accounts(world: World) -> None:
    both = await _ok(
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
    await _ok(a.admin, f"/api/v1/accounts/{ALPHA}/virtual-accounts", {"name": "OnlyA"})
    await _ok(b.admin, f"/api/v1/accounts/{BRAVO}/virtual-accounts", {"name": "OnlyB"})
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
        await _ok(
            world.admin,
            "/api/v1/users",
            {
                "username": name,
                "password": "long enough pass",
                "role": "account-viewer",
                "accounts": accounts,
            },
        )
    shared = await _ok(
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
