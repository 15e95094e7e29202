"""The reservation list of a virtual account (GET .../reservations): the active ones by
default, every one with ?status=all, paged, newest first; any role of the account reads
it, another account's is not found."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ENHANCED, Api, new_client
from tests.helpers.api import VOICE, new_product, reserved_code, setup_pool

LIST = VOICE + "/reservations"


async def test_active_by_default_every_one_with_status_all(
    admin: Api, state_dir: Path, tmp_path: Path
) -> None:
    await setup_pool(admin, {"entitlementTag": ENHANCED, "quantity": 5})
    first, second = (new_product(tmp_path, state_dir, serial) for serial in ("LST0001", "LST0002"))
    first.enable()
    second.enable()
    _, first_id = await reserved_code(admin, first.request(), enhanced=2)
    _, second_id = await reserved_code(admin, second.request(), enhanced=1)
    status, body = await admin.post(
        f"{VOICE}/reservations/{second_id}/force-remove", {"reason": "RMA 7"}
    )
    assert status == 200, body

    status, body = await admin.get(LIST)
    assert status == 200, body
    assert body["totalRecords"] == 1
    [shown] = body["reservations"]
    assert shown["productInstanceId"] == first_id
    assert shown["productTagName"] == "UCM"
    assert shown["sudi"]["udiSerialNumber"] == "LST0001"
    assert shown["status"] == "Registered"
    assert shown["reservation"]["status"] == "Pending Confirmation"
    assert [
        (u["entitlementTag"], u["quantity"]) for u in shown["reservation"]["reservedLicenses"]
    ] == [(ENHANCED, 2)]

    status, body = await admin.get(LIST + "?status=all")
    assert status == 200, body
    assert body["totalRecords"] == 2
    # Newest first: the removed one was reserved last.
    assert [
        (r["productInstanceId"], r["status"], r["reservation"]["status"])
        for r in body["reservations"]
    ] == [
        (second_id, "Removed", "Removed"),
        (first_id, "Registered", "Pending Confirmation"),
    ]
    status, body = await admin.get(LIST + "?status=all&limit=1&offset=1")
    assert status == 200, body
    assert body["totalRecords"] == 2
    assert [r["productInstanceId"] for r in body["reservations"]] == [first_id]

    status, problem = await admin.get(LIST + "?status=returned")
    assert status == 422, problem
    assert problem["field"] == "status"
    status, problem = await admin.get(LIST + "?limit=0")
    assert status == 422, problem
    assert problem["field"] == "limit"


async def test_a_viewer_reads_it_another_account_does_not(admin: Api) -> None:
    await setup_pool(admin, {"entitlementTag": ENHANCED, "quantity": 5})
    assert (await admin.post("/api/v1/accounts", {"name": "Other"}))[0] == 200
    viewer = await new_client(admin, "account-viewer", ["Acme"])
    status, body = await viewer.get(LIST)
    assert (status, body) == (200, {"totalRecords": 0, "reservations": []})
    outsider = await new_client(admin, "account-admin", ["Other"])
    status, problem = await outsider.get(LIST)
    assert status == 404, problem
    status, problem = await admin.get("/api/v1/accounts/Acme/virtual-accounts/Nope/reservations")
    assert status == 404, problem
