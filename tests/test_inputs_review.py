"""Hostile input found in review (issue 11, section 2): each was a 500 with a traceback in
the log, or a traceback on the terminal; each is now a 4xx problem document (or one line
and exit code != 0), with nothing changed."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from satellite_protocol.crypto import jose
from satellite_protocol.crypto.slr import RequestCode, public_key_text
from tests.conftest import ENHANCED, Api
from tests.test_agent_cli import AgentCli
from tests.test_cli import Cli, _query, _toml_config
from tests.test_device import new_agent, new_token, setup_voice
from tests.test_inputs import assert_refused, fresh_nonce, send, snapshot
from tests.test_reservation import reserve


def sign_raw(key: ec.EllipticCurvePrivateKey, payload: bytes, protected: bytes) -> dict[str, str]:
    """A flattened JWS whose protected header is exactly ``protected`` (jose.sign writes
    its own JSON, which cannot spell a lone surrogate)."""
    encoded = f"{jose._encode(protected)}.{jose._encode(payload)}"
    r, s = decode_dss_signature(key.sign(encoded.encode(), ec.ECDSA(hashes.SHA256())))
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    protected_part, payload_part = encoded.split(".")
    return {
        "protected": protected_part,
        "payload": payload_part,
        "signature": jose._encode(signature),
    }


async def test_a_lone_surrogate_in_a_signed_header_is_refused(
    admin: Api, anon: Api, server: TestServer, tmp_path: Path, db: asyncpg.Connection
) -> None:
    """JSON can spell a lone UTF-16 surrogate (``\\udcff``), which no text column takes: it
    reached the database as the request's nonce."""
    await setup_voice(admin, enhanced=5)
    agent = new_agent(tmp_path, server)
    product = (await agent.register(await new_token(admin))).product_instance_id
    path = f"/device/v1/products/{product}/usage"
    before = await snapshot(db)
    for member in ("nonce", "kid", "url"):
        header = {"alg": "ES256", "kid": product, "nonce": await fresh_nonce(anon), "url": path}
        text = json.dumps(header).replace(f'"{member}": "', f'"{member}": "\\udcff', 1)
        payload = json.dumps({"usage": [{"tag": ENHANCED, "count": 1}]}).encode()
        signed = sign_raw(agent.dir.load_key(), payload, text.encode())
        status, body = await send(anon, path, json.dumps(signed).encode())
        assert_refused(status, body)
    assert await snapshot(db) == before


async def test_a_request_code_with_nul_or_a_lone_surrogate_is_refused(
    admin: Api, db: asyncpg.Connection
) -> None:
    """A request code is JSON inside base32 with a checksum: anyone can write one, with
    U+0000 or a lone surrogate in the PID, serial number or product type."""
    await setup_voice(admin, enhanced=5)
    public_key = public_key_text(ec.generate_private_key(ec.SECP256R1()).public_key())
    before = await snapshot(db)
    for pid, serial, product_type in (
        ("U\x00CM", "S1", "UCM"),
        ("UCM", "S\udcff", "UCM"),
        ("UCM", "S2", "U\x00"),
    ):
        code = RequestCode(pid, serial, "u-1", product_type, str(uuid.uuid4()), public_key)
        status, body = await reserve(admin, code.encode(), enhanced=1)
        assert_refused(status, body, "reservationRequests[0].reservationCode")
        assert "not a request code" in body["detail"]
    assert await snapshot(db) == before


def test_cli_numbers_beyond_int64_are_one_line(
    tmp_path: Path, db_dsn: str, state_dir: Path
) -> None:
    cli = Cli(_toml_config(tmp_path / "satellite.toml", state_dir, db_dsn), tmp_path)
    cli("account", "create", "Acme").ok()
    cli("va", "create", "Acme", "Voice").ok()
    huge = str(2**63)
    for result in cli.many(
        ["events", "--offset", huge],
        ["device", "list", "Acme", "Voice", "--offset", huge],
        ["license", "remove", "Acme", "Voice", huge],
        ["license", "update", "Acme", "Voice", huge, "--tag", ENHANCED, "--quantity", "1"],
    ):
        assert huge in result.one_error_line(), result.args
    cli("events", "--offset", str(2**63 - 1)).ok()


def test_cli_arguments_that_are_not_utf8_are_one_line(
    tmp_path: Path, db_dsn: str, state_dir: Path
) -> None:
    """A terminal in Latin-1 sends "é" as the byte 0xE9: Python hands it over as a lone
    surrogate, which the database driver cannot encode."""
    cli = Cli(_toml_config(tmp_path / "satellite.toml", state_dir, db_dsn), tmp_path)
    before = _query(db_dsn, "SELECT count(*) FROM accounts")
    for result in cli.many(
        ["account", "create", "Caf\udce9"],
        ["va", "list", "Caf\udce9"],
        ["events", "--action", "\udcff"],
    ):
        assert "not UTF-8" in result.one_error_line(), result.args
    assert _query(db_dsn, "SELECT count(*) FROM accounts") == before


async def test_agent_arguments_that_are_not_utf8_are_one_line(tmp_path: Path) -> None:
    """The same on the product's side: its state is UTF-8 JSON, and nothing is written."""
    agent = AgentCli(tmp_path / "agent")
    for option in ("--uuid", "--product-type", "--url"):
        code, _, err = await agent("init", "--pid", "UCM", "--serial", "S1", option, "x\udce9")
        assert code != 0
        assert err.count("\n") == 1, err
        assert "not UTF-8" in err
        assert not (tmp_path / "agent" / "state.json").exists()


async def test_agent_run_with_a_huge_usage_interval_is_one_line(tmp_path: Path) -> None:
    agent = AgentCli(tmp_path / "agent")
    await agent.ok("init", "--pid", "UCM", "--serial", "S1")
    code, _, err = await agent("run", "--usage-every", str(2**63))
    assert code != 0
    assert err.count("\n") == 1, err
    assert "--usage-every" in err


async def raw_http(server: TestServer, request: bytes) -> tuple[int, Any]:
    """``request`` sent as it is (no client sends bytes that are not ASCII in a header)."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


async def test_basic_credentials_that_are_not_ascii_are_refused(
    admin: Api, server: TestServer, db: asyncpg.Connection
) -> None:
    before = await snapshot(db)
    form = b"grant_type=client_credentials"
    status, body = await raw_http(
        server,
        b"POST /oauth/token HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic \xff\xfe\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(form), form),
    )
    assert_refused(status, body)
    assert body["error"] == "invalid_request"
    assert "Basic" in body["detail"]
    assert await snapshot(db) == before


async def test_an_upstream_url_that_is_not_one_is_refused_naming_it(
    admin: Api, db: asyncpg.Connection
) -> None:
    """A URL that cannot name a server (a label too long or empty, a port beyond 65535,
    an unclosed IPv6 bracket) was a 500 (the resolver's UnicodeError) or a 502 (as if the
    upstream were down): it is the caller's input, refused as such."""
    assert (await admin.post("/api/v1/accounts", {"name": "Acme"}))[0] == 200
    before = await snapshot(db)
    for url in (
        "http://" + "a" * 64 + ".example:8443",
        "http://a..b:8443/",
        "http://127.0.0.1:99999",
        "http://[::1",
        "http://:8443/",
    ):
        status, body = await admin.post(
            "/api/v1/accounts/Acme/sync/register", {"upstream": url, "token": "sat-" + "a" * 40}
        )
        assert status == 422, (url, body)
        assert body["field"] == "upstream", body
    assert await snapshot(db) == before


async def test_an_upstream_url_with_a_password_is_refused_and_not_repeated(
    admin: Api, db: asyncpg.Connection
) -> None:
    """A password in the upstream URL was taken: stored in the audit log with the URL, and
    repeated in the 502 when the upstream could not be reached."""
    assert (await admin.post("/api/v1/accounts", {"name": "Acme"}))[0] == 200
    before = await snapshot(db)
    status, body = await admin.post(
        "/api/v1/accounts/Acme/sync/register",
        {"upstream": "https://sync:hunter2secret@127.0.0.1:9/", "token": "sat-" + "a" * 40},
    )
    assert status == 422, body
    assert body["field"] == "upstream", body
    assert "hunter2secret" not in str(body)
    assert await snapshot(db) == before


async def test_agent_server_and_proxy_urls_that_cannot_be_reached_are_refused(
    tmp_path: Path,
) -> None:
    """Such a URL was taken, and every request after it (register, run) died with the
    resolver's UnicodeError traceback."""
    agent = AgentCli(tmp_path / "agent")
    bad_host = "a" * 64 + ".example"
    code, _, err = await agent(
        "init", "--pid", "UCM", "--serial", "S1", "--url", f"http://{bad_host}"
    )
    assert code != 0
    assert err.count("\n") == 1, err
    assert not (tmp_path / "agent" / "state.json").exists()
    await agent.ok("init", "--pid", "UCM", "--serial", "S1")
    before = (tmp_path / "agent" / "state.json").read_bytes()
    for args in (
        ["transport", "url", "http://a..b:8443"],
        ["transport", "url", "http://127.0.0.1:99999"],
        ["transport", "proxy", "--host", bad_host, "--port", "3128"],
        ["transport", "proxy", "--host", "[::1", "--port", "3128"],
    ):
        code, _, err = await agent(*args)
        assert code != 0, args
        assert err.count("\n") == 1, (args, err)
        assert "Traceback" not in err
    assert (tmp_path / "agent" / "state.json").read_bytes() == before


async def test_agent_usage_files_that_are_not_text_or_too_large_are_one_line(
    tmp_path: Path,
) -> None:
    """Bytes that are not UTF-8 were a traceback; a file of any size was read whole (a
    device file such as /dev/zero until memory ran out)."""
    agent = AgentCli(tmp_path / "agent")
    await agent.ok("init", "--pid", "UCM", "--serial", "S1")
    binary, large = tmp_path / "binary", tmp_path / "large"
    binary.write_bytes(b"\xff\xfe=1\n")
    large.write_bytes(b"a" * (2 << 20))
    for path in (binary, large):
        code, _, err = await agent("usage", "update", "--file", str(path))
        assert code != 0
        assert err.count("\n") == 1, err[:300]
        assert len(err) < 300, err[:300]
        assert f"usage file {path}" in err
    code, _, err = await agent("run", "--usage-file", str(binary))
    assert code != 0
    assert f"usage file {binary}" in err


def test_a_config_file_nested_too_deep_holding_nul_or_too_large_is_one_line(
    tmp_path: Path,
) -> None:
    cli = Cli(tmp_path / "unused.toml", tmp_path)
    deep, nul, large = tmp_path / "deep.toml", tmp_path / "nul.toml", tmp_path / "large.toml"
    deep.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    nul.write_text('state_dir = "/tmp/a\\u0000b"\n')
    large.write_text("# a comment\n" * 200_000)
    for path, what in ((deep, "nested"), (nul, "state_dir"), (large, "larger")):
        line = cli("--config", str(path), "account", "list").one_error_line()
        assert what in line, line
        assert "\x00" not in line
