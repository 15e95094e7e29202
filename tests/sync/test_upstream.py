"""What the upstream knows of its satellites: their products (export keys and
reservations included) and usage, what left them, its own products beside theirs;
and nothing of them for another account."""

from __future__ import annotations

from pathlib import Path

import asyncpg
from aiohttp.test_utils import TestServer

from satellite.api.context import Services
from satellite_agent.export import ExportControl
from tests.conftest import (
    ENHANCED,
    Api,
    new_client,
)
from tests.helpers.api import new_agent, new_product
from tests.helpers.sync import (
    OPERATOR,
    SITE,
    UP_ACCOUNT,
    Upstream,
    in_use,
    mirrored_products,
    ok,
    register_online,
    satellite_products,
    setup_site,
    setup_upstream,
    site_token,
)

EXPORT_KEY = "regid.2019-03.com.cisco.UCM_ExportKey_12.0_d1e6b8a3-4f2c-4b7d-9e31-6a5c0f7b2d48"


async def test_the_upstream_serves_products_directly_and_counts_its_satellites_too(
    upstream: Upstream, admin: Api, services: Services, server: TestServer, tmp_path: Path
) -> None:
    """ "Direct" transport: a product registers with the upstream itself; the upstream's pool
    then counts its own products and what its satellites report."""
    await setup_upstream(upstream, enhanced=10)
    await setup_site(admin)
    await register_online(upstream, services)
    at_site = new_agent(tmp_path / "site", server)
    await at_site.register(await site_token(admin))
    await at_site.report_usage({ENHANCED: 3})
    await services.sync.sync_now(OPERATOR, "Site")

    body = await ok(upstream.admin.post(UP_ACCOUNT + "/virtual-accounts/Voice/tokens", {}), 200)
    direct = new_agent(tmp_path / "direct", upstream.server, "FCH0042")
    await direct.register(body["tokenInfo"]["token"])
    state = await direct.report_usage({ENHANCED: 8})
    assert state.authorization is not None
    assert state.authorization["state"] == "OUT_OF_COMPLIANCE"  # 3 + 8 > 10
    licenses = await ok(upstream.admin.post(UP_ACCOUNT + "/licenses", {}))
    [line] = licenses["licenses"]
    assert (line["inUse"], line["status"]) == (11, "Out Of Compliance")


async def test_export_keys_and_reservations_reach_the_upstream(
    upstream: Upstream,
    admin: Api,
    services: Services,
    server: TestServer,
    state_dir: Path,
    tmp_path: Path,
    db: asyncpg.Connection,
) -> None:
    await setup_upstream(upstream, enhanced=10, export=True)
    keys_line = await ok(
        upstream.admin.post(
            UP_ACCOUNT + "/virtual-accounts/Voice/license-pool",
            {"entitlementTag": EXPORT_KEY, "quantity": 2},
        ),
        200,
    )
    await setup_site(admin)
    satellite_id = await register_online(upstream, services)
    await services.sync.sync_now(OPERATOR, "Site")  # the flag and the keys' pool arrive
    assert await db.fetchval("SELECT export_controlled_allowed FROM accounts WHERE name = 'Site'")

    agent = new_agent(tmp_path, server)
    await agent.register(await site_token(admin))  # an export-allowed token by default
    await agent.report_usage({ENHANCED: 2})
    await ExportControl(agent).request("UCM_Encryption")
    reserved = new_product(tmp_path, state_dir, "SLR-1")
    reserved.enable()
    await ok(
        admin.post(
            SITE + "/virtual-accounts/Voice/reserve-licenses",
            {
                "reservationRequests": [
                    {
                        "reservationCode": reserved.request(),
                        "licenses": [{"entitlementTag": ENHANCED, "quantity": 3}],
                    }
                ]
            },
        )
    )
    await services.sync.sync_now(OPERATOR, "Site")

    mirror = await ok(
        upstream.admin.get(f"{UP_ACCOUNT}/satellites/{satellite_id}/products?limit=100")
    )
    by_serial = {p["sudi"]["udiSerialNumber"]: p for p in mirror["products"]}
    assert by_serial["FCH0001"]["exportKeys"] == ["UCM_Encryption"]
    assert by_serial["SLR-1"]["reservation"]["reserved"] == [
        {
            "tag": ENHANCED,
            "quantity": 3,
            "licenseType": "PERPETUAL",
            "endDate": None,
            "stage": "pending",  # until the product's confirmation code is entered
        }
    ]
    usage = {
        (u["entitlementTag"], u["inUse"], u["reserved"], u["exportKeys"]) for u in mirror["usage"]
    }
    assert usage == {(ENHANCED, 2, 3, 0), (EXPORT_KEY, 0, 0, 1)}
    # The upstream counts all the satellite takes of its pool.
    up = {k: v for k, v in (await in_use(upstream.admin, UP_ACCOUNT)).items()}
    assert up == {("Voice", ENHANCED): 5, ("Voice", EXPORT_KEY): 1}

    # The key given back: the next sync says so.
    await ExportControl(agent).give_back("UCM_Encryption")
    await services.sync.sync_now(OPERATOR, "Site")
    mirror = await ok(
        upstream.admin.get(f"{UP_ACCOUNT}/satellites/{satellite_id}/products?limit=100")
    )
    assert {p["sudi"]["udiSerialNumber"]: p["exportKeys"] for p in mirror["products"]} == {
        "FCH0001": [],
        "SLR-1": [],
    }
    assert await in_use(upstream.admin, UP_ACCOUNT) == {("Voice", ENHANCED): 5}

    # The upstream withdraws export-controlled functionality: the flag follows, and the
    # account is told what it still holds.
    line_id = keys_line["license"]["id"]
    await ok(
        upstream.admin.post(
            f"{UP_ACCOUNT}/virtual-accounts/Voice/license-pool/{line_id}/delete", {}
        )
    )
    await ok(upstream.admin.post(UP_ACCOUNT + "/update", {"exportControlledAllowed": False}))
    await services.sync.sync_now(OPERATOR, "Site")
    assert not await db.fetchval(
        "SELECT export_controlled_allowed FROM accounts WHERE name = 'Site'"
    )
    alerts = await ok(admin.post(SITE + "/alerts", {}))
    assert "ExportControlWithdrawn" in [a["messageType"] for a in alerts["alerts"]]


async def test_products_that_leave_and_a_deleted_virtual_account_leave_the_upstream(
    upstream: Upstream,
    admin: Api,
    services: Services,
    server: TestServer,
    tmp_path: Path,
    db: asyncpg.Connection,
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    await ok(admin.post(SITE + "/virtual-accounts", {"name": "Lab"}), 200)
    satellite_id = await register_online(upstream, services)
    moving = new_agent(tmp_path, server, "FCH0001")
    await moving.register(await site_token(admin))
    body = await ok(admin.post(SITE + "/virtual-accounts/Lab/tokens", {}), 200)
    lab_token = body["tokenInfo"]
    in_lab = new_agent(tmp_path, server, "FCH0002")
    await in_lab.register(lab_token["token"])
    await services.sync.sync_now(OPERATOR, "Site")
    assert len(await mirrored_products(upstream, satellite_id)) == 2
    assert "Lab" in {
        v["name"]
        for v in (await ok(upstream.admin.get(UP_ACCOUNT + "/virtual-accounts")))["virtualAccounts"]
    }

    # One product moves to another (unlinked) account; the other leaves Lab, and Lab goes.
    await ok(admin.post("/api/v1/accounts", {"name": "Other"}), 200)
    await ok(admin.post("/api/v1/accounts/Other/virtual-accounts", {"name": "Main"}), 200)
    other = await ok(admin.post("/api/v1/accounts/Other/virtual-accounts/Main/tokens", {}), 200)
    await moving.register(other["tokenInfo"]["token"])
    await in_lab.deregister()
    await ok(
        admin.post(SITE + "/virtual-accounts/Lab/tokens/revoke", {"tokens": [lab_token["token"]]})
    )
    await ok(admin.post(SITE + "/virtual-accounts/Lab/delete", {}))

    result = await services.sync.sync_now(OPERATOR, "Site")
    assert result.counts["virtualAccountsCreated"] == 0  # Lab does not come back
    assert (
        await mirrored_products(upstream, satellite_id)
        == await satellite_products(db, "Site")
        == set()
    )
    names = {
        v["name"]
        for v in (await ok(upstream.admin.get(UP_ACCOUNT + "/virtual-accounts")))["virtualAccounts"]
    }
    assert "Lab" not in names
    assert await db.fetchval("SELECT count(*) FROM sync_departures") == 0  # acknowledged


async def test_another_account_at_the_upstream_sees_nothing_of_its_satellites(
    upstream: Upstream, admin: Api, services: Services
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    satellite_id = await register_online(upstream, services)
    await services.sync.sync_now(OPERATOR, "Site")
    await ok(upstream.admin.post("/api/v1/accounts", {"name": "Beta"}), 200)
    beta = await new_client(upstream.admin, "account-admin", ["Beta"])
    for path in (
        f"{UP_ACCOUNT}/satellites",
        f"{UP_ACCOUNT}/satellites/{satellite_id}/products",
        f"{UP_ACCOUNT}/satellite-tokens",
        f"/api/v1/accounts/Beta/satellites/{satellite_id}/products",
    ):
        status, problem = await beta.get(path)
        assert status == 404, (path, problem)
    status, problem = await beta.post(f"{UP_ACCOUNT}/satellite-tokens", {})
    assert status == 404, problem
    assert (await ok(beta.get("/api/v1/accounts/Beta/satellites")))["satellites"] == []
    # An operator of Beta cannot carry in Acme's satellite's request either.
    request = Path(upstream.services.upstream.spool.path) / "acme.request"
    await services.sync.write_request(OPERATOR, "Site", request)
    async with beta.client.post(
        "/api/v1/sync/answer", data=request.read_bytes(), headers=beta._headers()
    ) as response:
        assert response.status == 404, await response.text()
    request.unlink()
