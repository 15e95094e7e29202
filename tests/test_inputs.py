"""Hostile input gets a 4xx problem document naming the field, never a 500, and changes
nothing: non-ASCII secrets, JSON nested a thousand levels deep, UDIs outside X.509
PrintableString, U+0000 in strings, numbers beyond int64."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import ec

from satellite.crypto.secrets import token_id, token_proof
from satellite_agent.client import Agent, AgentError
from satellite_agent.state import Identity
from satellite_protocol.crypto import jose
from satellite_protocol.crypto.pki import make_csr
from tests.conftest import ENHANCED, Api
from tests.test_cli import Cli
from tests.test_device import ACCOUNT, VOICE, new_agent, new_token, setup_voice
from tests.test_sync_cli import config

REGISTER = "/device/v1/register"
DEEP = 1000


def deep(levels: int = DEEP) -> bytes:
    """A JSON document nested ``levels`` deep: an object whose one member holds arrays."""
    return b'{"name": ' + b"[" * levels + b"]" * levels + b"}"


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


def register_message(
    key: ec.EllipticCurvePrivateKey,
    token: str,
    nonce: str,
    *,
    udi: dict[str, str] | None = None,
    header: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, str]:
    """A registration as the agent builds it, with fields replaced at will."""
    jwk = jose.public_jwk(key.public_key())
    body: dict[str, Any] = {
        "tokenId": token_id(token),
        "tokenProof": token_proof(token, nonce, jose.jwk_thumbprint(jwk)),
        "udi": {"pid": "C9300", "serialNumber": "FOC1234X0AB", "uuid": "u-1"} | (udi or {}),
        "csr": make_csr(key, "C9300:FOC1234X0AB"),
        "productType": "UCM",
        "productVersion": "15.0",
    } | fields
    protected = {"jwk": jwk, "nonce": nonce, "url": REGISTER} | (header or {})
    return jose.sign(key, json.dumps(body).encode(), protected)


def assert_refused(status: int, body: Any, field: str | None = None) -> None:
    assert 400 <= status < 500, (status, body)
    assert isinstance(body, dict), body
    assert body["status"] == status
    if field is not None:
        assert body.get("field") == field, body


# --- secrets compared as bytes ---------------------------------------------------------------


async def test_non_ascii_nonce_or_token_proof_is_refused(
    admin: Api, anon: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, enhanced=5)
    token = await new_token(admin)
    agent = new_agent(tmp_path, server)
    state = await agent.register(token)
    before = await snapshot(db)
    key = ec.generate_private_key(ec.SECP256R1())

    # A proof of 43 characters, not all ASCII.
    message = register_message(key, token, await fresh_nonce(anon), tokenProof="é" * 43)
    status, body = await send(anon, REGISTER, json.dumps(message).encode())
    assert_refused(status, body)
    assert "proof" in body["detail"]

    # A nonce with non-ASCII characters, in a registration and in a product's request.
    nonce = (await fresh_nonce(anon))[:-2] + "éé"
    message = register_message(key, token, nonce)
    status, body = await send(anon, REGISTER, json.dumps(message).encode())
    assert_refused(status, body)
    product = state.product_instance_id
    path = f"/device/v1/products/{product}/usage"
    payload = json.dumps({"usage": [{"tag": ENHANCED, "count": 1}]}).encode()
    signed = jose.sign(agent.dir.load_key(), payload, {"kid": product, "nonce": nonce, "url": path})
    status, body = await send(anon, path, json.dumps(signed).encode())
    assert_refused(status, body)
    assert await snapshot(db) == before


# --- nesting ---------------------------------------------------------------------------------


async def test_json_nested_a_thousand_levels_is_refused_on_every_body(
    admin: Api, anon: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, enhanced=5)
    agent = new_agent(tmp_path, server)
    state = await agent.register(await new_token(admin))
    product = state.product_instance_id
    before = await snapshot(db)
    for path in (
        "/api/v1/accounts",
        ACCOUNT + "/licenses",
        VOICE + "/license-pool",
        "/backend/oauth/token",
        REGISTER,
        f"/device/v1/products/{product}/usage",
    ):
        for data in (deep(), b"[" * 5000, b'{"a": ' * 2000):
            status, body = await send(admin, path, data)
            assert_refused(status, body)
    # Inside a JWS: the signed payload, and the protected header.
    key = agent.dir.load_key()
    path = f"/device/v1/products/{product}/usage"
    signed = jose.sign(key, deep(), {"kid": product, "nonce": await fresh_nonce(anon), "url": path})
    status, body = await send(anon, path, json.dumps(signed).encode())
    assert_refused(status, body)
    assert "nested" in body["detail"]
    header = jose.sign(key, b"{}", {"kid": product, "nonce": await fresh_nonce(anon), "url": path})
    header["protected"] = jose._encode(deep())
    status, body = await send(anon, path, json.dumps(header).encode())
    assert_refused(status, body)
    # The upstream's sync endpoints read the body as a bundle, line by line.
    for path in ("/sync/v1/register", "/sync/v1/exchange"):
        status, body = await send(anon, path, deep() + b"\n")
        assert_refused(status, body)
    assert await snapshot(db) == before


def test_sync_import_of_a_deeply_nested_file_is_one_line(
    tmp_path: Path, state_dir: Path, db_dsn: str
) -> None:
    site = Cli(
        config(tmp_path / "site.toml", state_dir, db_dsn, "satellite", tmp_path / "spool"), tmp_path
    )
    site("account", "create", "Site").ok()
    for name, data in (("header", deep()), ("array", b"[" * 5000)):
        answer = tmp_path / f"{name}.answer"
        answer.write_bytes(data + b"\n" + b'{"signature": "x", "records": 0}\n')
        line = site("sync", "import", str(answer)).one_error_line()
        assert "nested" in line, line


# --- UDIs a certificate can carry ------------------------------------------------------------


@pytest.mark.parametrize(
    ("udi", "field"),
    [
        ({"pid": "C9300_48P"}, "udi.pid"),
        ({"pid": "C9300@x"}, "udi.pid"),
        ({"serialNumber": "FOC#1234"}, "udi.serialNumber"),
        ({"serialNumber": "FOC*1234"}, "udi.serialNumber"),
        ({"serialNumber": "FOCé1234"}, "udi.serialNumber"),
    ],
)
async def test_pid_or_serial_outside_printable_string_is_422(
    admin: Api, anon: Api, db: asyncpg.Connection, udi: dict[str, str], field: str
) -> None:
    await setup_voice(admin, enhanced=5)
    token = await new_token(admin)
    before = await snapshot(db)
    key = ec.generate_private_key(ec.SECP256R1())
    message = register_message(key, token, await fresh_nonce(anon), udi=udi)
    status, body = await send(anon, REGISTER, json.dumps(message).encode())
    assert status == 422, body
    assert body["field"] == field, body
    assert await snapshot(db) == before


@pytest.mark.parametrize(
    ("pid", "serial"),
    [("C9300", "F" * 60), ("C9300_48P", "FOC1"), ("C9300", "FOC#1"), ("C9300", "FOCé")],
)
async def test_the_agent_refuses_a_udi_a_certificate_cannot_carry(
    tmp_path: Path, pid: str, serial: str
) -> None:
    identity = Identity(
        pid=pid, serial_number=serial, uuid="u-1", product_type="UCM", product_version="15.0"
    )
    agent = Agent(tmp_path / "refused")
    with pytest.raises(AgentError, match="UDI") as refused:
        agent.init(identity)
    assert "\n" not in str(refused.value)
    # A state written before (by an older agent) is refused before anything is sent: the
    # server's address is one where nothing listens, and the refusal is not "cannot reach".
    older = Agent(tmp_path / "older")
    valid = Identity(
        pid="C9300", serial_number="FOC1", uuid="u-1", product_type="UCM", product_version="15"
    )
    state = older.init(valid)
    state.identity = identity
    state.transport.url = "http://127.0.0.1:9"
    older.save(state)
    with pytest.raises(AgentError, match="UDI"):
        await older.register("x" * 43 + "." + "y" * 43)


# --- U+0000 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"hostname": "host\u0000"}, "hostname"),
        ({"productType": "U\u0000CM"}, "productType"),
        ({"productVersion": "\u0000"}, "productVersion"),
        ({"udi": {"pid": "C9300", "serialNumber": "FOC\u00001", "uuid": "u"}}, "udi.serialNumber"),
        ({"udi": {"pid": "C9300", "serialNumber": "FOC1", "uuid": "u\u0000"}}, "udi.uuid"),
    ],
)
async def test_nul_in_a_registration_is_422(
    admin: Api, anon: Api, db: asyncpg.Connection, change: dict[str, Any], field: str
) -> None:
    await setup_voice(admin, enhanced=5)
    token = await new_token(admin)
    before = await snapshot(db)
    key = ec.generate_private_key(ec.SECP256R1())
    message = register_message(key, token, await fresh_nonce(anon), **change)
    status, body = await send(anon, REGISTER, json.dumps(message).encode())
    assert status == 422, body
    assert body["field"] == field, body
    assert await snapshot(db) == before


async def test_nul_in_a_usage_tag_or_nonce_is_refused(
    admin: Api, anon: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    await setup_voice(admin, enhanced=5)
    agent = new_agent(tmp_path, server)
    state = await agent.register(await new_token(admin))
    product = state.product_instance_id
    before = await snapshot(db)
    key = agent.dir.load_key()
    path = f"/device/v1/products/{product}/usage"
    payload = json.dumps({"usage": [{"tag": ENHANCED + "\u0000", "count": 1}]}).encode()
    signed = jose.sign(
        key, payload, {"kid": product, "nonce": await fresh_nonce(anon), "url": path}
    )
    status, body = await send(anon, path, json.dumps(signed).encode())
    assert status == 422, body
    assert body["field"] == "usage[0].tag", body
    # In the (unverified) nonce, which is looked up before the signature is checked.
    payload = json.dumps({"usage": []}).encode()
    signed = jose.sign(key, payload, {"kid": product, "nonce": "1.a\u0000.b", "url": path})
    status, body = await send(anon, path, json.dumps(signed).encode())
    assert_refused(status, body)
    assert await snapshot(db) == before


async def test_nul_in_admin_paths_queries_and_bodies_is_422(
    admin: Api, db: asyncpg.Connection
) -> None:
    status, _ = await admin.post("/api/v1/accounts", {"name": "Acme"})
    assert status == 200
    before = await snapshot(db)
    for method, path, body, field in (
        ("GET", "/api/v1/accounts/Ac%00me/virtual-accounts", None, "account"),
        ("POST", "/api/v1/accounts/Acme/virtual-accounts/V%00/tokens", {}, "va"),
        (
            "GET",
            "/api/v1/accounts/Acme/virtual-accounts/DEFAULT/devices?hostName=a%00",
            None,
            "hostName",
        ),
        ("GET", "/api/v1/events?action=a%00b", None, "action"),
        ("POST", "/api/v1/accounts", {"name": "B", "description": "x\u0000"}, "description"),
        (
            "POST",
            "/api/v1/users",
            {"username": "u\u0000", "password": "p", "role": "system-admin"},
            "username",
        ),
        (
            "POST",
            "/backend/oauth/token",
            {"grant_type": "password", "username": "\u0000", "password": "p"},
            "username",
        ),
    ):
        status, problem = await admin.call(method, path, body)
        assert 400 <= status < 500, (path, problem)
        assert problem.get("field") == field, (path, problem)
    # Form-encoded, and in Basic credentials.
    async with admin.client.post(
        "/backend/oauth/token",
        data="grant_type=client_credentials&client_id=a%00&client_secret=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ) as response:
        assert 400 <= response.status < 500, await response.text()
    async with admin.client.post(
        "/backend/oauth/token",
        json={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic YSUwMDpi"},  # a%00:b
    ) as response:
        assert 400 <= response.status < 500, await response.text()
    assert await snapshot(db) == before


# --- numbers beyond int64 --------------------------------------------------------------------


async def test_offsets_and_limits_beyond_int64_are_422(admin: Api) -> None:
    status, _ = await admin.post("/api/v1/accounts", {"name": "Acme"})
    assert status == 200
    huge = str(2**63)
    for path, field in (
        (f"/api/v1/events?offset={huge}", "offset"),
        (f"/api/v1/events?limit={huge}", "limit"),
        (f"{ACCOUNT}/virtual-accounts/DEFAULT/devices?offset={huge}", "offset"),
        (f"{ACCOUNT}/virtual-accounts/DEFAULT/devices?offset=1{'0' * 40}", "offset"),
    ):
        status, problem = await admin.get(path)
        assert status == 422, (path, problem)
        assert problem["field"] == field, (path, problem)
    status, problem = await admin.post(ACCOUNT + "/licenses", {"offset": 2**64})
    assert status == 422, problem
    assert problem["field"] == "offset"


async def test_bearer_token_with_bytes_that_are_not_utf8_is_401(anon: Api) -> None:
    reader, writer = await asyncio.open_connection(anon.client.host, anon.client.port)
    writer.write(
        b"GET /api/v1/accounts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer \xff\xfe\xe9t\r\n\r\n"
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 30)
    writer.close()
    assert status_line.split()[1] == b"401", status_line


def test_the_agent_command_refuses_such_a_udi_in_one_line(tmp_path: Path) -> None:
    agent = [str(Path(sys.executable).parent / "satellite-agent"), "--state-dir"]
    init = [*agent, str(tmp_path / "new"), "init", "--pid", "C9300", "--serial", "F" * 64]
    done = subprocess.run(init, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert done.stderr.startswith("error: this UDI cannot be registered"), done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    # A state an older agent wrote: refused before anything is sent (nothing listens at
    # the server's address, and the refusal is not "cannot reach").
    older = Agent(tmp_path / "older")
    state = older.init(
        Identity(pid="C9300", serial_number="F", uuid="u", product_type="UCM", product_version="1")
    )
    state.identity.serial_number = "F" * 64
    state.transport.url = "http://127.0.0.1:9"
    older.save(state)
    register = [*agent, str(tmp_path / "older"), "register", "x" * 43 + "." + "y" * 43]
    done = subprocess.run(register, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert done.stderr.startswith("error: this UDI cannot be registered"), done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
