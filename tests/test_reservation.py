"""Specific license reservation (SLR) end to end: the real daemon's admin API, the agent's
reservation library offline, the codes carried between them; every transition and refusal."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from satellite.api.context import Services
from satellite.crypto.keys import KeyPaths
from satellite.domain.access import host_operator
from satellite.services.licenses import LicenseService
from satellite.wiring import Runtime, open_services
from satellite_agent.client import Agent, AgentError, RequestRefused
from satellite_agent.reservation import Reservations
from satellite_agent.state import Identity
from satellite_protocol.crypto.slr import format_date
from tests.conftest import BASIC, CUWL, ENHANCED, Api, new_client
from tests.test_device import new_agent

ACCOUNT = "/api/v1/accounts/Acme"
VOICE = ACCOUNT + "/virtual-accounts/Voice"
CONFIRM = VOICE + "/reservations/confirm"
RETURN = VOICE + "/reservations/return"
LONGEST = "LONGEST_TERM_FIRST"


async def setup_pool(admin: Api, *lines: dict[str, Any]) -> None:
    assert (await admin.post("/api/v1/accounts", {"name": "Acme"}))[0] == 200
    assert (await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Voice"}))[0] == 200
    for line in lines:
        status, body = await admin.post(VOICE + "/license-pool", line)
        assert status == 200, body


def id_(day: dt.date) -> dt.date:
    return day


def product_uuid(serial: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_OID, serial))


def new_product(
    tmp_path: Path, state_dir: Path, serial: str = "SLR0001", trust: bool = True, **kw: Any
) -> Reservations:
    agent = Agent(tmp_path / f"product-{serial}")
    agent.init(
        Identity(
            pid="UCM",
            serial_number=serial,
            uuid=product_uuid(serial),
            product_type="UCM",
            product_version="15.0",
        )
    )
    product = Reservations(agent.dir.path, **kw)
    if trust:
        product.trust(KeyPaths(state_dir).signing_public.read_bytes())
    return product


async def reserve(admin: Api, code: str, **counts: int) -> tuple[int, Any]:
    tags = {"enhanced": ENHANCED, "cuwl": CUWL, "basic": BASIC}
    return await admin.post(
        VOICE + "/reserve-licenses",
        {
            "reservationRequests": [
                {
                    "reservationCode": code,
                    "reservationType": "SPECIFIC",
                    "licenses": [
                        {
                            "entitlementTag": tags[t],
                            "quantity": n,
                            "precedence": "LONGEST_TERM_FIRST",
                        }
                        for t, n in counts.items()
                    ],
                }
            ]
        },
    )


async def reserved_code(admin: Api, code: str, **counts: int) -> tuple[str, str]:
    """Reserve; the authorization code and the product instance id."""
    status, body = await reserve(admin, code, **counts)
    assert status == 200, body
    [issued] = body["authorizationCodes"]
    return issued["authorizationCode"], issued["productInstanceId"]


async def positions(admin: Api) -> dict[str, dict[str, Any]]:
    status, body = await admin.post(ACCOUNT + "/licenses", {})
    assert status == 200, body
    return {line["entitlementTag"]: line for line in body["licenses"]}


async def device(admin: Api, product_id: str) -> dict[str, Any]:
    status, body = await admin.get(f"{VOICE}/devices/{product_id}")
    assert status == 200, body
    return dict(body)


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
    line = (await positions(admin))[ENHANCED]
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
    line = (await positions(admin))[ENHANCED]
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
    assert (await positions(admin))[ENHANCED]["reserved"] == 0

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
    line = (await positions(admin))[ENHANCED]
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
    assert (await positions(admin))[ENHANCED]["reserved"] == 5


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
    assert (await positions(admin))[ENHANCED]["reserved"] == 2


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
    view = await positions(admin)
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
    view = await positions(admin)
    assert (view[ENHANCED]["reserved"], view[CUWL]["reserved"]) == (1, 2)
    assert (view[ENHANCED]["available"], view[CUWL]["available"]) == (4, 2)
    # Settled: the return code of the code now installed releases everything.
    status, body = await admin.post(RETURN, {"returnCode": product.give_back()})
    assert status == 200, body
    view = await positions(admin)
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
    assert (await positions(admin))[ENHANCED]["reserved"] == 2

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
    assert (await positions(admin))[ENHANCED]["reserved"] == 0
    row = await db.fetchrow("SELECT details FROM events WHERE action = 'reservation.force_removed'")
    assert row is not None
    assert json.loads(row["details"])["reason"] == "RMA 4711: board failed"
    status, problem = await admin.post(
        f"{VOICE}/reservations/{dead_id}/force-remove", {"reason": "again"}
    )
    assert status == 404, problem


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
    line = (await positions(admin))[ENHANCED]
    assert (line["reserved"], line["available"]) == (5, 5)
    other = new_product(tmp_path, state_dir, "SLR0002")
    other.enable()
    status, body = await reserve(admin, other.request(), enhanced=5)
    assert status == 200, body
    line = (await positions(admin))[ENHANCED]
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
    assert (await positions(admin))[ENHANCED]["reserved"] == 2

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
    assert (await positions(admin))[ENHANCED]["reserved"] == 3
