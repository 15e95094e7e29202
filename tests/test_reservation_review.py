"""SLR across accounts and products: conflicts naming no other account's virtual account,
concurrent reservations and registrations, updates keeping their lines, shortage alerts,
forged and replaced product codes."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from satellite.api.context import Services
from satellite_agent.client import Agent, AgentError, RequestRefused
from tests.conftest import ENHANCED, Api, new_client
from tests.helpers.api import (
    ACCOUNT,
    VOICE,
    licenses,
    new_agent,
    new_product,
    reserve,
    reserved_code,
    setup_pool,
)
from tests.helpers.reservation import CONFIRM, RETURN

# --- across accounts, concurrency, product codes -------------------------------------------


SECRET_VA = "/api/v1/accounts/Other/virtual-accounts/SecretVA"


async def setup_other_account(admin: Api) -> None:
    """A second account, its virtual account named like a secret, with a pool."""
    assert (await admin.post("/api/v1/accounts", {"name": "Other"}))[0] == 200
    assert (await admin.post("/api/v1/accounts/Other/virtual-accounts", {"name": "SecretVA"}))[
        0
    ] == 200
    status, body = await admin.post(
        SECRET_VA + "/license-pool", {"entitlementTag": ENHANCED, "quantity": 5}
    )
    assert status == 200, body


async def reserve_in(admin: Api, va: str, code: str, quantity: int = 1) -> tuple[int, Any]:
    return await admin.post(
        va + "/reserve-licenses",
        {
            "reservationRequests": [
                {
                    "reservationCode": code,
                    "licenses": [{"entitlementTag": ENHANCED, "quantity": quantity}],
                }
            ]
        },
    )


async def test_conflicts_name_no_virtual_account_of_another_account(
    admin: Api, state_dir: Path, tmp_path: Path
) -> None:
    await setup_pool(admin, {"entitlementTag": ENHANCED, "quantity": 5})
    assert (await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Lab"}))[0] == 200
    await setup_other_account(admin)
    product = new_product(tmp_path, state_dir, trust=False)
    product.enable()
    request = product.request()
    status, body = await reserve_in(admin, SECRET_VA, request)
    assert status == 200, body
    account_admin = await new_client(admin, "account-admin", ["Acme"])
    for api in (admin, account_admin):
        # The same request code, and (after a new request) the same UDI, under Acme.
        status, problem = await reserve_in(api, VOICE, request)
        assert status == 409, problem
        assert problem["field"] == "reservationRequests[0].reservationCode"
        assert "Secret" not in problem["detail"]
        assert "Other" not in problem["detail"]
        assert "virtual account" not in problem["detail"]
    product.cancel()
    status, problem = await reserve_in(account_admin, VOICE, product.request())
    assert status == 409, problem
    assert "registered already" in problem["detail"]
    assert "Secret" not in problem["detail"]
    assert "virtual account" not in problem["detail"]
    # Within the caller's own account the virtual account is named.
    mine = new_product(tmp_path, state_dir, "SLR0002", trust=False)
    mine.enable()
    own_request = mine.request()
    status, body = await reserve_in(account_admin, VOICE, own_request)
    assert status == 200, body
    lab = ACCOUNT + "/virtual-accounts/Lab"
    status, problem = await reserve_in(account_admin, lab, own_request)
    assert status == 409, problem
    assert "used already (in virtual account 'Voice')" in problem["detail"]
    mine.cancel()
    status, problem = await reserve_in(account_admin, lab, mine.request())
    assert status == 409, problem
    assert "registered already (in virtual account 'Voice')" in problem["detail"]


async def test_same_product_reserved_or_registered_concurrently_is_a_conflict(
    admin: Api, state_dir: Path, tmp_path: Path
) -> None:
    await setup_pool(admin, {"entitlementTag": ENHANCED, "quantity": 10})
    await setup_other_account(admin)
    server = admin.client.server
    assert isinstance(server, TestServer)
    for n in range(3):
        # The same request code in two virtual accounts (two accounts) at once.
        product = new_product(tmp_path, state_dir, f"TWICE{n}", trust=False)
        product.enable()
        request = product.request()
        results = await asyncio.gather(
            reserve_in(admin, VOICE, request), reserve_in(admin, SECRET_VA, request)
        )
        assert sorted(status for status, _ in results) == [200, 409], results
        # One UDI, two request codes (two state directories of one product) at once.
        twins = [new_product(tmp_path / side, state_dir, f"TWIN{n}", trust=False) for side in "ab"]
        for twin in twins:
            twin.enable()
        results = await asyncio.gather(
            reserve_in(admin, VOICE, twins[0].request()),
            reserve_in(admin, SECRET_VA, twins[1].request()),
        )
        assert sorted(status for status, _ in results) == [200, 409], results
    # A token registration racing a reservation of the same UDI: one of them wins.
    status, body = await admin.post(VOICE + "/tokens", {})
    assert status == 200, body
    token = body["tokenInfo"]["token"]
    outcomes: list[list[int]] = []
    for n in range(3):
        product = new_product(tmp_path, state_dir, f"RACER{n}", trust=False)
        product.enable()
        agent = new_agent(tmp_path, server, f"RACER{n}")

        async def register(agent: Agent = agent) -> int:
            try:
                await agent.register(token)
            except RequestRefused as exc:
                return exc.status
            return 200

        (reserved, _), registered = await asyncio.gather(
            reserve_in(admin, SECRET_VA, product.request()), register()
        )
        outcomes.append(sorted([reserved, registered]))
    assert outcomes == [[200, 409]] * 3, outcomes


async def test_update_keeps_its_lines_so_the_rest_stays_reservable(
    admin: Api, state_dir: Path, tmp_path: Path
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    await setup_pool(
        admin,
        {"entitlementTag": ENHANCED, "quantity": 5},
        {
            "entitlementTag": ENHANCED,
            "quantity": 5,
            "licenseType": "TERM",
            "startDate": (today - dt.timedelta(days=1)).isoformat(),
            "endDate": (today + dt.timedelta(days=300)).isoformat(),
        },
    )
    product = new_product(tmp_path, state_dir)
    product.enable()
    first, product_id = await reserved_code(admin, product.request(), enhanced=5)
    assert "<licenseType>PERPETUAL</licenseType>" in first  # longest term first
    status, body = await admin.post(CONFIRM, {"confirmationCode": product.install(first)})
    assert status == 200, body
    status, body = await admin.post(
        f"{VOICE}/reservations/{product_id}/update",
        {
            "licenses": [
                {"entitlementTag": ENHANCED, "quantity": 5, "precedence": "SHORTEST_TERM_FIRST"}
            ]
        },
    )
    assert status == 200, body
    [issued] = body["authorizationCodes"]
    assert issued["reservation"]["status"] == "In Transition"
    # Its licenses stay on the PERPETUAL line: the TERM line is all free.
    assert "<licenseType>TERM</licenseType>" not in issued["authorizationCode"]
    line = (await licenses(admin))[ENHANCED]
    assert (line["reserved"], line["available"]) == (5, 5)
    other = new_product(tmp_path, state_dir, "SLR0002")
    other.enable()
    status, body = await reserve(admin, other.request(), enhanced=5)
    assert status == 200, body
    line = (await licenses(admin))[ENHANCED]
    assert (line["reserved"], line["available"]) == (10, 0)


async def test_device_remove_with_return_code_clears_a_shortage_alert(
    admin: Api, state_dir: Path, tmp_path: Path, server: TestServer, services: Services
) -> None:
    await setup_pool(admin, {"entitlementTag": ENHANCED, "quantity": 3})
    product = new_product(tmp_path, state_dir)
    product.enable()
    code, _ = await reserved_code(admin, product.request(), enhanced=3)
    product.install(code)
    # A registered product uses one more than is left: out of compliance, an alert. (The
    # pool itself cannot shrink under the reservation.)
    status, body = await admin.post(VOICE + "/tokens", {})
    assert status == 200, body
    online = new_agent(tmp_path, server, "ONL0001")
    await online.register(body["tokenInfo"]["token"])
    await online.report_usage({ENHANCED: 1})
    assert await services.maintenance.pool_alerts(dt.datetime.now(dt.UTC)) is not None

    async def open_alerts() -> list[str]:
        status, body = await admin.post(ACCOUNT + "/alerts", {})
        assert status == 200, body
        return [a["messageType"] for a in body["alerts"]]

    assert await open_alerts() == ["Insufficient Licenses"]
    status, body = await admin.post(
        VOICE + "/devices/remove",
        {
            "productInstacesRemoveRequests": [
                {
                    "sudi": {"udiPid": "UCM", "udiSerialNumber": "SLR0001"},
                    "returnCode": product.give_back(),
                }
            ]
        },
    )
    assert status == 200, body
    assert await open_alerts() == []


@pytest.mark.unit
async def test_enable_only_while_unregistered(state_dir: Path, tmp_path: Path) -> None:
    product = new_product(tmp_path, state_dir, trust=False)
    for registration, reason in (
        ("registered", "deregister it"),
        ("registration_expired", "expired"),
        ("removed", "removed on the server"),
    ):
        state = product.state
        state.registration = registration  # type: ignore[assignment] # each state in turn
        product.dir.save(state)
        before = product.dir.state_file.read_bytes()
        with pytest.raises(AgentError, match=reason):
            product.enable()
        assert product.dir.state_file.read_bytes() == before
        assert not product.state.reservation.enabled
    for registration in ("deregistered", "unregistered"):
        state = product.state
        state.registration = registration  # type: ignore[assignment] # each state in turn
        state.reservation.enabled = False
        product.dir.save(state)
        assert product.enable().reservation.enabled


async def test_forged_and_replaced_product_codes_are_refused(
    admin: Api, state_dir: Path, tmp_path: Path, db: asyncpg.Connection
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from satellite_protocol.crypto.slr import make_product_code

    await setup_pool(admin, {"entitlementTag": ENHANCED, "quantity": 5})
    product = new_product(tmp_path, state_dir)
    product.enable()
    first, product_id = await reserved_code(admin, product.request(), enhanced=2)
    product.install(first)
    piid, first_timestamp = product.state.reservation.piid, product.state.reservation.timestamp
    assert piid == product_id
    assert first_timestamp is not None
    # Installed: no cancel, no return code for a code "never installed".
    for action in (product.cancel, lambda: product.return_authorization(first)):
        on_disk = product.dir.state_file.read_bytes()
        with pytest.raises(AgentError, match="a reservation is installed"):
            action()
        assert product.dir.state_file.read_bytes() == on_disk

    # Right piid and timestamp, signed with another key: refused, nothing changes.
    stranger = ec.generate_private_key(ec.SECP256R1())
    rows = await db.fetch("SELECT * FROM reservations")
    for path, body in (
        (
            CONFIRM,
            {
                "confirmationCode": make_product_code(
                    "confirmation", stranger, piid, first_timestamp
                )
            },
        ),
        (RETURN, {"returnCode": make_product_code("return", stranger, piid, first_timestamp)}),
        (
            VOICE + "/devices/remove",
            {
                "productInstacesRemoveRequests": [
                    {
                        "sudi": {"udiPid": "UCM", "udiSerialNumber": "SLR0001"},
                        "returnCode": make_product_code("return", stranger, piid, first_timestamp),
                    }
                ]
            },
        ),
    ):
        status, problem = await admin.post(path, body)
        assert status == 422, (path, problem)
        assert "not made by this product" in problem["detail"], problem
    assert await db.fetch("SELECT * FROM reservations") == rows
    assert (await licenses(admin))[ENHANCED]["reserved"] == 2

    # Confirmed, updated, the new code installed and confirmed: the first code is replaced.
    status, body = await admin.post(
        CONFIRM, {"confirmationCode": product.state.reservation.confirmation_code}
    )
    assert status == 200, body
    status, body = await admin.post(
        f"{VOICE}/reservations/{product_id}/update",
        {"licenses": [{"entitlementTag": ENHANCED, "quantity": 3}]},
    )
    assert status == 200, body
    status, body = await admin.post(
        CONFIRM,
        {"confirmationCode": product.install(body["authorizationCodes"][0]["authorizationCode"])},
    )
    assert status == 200, body
    stale = make_product_code("return", product._key(), piid, first_timestamp)
    rows = await db.fetch("SELECT * FROM reservations")
    status, problem = await admin.post(RETURN, {"returnCode": stale})
    assert status == 409, problem
    assert "replaced" in problem["detail"]
    assert await db.fetch("SELECT * FROM reservations") == rows
    assert (await licenses(admin))[ENHANCED]["reserved"] == 3
