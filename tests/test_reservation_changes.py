"""SLR after the first reservation: updates in transition, removal paths, the agent's state
machine, term end dates."""

from __future__ import annotations

import datetime as dt
import functools
import json
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from satellite.domain.access import host_operator
from satellite.services.licenses import LicenseService
from satellite.wiring import Runtime, open_services
from satellite_agent.client import AgentError, RequestRefused
from satellite_protocol.crypto.slr import format_date
from tests.conftest import CUWL, ENHANCED, Api
from tests.helpers.api import (
    ACCOUNT,
    VOICE,
    licenses,
    new_agent,
    new_product,
    reserved_code,
    setup_pool,
)
from tests.helpers.reservation import CONFIRM, RETURN, device, id_

# --- update, removal, the agent's states, term end dates ------------------------------------


async def test_update_in_transition_then_settled(
    admin: Api, state_dir: Path, tmp_path: Path
) -> None:
    await setup_pool(
        admin,
        {"entitlementTag": ENHANCED, "quantity": 5},
        {"entitlementTag": CUWL, "quantity": 4},
    )
    product = new_product(tmp_path, state_dir)
    product.enable()
    first, product_id = await reserved_code(admin, product.request(), enhanced=3)
    status, body = await admin.post(CONFIRM, {"confirmationCode": product.install(first)})
    assert status == 200, body
    update = f"{VOICE}/reservations/{product_id}/update"

    status, problem = await admin.post(
        update, {"licenses": [{"entitlementTag": CUWL, "quantity": 5}]}
    )
    assert status == 409, problem  # more than free
    status, body = await admin.post(
        update,
        {
            "licenses": [
                {"entitlementTag": ENHANCED, "quantity": 1},
                {"entitlementTag": CUWL, "quantity": 2},
            ]
        },
    )
    assert status == 200, body
    [issued] = body["authorizationCodes"]
    second = issued["authorizationCode"]
    assert issued["reservation"]["status"] == "In Transition"
    held = {u["entitlementTag"]: u["quantity"] for u in issued["reservation"]["reservedLicenses"]}
    assert held == {ENHANCED: 3, CUWL: 2}  # the larger of old and new, until confirmed
    view = await licenses(admin)
    assert (view[ENHANCED]["reserved"], view[CUWL]["reserved"]) == (3, 2)
    status, problem = await admin.post(
        update, {"licenses": [{"entitlementTag": ENHANCED, "quantity": 2}]}
    )
    assert status == 409, problem  # one change at a time
    shown = await device(admin, product_id)
    assert shown["reservation"]["status"] == "In Transition"
    assert len(shown["reservation"]["pendingLicenses"]) == 2

    old_confirmation = product.state.reservation.confirmation_code
    new_confirmation = product.install(second)
    assert new_confirmation != old_confirmation
    assert product.authorized() == {ENHANCED: 1, CUWL: 2}
    with pytest.raises(AgentError, match="not newer"):
        product.install(first)
    assert old_confirmation is not None
    status, problem = await admin.post(CONFIRM, {"confirmationCode": old_confirmation})
    assert status == 409, problem
    status, body = await admin.post(CONFIRM, {"confirmationCode": new_confirmation})
    assert status == 200, body
    assert body["device"]["reservation"]["status"] == "Reserved"
    view = await licenses(admin)
    assert (view[ENHANCED]["reserved"], view[CUWL]["reserved"]) == (1, 2)
    assert (view[ENHANCED]["available"], view[CUWL]["available"]) == (4, 2)
    # Settled: the return code of the code now installed releases everything.
    status, body = await admin.post(RETURN, {"returnCode": product.give_back()})
    assert status == 200, body
    view = await licenses(admin)
    assert (view[ENHANCED]["reserved"], view[CUWL]["reserved"]) == (0, 0)


async def test_removal_paths(
    admin: Api, state_dir: Path, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_pool(admin, {"entitlementTag": ENHANCED, "quantity": 10})
    products = {}
    for serial in ("GONE1", "GONE2", "DEAD1"):
        product = new_product(tmp_path, state_dir, serial)
        product.enable()
        code, product_id = await reserved_code(admin, product.request(), enhanced=2)
        product.install(code)
        products[serial] = (product, product_id)
    remove = VOICE + "/devices/remove"

    def sudi(serial: str) -> dict[str, str]:
        return {"udiPid": "UCM", "udiSerialNumber": serial}

    status, problem = await admin.post(
        remove, {"productInstacesRemoveRequests": [{"sudi": sudi("GONE1")}]}
    )
    assert status == 409, problem
    assert problem["field"] == "productInstacesRemoveRequests[0].returnCode"
    gone1, gone2 = products["GONE1"][0], products["GONE2"][0]
    wrong = gone2.give_back()  # GONE2's return code, sent for GONE1
    status, problem = await admin.post(
        remove, {"productInstacesRemoveRequests": [{"sudi": sudi("GONE1"), "returnCode": wrong}]}
    )
    assert status == 422, problem
    assert "another product" in problem["detail"]
    status, body = await admin.post(
        remove,
        {
            "productInstacesRemoveRequests": [
                {"sudi": sudi("GONE1"), "returnCode": gone1.give_back()},
                {"sudi": sudi("GONE2"), "returnCode": wrong},
            ]
        },
    )
    assert status == 200, body
    assert [d["status"] for d in body["devices"]] == ["Removed", "Removed"]
    assert (await licenses(admin))[ENHANCED]["reserved"] == 2

    # A reserved product does not move: its licenses are this pool's.
    assert (await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Lab"}))[0] == 200
    status, problem = await admin.post(
        VOICE + "/devices/transfer",
        {"productInstances": [{"sudi": sudi("DEAD1"), "targetVirtualAccount": "Lab"}]},
    )
    assert status == 409, problem
    # Nor does a token registration take it over.
    server = admin.client.server
    assert isinstance(server, TestServer)
    status, body = await admin.post(VOICE + "/tokens", {})
    assert status == 200, body
    with pytest.raises(RequestRefused, match="holds a specific license reservation"):
        await new_agent(tmp_path, server, "DEAD1").register(body["tokenInfo"]["token"])
    # The failed product: force-removed with a reason, in the audit log.
    dead_id = products["DEAD1"][1]
    status, body = await admin.post(
        f"{VOICE}/reservations/{dead_id}/force-remove", {"reason": "RMA 4711: board failed"}
    )
    assert status == 200, body
    assert body["device"]["status"] == "Removed"
    assert (await licenses(admin))[ENHANCED]["reserved"] == 0
    row = await db.fetchrow("SELECT details FROM events WHERE action = 'reservation.force_removed'")
    assert row is not None
    assert json.loads(row["details"])["reason"] == "RMA 4711: board failed"
    status, problem = await admin.post(
        f"{VOICE}/reservations/{dead_id}/force-remove", {"reason": "again"}
    )
    assert status == 404, problem


@pytest.mark.unit
async def test_agent_state_machine_refusals(state_dir: Path, tmp_path: Path) -> None:
    product = new_product(tmp_path, state_dir)
    for action, reason in (
        (product.request, "not enabled"),
        (product.cancel, "not enabled"),
        (product.give_back, "no reservation is installed"),
        (lambda: product.install("<specificPLR/>"), "not enabled"),
    ):
        with pytest.raises(AgentError, match=reason):
            action()
    state = product.state
    state.registration = "registered"
    product.dir.save(state)
    with pytest.raises(AgentError, match="deregister it"):
        product.enable()
    state.registration = "deregistered"
    product.dir.save(state)
    product.enable()
    with pytest.raises(AgentError, match="no reservation request is open"):
        product.cancel()
    request = product.request()
    product.cancel()
    assert product.request() != request  # a new nonce after a cancel
    product.disable()
    assert product.state.reservation.request_nonce is None


async def test_term_end_dates_and_no_borrowing(
    admin: Api, state_dir: Path, tmp_path: Path, runtime: Runtime
) -> None:
    # The server reserves at today's date; the product's clock and the server's license
    # view are then moved past the short TERM line's end (injected, no sleeping).
    today = dt.datetime.now(dt.UTC).date()
    start, end = today - dt.timedelta(days=30), today + dt.timedelta(days=30)
    await setup_pool(
        admin,
        {"entitlementTag": ENHANCED, "quantity": 2},
        {
            "entitlementTag": CUWL,
            "quantity": 3,
            "licenseType": "TERM",
            "startDate": start.isoformat(),
            "endDate": (today + dt.timedelta(days=1000)).isoformat(),
        },
        {
            "entitlementTag": CUWL,
            "quantity": 2,
            "licenseType": "TERM",
            "startDate": start.isoformat(),
            "endDate": end.isoformat(),
            "subscriptionId": "Sub-7",
        },
    )
    now = [dt.datetime.combine(today, dt.time(12), dt.UTC)]
    product = new_product(tmp_path, state_dir, clock=lambda: now[0])
    product.enable()
    status, body = await admin.post(
        VOICE + "/reserve-licenses",
        {
            "reservationRequests": [
                {
                    "reservationCode": product.request(),
                    "licenses": [
                        {"entitlementTag": CUWL, "quantity": 4, "precedence": "SHORTEST_TERM_FIRST"}
                    ],
                }
            ]
        },
    )
    assert status == 200, body
    code = body["authorizationCodes"][0]["authorizationCode"]
    assert f"<endDate>{format_date(end)}</endDate>" in code
    assert "<subscriptionID>Sub-7</subscriptionID>" in code
    product.install(code)
    assert product.authorized() == {CUWL: 4}
    # No borrowing: reserved CUWL does not cover Enhanced (a lower tier).
    assert product.check_usage({CUWL: 4, ENHANCED: 1}) == {
        CUWL: "AUTHORIZED",
        ENHANCED: "NOT_AUTHORIZED",
    }
    now[0] = dt.datetime.combine(end, dt.time(23, 59), dt.UTC)  # its last day: still counts
    assert product.authorized() == {CUWL: 4}
    now[0] = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC)
    assert product.authorized() == {CUWL: 2}
    assert product.check_usage({CUWL: 4}) == {CUWL: "OUT_OF_COMPLIANCE"}

    # The server counts the reserved TERM licenses to their end date too.
    async with open_services(runtime) as services:
        for day, reserved, purchased in ((end, 4, 5), (end + dt.timedelta(days=1), 2, 3)):
            judged = LicenseService(
                services.db, services.catalog, today=functools.partial(id_, day)
            )
            _, lines = await judged.positions(host_operator("pytest"), "Acme", ["Voice"])
            cuwl = next(p for p in lines if p.tag == CUWL)
            assert (cuwl.reserved, cuwl.purchased) == (reserved, purchased)
