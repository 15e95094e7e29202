"""Specific license reservation (SLR) end to end: the real daemon's admin API, the agent's
reservation library offline, the codes carried between them; every transition and refusal."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from satellite.agent.client import Agent, AgentError
from satellite.agent.reservation import Reservations
from satellite.agent.state import Identity
from satellite.crypto.keys import KeyPaths
from tests.conftest import BASIC, CUWL, ENHANCED, Api

ACCOUNT = "/api/v1/accounts/Acme"
VOICE = ACCOUNT + "/virtual-accounts/Voice"
CONFIRM = VOICE + "/reservations/confirm"
RETURN = VOICE + "/reservations/return"
LONGEST = "LONGEST_TERM_FIRST"


async def setup_pool(admin: Api, *lines: dict[str, Any]) -> None:
    assert (await admin.post("/api/v1/accounts", {"name": "Acme"}))[0] == 201
    assert (await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Voice"}))[0] == 201
    for line in lines:
        status, body = await admin.post(VOICE + "/license-pool", line)
        assert status == 201, body


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
