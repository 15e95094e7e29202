"""Specific license reservation (SLR) end to end: the real daemon's admin API, the agent's
reservation library offline, the codes carried between them; reserving, installing,
confirming, returning, and every refusal on the way."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from satellite_agent.client import AgentError
from satellite_agent.reservation import Reservations
from tests.conftest import CUWL, ENHANCED, Api
from tests.helpers.api import (
    ACCOUNT,
    VOICE,
    licenses,
    new_product,
    product_uuid,
    reserve,
    reserved_code,
    setup_pool,
)
from tests.helpers.reservation import CONFIRM, RETURN, device

# --- reserve, install, confirm, return; refusals ---------------------------------------------


async def test_reserve_install_confirm_return_releases(
    admin: Api, state_dir: Path, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_pool(admin, {"entitlementTag": ENHANCED, "quantity": 5})
    product = new_product(tmp_path, state_dir)
    assert Reservations.describe(product.state) is None
    product.enable()
    assert Reservations.describe(product.state) == "reservation in progress"
    request = product.request()
    assert request == product.request()  # the open request, again

    code, product_id = await reserved_code(admin, request, enhanced=2)
    assert code.startswith("<specificPLR><authorizationCode><flag>A</flag><version>C</version>")
    assert f"<piid>{product_id}</piid>" in code
    assert f"<udi>P:UCM,S:SLR0001,U:{product_uuid('SLR0001')}</udi>" in code
    line = (await licenses(admin))[ENHANCED]
    assert (line["quantity"], line["reserved"], line["available"]) == (5, 2, 3)
    shown = await device(admin, product_id)
    assert shown["reservation"]["status"] == "Pending Confirmation"
    assert shown["reservation"]["reservedLicenses"][0]["quantity"] == 2
    listing = (await admin.get(VOICE + "/devices"))[1]["devices"]
    assert [d["reservation"]["status"] for d in listing] == ["Pending Confirmation"]

    # The code as a file.
    async with admin.client.get(
        f"{VOICE}/reservations/{product_id}/authorization-code",
        headers={"Authorization": f"Bearer {admin.token}"},
    ) as response:
        assert response.status == 200
        assert "attachment" in response.headers["Content-Disposition"]
        assert await response.text() == code

    confirmation = product.install(code)
    assert Reservations.describe(product.state) == "registered - specific license reservation"
    assert product.authorized() == {ENHANCED: 2}
    assert product.check_usage({ENHANCED: 2}) == {ENHANCED: "AUTHORIZED"}
    assert product.check_usage({ENHANCED: 3}) == {ENHANCED: "OUT_OF_COMPLIANCE"}
    with pytest.raises(AgentError, match="return"):
        product.disable()

    status, body = await admin.post(
        VOICE + "/reservations/confirm", {"confirmationCode": confirmation}
    )
    assert status == 200, body
    assert body["device"]["reservation"]["status"] == "Reserved"
    status, body = await admin.post(
        VOICE + "/reservations/confirm", {"confirmationCode": confirmation}
    )
    assert status == 409, body

    returned = product.give_back()
    assert Reservations.describe(product.state) == "reservation in progress"
    assert product.authorized() == {}
    status, body = await admin.post(RETURN, {"returnCode": returned})
    assert status == 200, body
    assert body["device"]["status"] == "Removed"
    line = (await licenses(admin))[ENHANCED]
    assert (line["reserved"], line["available"]) == (0, 5)
    status, body = await admin.post(RETURN, {"returnCode": returned})
    assert status == 404, body
    actions = [r["action"] for r in await db.fetch("SELECT action FROM events ORDER BY id")]
    assert actions[-3:] == ["reservation.created", "reservation.confirmed", "reservation.returned"]
    product.disable()
    assert Reservations.describe(product.state) is None


async def test_request_code_checksum_catches_a_typo(
    admin: Api, state_dir: Path, tmp_path: Path
) -> None:
    await setup_pool(admin, {"entitlementTag": ENHANCED, "quantity": 5})
    product = new_product(tmp_path, state_dir)
    product.enable()
    request = product.request()
    body_at = len("SLR1-") + 10
    swapped = "A" if request[body_at] != "A" else "B"
    mistyped = request[:body_at] + swapped + request[body_at + 1 :]
    status, problem = await reserve(admin, mistyped, enhanced=1)
    assert status == 422, problem
    assert problem["field"] == "reservationRequests[0].reservationCode"
    assert "checksum" in problem["detail"]
    # Case, blanks and line breaks do not matter (codes are typed and pasted).
    wrapped = request[:40].lower() + "\n " + request[40:]
    status, body = await reserve(admin, wrapped, enhanced=1)
    assert status == 200, body


async def test_server_refusals_change_nothing(
    admin: Api, state_dir: Path, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_pool(
        admin,
        {"entitlementTag": ENHANCED, "quantity": 3},
        {"entitlementTag": CUWL, "quantity": 5},
    )
    product = new_product(tmp_path, state_dir)
    product.enable()
    request = product.request()
    before = await db.fetch("SELECT * FROM reservations")

    status, problem = await reserve(admin, request, enhanced=4)
    assert status == 409, problem
    assert problem["field"] == "reservationRequests[0].licenses[0].quantity"
    # No borrowing: CUWL (a higher tier) does not stand in for Basic.
    status, problem = await reserve(admin, request, basic=1)
    assert status == 409, problem
    assert "never borrow" in problem["detail"]
    status, problem = await admin.post(
        VOICE + "/reserve-licenses",
        {
            "reservationRequests": [
                {
                    "reservationCode": request,
                    "reservationType": "UNIVERSAL",
                    "licenses": [{"entitlementTag": ENHANCED, "quantity": 1}],
                }
            ]
        },
    )
    assert status == 422, problem
    assert problem["field"] == "reservationRequests[0].reservationType"
    status, problem = await admin.post(
        VOICE + "/reserve-licenses",
        {
            "reservationRequests": [
                {
                    "reservationCode": request,
                    "licenses": [{"entitlementTag": "regid.nope", "quantity": 1}],
                }
            ]
        },
    )
    assert status == 422, problem
    assert problem["field"] == "reservationRequests[0].licenses[0].entitlementTag"
    # Two requests in one call: the second fails, so neither is reserved.
    other = new_product(tmp_path, state_dir, "SLR0002")
    other.enable()
    status, problem = await admin.post(
        VOICE + "/reserve-licenses",
        {
            "reservationRequests": [
                {
                    "reservationCode": request,
                    "licenses": [{"entitlementTag": ENHANCED, "quantity": 2}],
                },
                {
                    "reservationCode": other.request(),
                    "licenses": [{"entitlementTag": ENHANCED, "quantity": 2}],
                },
            ]
        },
    )
    assert status == 409, problem
    assert problem["field"] == "reservationRequests[1].licenses[0].quantity"
    assert await db.fetch("SELECT * FROM reservations") == before
    assert (await licenses(admin))[ENHANCED]["reserved"] == 0

    _, product_id = await reserved_code(admin, request, enhanced=1)
    status, problem = await reserve(admin, request, enhanced=1)
    assert status == 409, problem
    assert "used already" in problem["detail"]
    product.cancel()
    status, problem = await reserve(admin, product.request(), enhanced=1)
    assert status == 409, problem
    assert "registered already" in problem["detail"]
    # Nothing to confirm or return with codes that are not codes, or not this product's.
    for path, body, field in (
        (CONFIRM, {"confirmationCode": "SLRC-AAAA"}, "confirmationCode"),
        (RETURN, {"returnCode": "nonsense"}, "returnCode"),
    ):
        status, problem = await admin.post(path, body)
        assert status == 422, problem
        assert problem["field"] == field
    status, problem = await admin.post(f"{VOICE}/reservations/{product_id}/force-remove", {})
    assert status == 422, problem
    assert problem["field"] == "reason"
    status, problem = await admin.post(
        f"{VOICE}/reservations/{product_id}/update",
        {"licenses": [{"entitlementTag": ENHANCED, "quantity": 2}]},
    )
    assert status == 409, problem  # the first code awaits its confirmation
    assert "in transition" in problem["detail"]


async def test_two_reservations_race_for_the_last_licenses(
    admin: Api, state_dir: Path, tmp_path: Path
) -> None:
    await setup_pool(admin, {"entitlementTag": ENHANCED, "quantity": 3})
    requests = []
    for n in range(6):
        product = new_product(tmp_path, state_dir, f"RACE{n}", trust=False)
        product.enable()
        requests.append(product.request())
    results = await asyncio.gather(*(reserve(admin, r, enhanced=1) for r in requests))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 200, 200, 409, 409, 409], results
    line = (await licenses(admin))[ENHANCED]
    assert (line["reserved"], line["available"]) == (3, 0)
    # Two asking for 2 of the last 3: one wins.
    assert (
        await admin.post(
            ACCOUNT + "/virtual-accounts/Voice/license-pool",
            {"entitlementTag": ENHANCED, "quantity": 3},
        )
    )[0] == 200
    pair = []
    for n in range(2):
        product = new_product(tmp_path, state_dir, f"PAIR{n}", trust=False)
        product.enable()
        pair.append(product.request())
    results = await asyncio.gather(*(reserve(admin, r, enhanced=2) for r in pair))
    assert sorted(status for status, _ in results) == [200, 409], results
    assert (await licenses(admin))[ENHANCED]["reserved"] == 5


async def test_offline_refusals_change_nothing(admin: Api, state_dir: Path, tmp_path: Path) -> None:
    await setup_pool(admin, {"entitlementTag": ENHANCED, "quantity": 5})
    product = new_product(tmp_path, state_dir)
    stranger = new_product(tmp_path, state_dir, "SLR0002")
    untrusting = new_product(tmp_path, state_dir, "SLR0003", trust=False)
    for p in (product, stranger, untrusting):
        p.enable()
    old_request = product.request()
    old_code, _ = await reserved_code(admin, old_request, enhanced=1)
    product.cancel()
    code, _ = await reserved_code(admin, stranger.request(), enhanced=2)

    def refused(target: Reservations, text: str, reason: str) -> None:
        before = target.dir.state_file.read_bytes()
        with pytest.raises(AgentError, match=reason):
            target.install(text)
        assert target.dir.state_file.read_bytes() == before

    # Tampered: a count, the piid, a byte of the signature.
    refused(stranger, code.replace("<count>2</count>", "<count>9</count>"), "signature")
    refused(stranger, code.replace("<piid>", "<piid>0"), "signature")
    signature_at = code.index("<signature>") + len("<signature>") + 5
    flipped = "A" if code[signature_at] != "A" else "B"
    refused(stranger, code[:signature_at] + flipped + code[signature_at + 1 :], "signature")
    refused(stranger, code.replace("<specificPLR>", "<!DOCTYPE x><specificPLR>"), "DTD")
    refused(stranger, "x" * 70_000, "longer than")
    # Signed by a server this product does not trust, or with no trusted key at all.
    other_key = tmp_path / "other.pub"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    refused(untrusting, code, "no trusted server key")
    untrusting.trust(other_key.read_bytes())
    refused(untrusting, code, "signature")
    # Another product's code; and with its (unsigned) UDI rewritten to this product's.
    refused(product, code, "another product")
    own_udi = f"P:UCM,S:SLR0001,U:{product_uuid('SLR0001')}"
    rewritten = code.replace(f"P:UCM,S:SLR0002,U:{product_uuid('SLR0002')}", own_udi)
    product.request()
    refused(product, rewritten, "older request")
    # A code for an older request of this product (cancelled since).
    refused(product, old_code, "older request")
    # Its own code, at last.
    confirmation = stranger.install(code)
    assert confirmation.startswith("SLRC-")
    # The same code again, once installed: not newer.
    refused(stranger, code, "not newer")
    # A return code for the old request's code, never installed: the server releases it.
    returned = product.return_authorization(old_code)
    status, body = await admin.post(RETURN, {"returnCode": returned})
    assert status == 200, body
    assert (await licenses(admin))[ENHANCED]["reserved"] == 2
