"""Accounts, pools, tokens, agents and SLR products, made through the admin API and the agent
library the way an operator and a product make them."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestServer

from satellite.crypto.keys import KeyPaths
from satellite_agent.client import Agent
from satellite_agent.reservation import Reservations
from satellite_agent.state import Identity
from tests.conftest import BASIC, CUWL, ENHANCED, Api

ACCOUNT = "/api/v1/accounts/Acme"
VOICE = ACCOUNT + "/virtual-accounts/Voice"
TAGS = {"enhanced": ENHANCED, "basic": BASIC, "cuwl": CUWL}
EXPORT_KEY = "regid.2019-03.com.cisco.UCM_ExportKey_12.0_d1e6b8a3-4f2c-4b7d-9e31-6a5c0f7b2d48"
FEATURE = "UCM_Encryption"
ENHANCED_PLUS = "regid.2016-07.com.cisco.UCM_EnhancedPlus_12.0_5e2c8a90-7b14-4d3f-a6c2-9f81e0d4b723"


def base_url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


async def setup_voice(admin: Api, **pool: int) -> None:
    status, body = await admin.post("/api/v1/accounts", {"name": "Acme"})
    assert status == 200, body
    status, body = await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Voice"})
    assert status == 200, body
    for tag, quantity in pool.items():
        status, body = await admin.post(
            VOICE + "/license-pool", {"entitlementTag": TAGS[tag], "quantity": quantity}
        )
        assert status == 200, body


async def new_token(admin: Api, va: str = "Voice", **fields: Any) -> str:
    status, body = await admin.post(f"{ACCOUNT}/virtual-accounts/{va}/tokens", fields)
    assert status == 200, body
    token: str = body["tokenInfo"]["token"]
    return token


def new_agent(tmp_path: Path, server: TestServer, serial: str = "FCH0001") -> Agent:
    agent = Agent(tmp_path / f"agent-{serial}")
    state = agent.init(
        Identity(
            pid="UCM",
            serial_number=serial,
            uuid=f"6f1e0c5a-0000-4000-8000-{serial[-6:].rjust(12, '0')}",
            product_type="UCM",
            product_version="15.0",
        )
    )
    state.transport.url = base_url(server)
    agent.save(state)
    return agent


async def licenses(admin: Api) -> dict[str, dict[str, Any]]:
    status, body = await admin.post(ACCOUNT + "/licenses", {})
    assert status == 200, body
    return {line["entitlementTag"]: line for line in body["licenses"]}


async def setup_pool(admin: Api, *lines: dict[str, Any]) -> None:
    assert (await admin.post("/api/v1/accounts", {"name": "Acme"}))[0] == 200
    assert (await admin.post(ACCOUNT + "/virtual-accounts", {"name": "Voice"}))[0] == 200
    for line in lines:
        status, body = await admin.post(VOICE + "/license-pool", line)
        assert status == 200, body


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


def through(agent: Agent, port: int, user: str | None = None, password: str | None = None) -> None:
    state = agent.state
    state.transport.proxy_url = f"http://127.0.0.1:{port}"
    state.transport.proxy_user = user
    state.transport.proxy_password = password
    agent.save(state)


async def snapshot(db: asyncpg.Connection) -> dict[str, int]:
    """Row counts of the tables a refused request could have written to."""
    tables = (
        "accounts",
        "virtual_accounts",
        "product_instances",
        "product_usage",
        "usage_reports",
        "used_nonces",
        "events",
        "registration_tokens",
    )
    return {t: await db.fetchval(f"SELECT count(*) FROM {t}") for t in tables}  # noqa: S608


async def fresh_nonce(api: Api) -> str:
    async with api.client.get("/device/v1/nonce") as response:
        assert response.status == 204
        return response.headers["Replay-Nonce"]


async def send(api: Api, path: str, data: bytes) -> tuple[int, Any]:
    return await api.call("POST", path, raw=data)


def assert_refused(status: int, body: Any, field: str | None = None) -> None:
    assert 400 <= status < 500, (status, body)
    assert isinstance(body, dict), body
    assert body["status"] == status
    if field is not None:
        assert body.get("field") == field, body
