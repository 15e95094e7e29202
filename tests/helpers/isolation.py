"""The isolation matrix: every account-scoped route in ``TABLE`` with a valid request to it,
two tenants to drive it against each other, and what a system admin sees of an account.

A route added under ``/accounts/{account}`` without a row here fails
``tests/isolation/test_accounts.py::test_table_covers_every_account_route``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

import asyncpg
from aiohttp.test_utils import TestServer

from satellite.api.paths import ACCOUNT, VA
from satellite.api.webhooks import WEBHOOK
from satellite.http.routes import API_PREFIXES
from satellite_agent.export import ExportControl
from tests.conftest import ENHANCED, Api, Credentials, login
from tests.helpers.api import EXPORT_KEY, FEATURE, new_agent, new_product

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
    query: dict[str, str] = field(default_factory=dict)  # a GET's query string


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
    Call("GET", VA, None, False),
    Call("POST", VA + "/update", {"description": "changed"}, True),
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
    Call("GET", ACCOUNT + "/usage", None, False, query={"from": "2026-01-01", "to": "2026-03-31"}),
    Call("GET", VA + "/devices", None, False),
    Call("GET", VA + "/devices/{product}", None, False),
    Call("GET", VA + "/devices/{product}/export-keys", None, False),
    Call("GET", VA + "/export-keys", None, False),
    Call("GET", VA + "/reservations", None, False),
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
    Call("POST", ACCOUNT + "/sync/connect", {}, True, status=409),  # not registered
    Call("POST", ACCOUNT + "/sync/registration-answer", None, True, status=422),  # no file
    Call("POST", ACCOUNT + "/sync/registration-request", {"token": "sat-none"}, True),
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
    # Webhooks: only the account's admins see where its alerts go, so each is a write.
    Call("GET", ACCOUNT + "/webhooks", None, True),
    Call("POST", ACCOUNT + "/webhooks", {"url": "https://hooks.example.com/new"}, True),
    Call("GET", WEBHOOK, None, True),
    Call("POST", WEBHOOK + "/update", {"description": "changed"}, True),
    Call("POST", WEBHOOK + "/delete", {}, True, fill={"webhook": "spare_webhook"}),
    Call("POST", WEBHOOK + "/rotate-secret", {}, True),
    Call("GET", WEBHOOK + "/deliveries", None, True),
    Call("POST", WEBHOOK + "/test", {}, True),
)


def label(call: Call) -> str:
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
    webhook: str
    spare_webhook: str
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
            "webhook": self.webhook,
            "spare_webhook": self.spare_webhook,
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
    query = "?" + urlencode(call.query) if call.query else ""
    return prefix + call.path.format(**path_values) + query, _fill(call.body, values)


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
        if not content_type.startswith(("application/json", "application/problem+json")):
            payload = await response.read()  # a file: an authorization code, a bundle
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


async def ok(api: Api, path: str, body: Any = None, status: int = 200) -> Any:
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
        answer = await ok(
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
    await ok(admin, f"{va}/reservations/confirm", {"confirmationCode": products["settled"][1]}, 200)
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
    await ok(admin, "/api/v1/accounts", {"name": account, "exportControlledAllowed": True})
    await ok(admin, f"{base}/virtual-accounts", {"name": "Main"})
    await ok(admin, f"{base}/virtual-accounts", {"name": "Spare"})
    line = await ok(admin, f"{base}/virtual-accounts/Main/license-pool", POOL_LINE)
    spare = await ok(admin, f"{base}/virtual-accounts/Main/license-pool", POOL_LINE)
    token = await ok(admin, f"{base}/virtual-accounts/Main/tokens", {"description": account})
    clients: dict[str, tuple[str, Api]] = {}
    for role in ("account-admin", "account-viewer"):
        created = await ok(admin, "/api/v1/clients", {"role": role, "accounts": [account]})
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
            await ok(
                admin,
                f"{base}/virtual-accounts/Main/license-pool",
                {"entitlementTag": EXPORT_KEY, "quantity": 1},
            )
            await ExportControl(agent).request(FEATURE)
    slr = await make_reservations(admin, account, state_dir, tmp_path)
    hooks = [
        await ok(admin, f"{base}/webhooks", {"url": f"https://hooks.example.com/{account}/{n}"})
        for n in range(2)
    ]
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
        webhook=hooks[0]["webhook"]["id"],
        spare_webhook=hooks[1]["webhook"]["id"],
    )


@dataclass
class World:
    admin: Api
    a: Tenant
    b: Tenant


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
        "webhooks",
        "webhook_deliveries",
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
