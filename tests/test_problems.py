"""RFC 9457 problem documents, request ids, health, readiness and the OpenAPI document."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import msgspec
import pytest
from multidict import CIMultiDictProxy

from satellite.config import ApiSettings, DatabaseSettings, Settings
from satellite.http.routes import ROUTES, full_paths
from satellite.resources import migrations_dir
from satellite.storage.migrations import load_migrations, migrate
from satellite.wiring import Runtime, create_app, load_runtime
from tests.conftest import ENHANCED, AiohttpClient, Api, Credentials, login

PROBLEM = "application/problem+json"
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


async def raw(
    api: Api,
    method: str,
    path: str,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, CIMultiDictProxy[str], Any]:
    sent = dict(headers or {})
    if api.token:
        sent["Authorization"] = f"Bearer {api.token}"
    if data is not None:
        sent.setdefault("Content-Type", "application/json")
    async with api.client.request(method, path, data=data, headers=sent) as response:
        text = await response.read()
        return response.status, response.headers, (msgspec.json.decode(text) if text else None)


def assert_problem(
    headers: CIMultiDictProxy[str], body: Any, status: int, slug: str | None = None
) -> None:
    """The answer is an RFC 9457 problem document with the required members."""
    assert headers["Content-Type"].split(";")[0].strip() == PROBLEM
    assert isinstance(body, dict)
    assert body["status"] == status
    for member in ("type", "title", "detail"):
        assert isinstance(body[member], str), member
        assert body[member], member
    if slug is not None:
        assert body["type"].endswith(":" + slug), body["type"]
    # The request id ties the document to the logs and the response header.
    assert body["requestId"] == headers["X-Request-ID"]


async def invalid(
    api: Api, path: str, body: Any, field: str | None, *, data: bytes | None = None
) -> dict[str, Any]:
    """POST ``body``; expect a 422 problem document naming ``field``."""
    payload = data if data is not None else msgspec.json.encode(body)
    status, headers, problem = await raw(api, "POST", path, payload)
    assert status == 422, (path, body, problem)
    assert_problem(headers, problem, 422, "invalid-input")
    assert problem.get("field") == field, problem
    assert isinstance(problem, dict)
    return problem


async def invalid_token_request(api: Api, body: Any, field: str) -> dict[str, Any]:
    """The token endpoint answers as RFC 6749 says: 400 with error ``invalid_request``."""
    status, headers, problem = await raw(
        api, "POST", "/backend/oauth/token", msgspec.json.encode(body)
    )
    assert status == 400, (body, problem)
    assert_problem(headers, problem, 400, "invalid-request")
    assert problem["error"] == "invalid_request"
    assert problem.get("field") == field, problem
    assert isinstance(problem, dict)
    return problem


# --- malformed and invalid bodies ----------------------------------------------------------


async def test_malformed_json(admin: Api, db: asyncpg.Connection) -> None:
    for data in (b'{"name": ', b"{name: 'x'}", b"\xff\xfe", b'{"name": "x"} trailing', b"nul\x00"):
        status, headers, problem = await raw(admin, "POST", "/api/v1/accounts", data)
        assert status == 400, (data, problem)
        assert_problem(headers, problem, 400, "bad-request")
        assert "JSON" in problem["detail"]
        assert "field" not in problem
    assert await db.fetchval("SELECT count(*) FROM accounts") == 0


async def test_malformed_json_on_the_token_endpoint(anon: Api) -> None:
    status, headers, problem = await raw(anon, "POST", "/backend/oauth/token", b"{oops")
    assert status == 400, problem
    assert_problem(headers, problem, 400, "bad-request")


async def test_unknown_field(admin: Api, db: asyncpg.Connection) -> None:
    problem = await invalid(admin, "/api/v1/accounts", {"name": "Acme", "colour": "red"}, "colour")
    assert "unknown" in problem["detail"]
    assert "colour" in problem["detail"]
    assert await db.fetchval("SELECT count(*) FROM accounts") == 0
    await invalid_token_request(
        admin,
        {"grant_type": "client_credentials", "client_id": "a", "client_secret": "b", "x": 1},
        "x",
    )
    # An action without parameters refuses parameters too.
    status, _ = await admin.post("/api/v1/accounts", {"name": "Acme"})
    assert status == 200
    status, _ = await admin.post("/api/v1/accounts/Acme/virtual-accounts", {"name": "Lab"})
    assert status == 200
    await invalid(
        admin, "/api/v1/accounts/Acme/virtual-accounts/Lab/delete", {"force": True}, "force"
    )
    status, body = await admin.get("/api/v1/accounts/Acme/virtual-accounts")
    assert "Lab" in {va["name"] for va in body["virtualAccounts"]}


async def test_wrong_types(admin: Api, db: asyncpg.Connection) -> None:
    status, _ = await admin.post("/api/v1/accounts", {"name": "Acme"})
    assert status == 200
    await invalid(admin, "/api/v1/accounts", {"name": 5}, "name")
    await invalid(
        admin,
        "/api/v1/accounts",
        {"name": "X", "exportControlledAllowed": "yes"},
        "exportControlledAllowed",
    )
    base = "/api/v1/accounts/Acme"
    await invalid(
        admin, f"{base}/licenses", {"virtualAccounts": ["DEFAULT", 5]}, "virtualAccounts[1]"
    )
    await invalid(admin, f"{base}/licenses", {"virtualAccounts": "DEFAULT"}, "virtualAccounts")
    await invalid(admin, f"{base}/licenses", {"limit": -2}, "limit")
    await invalid(
        admin, f"{base}/virtual-accounts/DEFAULT/tokens/revoke", {"tokens": [1]}, "tokens[0]"
    )
    await invalid(
        admin,
        f"{base}/virtual-accounts/DEFAULT/tokens",
        {"exportControlled": "Maybe"},
        "exportControlled",
    )
    await invalid(
        admin,
        f"{base}/virtual-accounts/DEFAULT/license-pool",
        {"entitlementTag": ENHANCED, "quantity": "ten"},
        "quantity",
    )
    await invalid(
        admin,
        f"{base}/virtual-accounts/DEFAULT/license-pool",
        {"entitlementTag": ENHANCED, "quantity": 1, "startDate": "not a date"},
        "startDate",
    )
    await invalid(admin, "/api/v1/clients", {"role": "emperor"}, "role")
    # A body that is not an object at all.
    await invalid(admin, "/api/v1/accounts", [1, 2], None)
    assert await db.fetchval("SELECT count(*) FROM accounts") == 1
    assert await db.fetchval("SELECT count(*) FROM license_lines") == 0


async def test_wrong_type_in_query_parameters(admin: Api) -> None:
    status, headers, problem = await raw(admin, "GET", "/api/v1/events?limit=many")
    assert status == 422, problem
    assert_problem(headers, problem, 422, "invalid-input")
    assert problem["field"] == "limit"


async def test_missing_required_field(admin: Api, anon: Api) -> None:
    problem = await invalid(admin, "/api/v1/accounts", {"description": "no name"}, "name")
    assert "name" in problem["detail"]
    await invalid(admin, "/api/v1/clients", {"accounts": []}, "role")
    await invalid(admin, "/api/v1/users", {"username": "u", "role": "system-admin"}, "password")
    await invalid_token_request(anon, {"client_id": "a"}, "grant_type")
    # An empty body is an empty object: the required field is still missing.
    await invalid(admin, "/api/v1/accounts", None, "name", data=b"")


async def test_body_over_the_limit(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    db_dsn: str,
    system_admin: Credentials,
    db: asyncpg.Connection,
) -> None:
    small = msgspec.structs.replace(settings, api=ApiSettings(max_body_bytes=2048))
    api = Api(await aiohttp_client(create_app(load_runtime(small, db_dsn))))

    # The token endpoint needs no authentication: the limit applies before anything.
    big = msgspec.json.encode({"grant_type": "client_credentials", "client_id": "x" * 4096})
    status, headers, problem = await raw(api, "POST", "/backend/oauth/token", big)
    assert status == 413, problem
    assert_problem(headers, problem, 413, "body-too-large")

    admin = await login(api, system_admin)
    padded = b'{"name": "Acme", "description": "' + b"d" * 400 + b'"}' + b" " * 1500
    assert len(padded) < 2048
    status, _, body = await raw(admin, "POST", "/api/v1/accounts", padded)
    assert status == 200, body  # under the limit is fine

    oversized = b'{"name": "Big", "description": "' + b"d" * 400 + b'"}' + b" " * 2000
    status, headers, problem = await raw(admin, "POST", "/api/v1/accounts", oversized)
    assert status == 413, problem
    assert_problem(headers, problem, 413, "body-too-large")
    assert await db.fetchval("SELECT array_agg(name) FROM accounts") == ["Acme"]


# --- unknown paths and methods -------------------------------------------------------------


async def test_unknown_path(admin: Api) -> None:
    for path in ("/api/v1/nope", "/backend/api/v1/accounts/x/y/z", "/nothing", "/api/v2/accounts"):
        status, headers, problem = await raw(admin, "GET", path)
        assert status == 404, (path, problem)
        assert_problem(headers, problem, 404, "not-found")
        assert "openapi.json" in problem["detail"]


async def test_unknown_path_without_authentication(anon: Api) -> None:
    status, headers, problem = await raw(anon, "POST", "/api/v1/no/such/thing", b"{}")
    assert status == 404, problem
    assert_problem(headers, problem, 404, "not-found")


WRONG_METHODS = (
    ("DELETE", "/api/v1/accounts", {"GET", "POST"}),
    ("PUT", "/backend/api/v1/clients", {"GET", "POST"}),
    ("GET", "/backend/oauth/token", {"POST"}),
    ("POST", "/healthz", {"GET"}),
    ("GET", "/api/v1/upstream_satellites/accounts", {"POST"}),
)


async def test_wrong_method(admin: Api) -> None:
    for method, path, allowed in WRONG_METHODS:
        status, headers, problem = await raw(admin, method, path)
        assert status == 405, (method, path, problem)
        assert_problem(headers, problem, 405, "method-not-allowed")
        assert {m.strip() for m in headers["Allow"].split(",")} >= allowed


# --- request ids ---------------------------------------------------------------------------


async def test_sane_request_id_is_echoed(admin: Api) -> None:
    for request_id in ("abc-123", "A.b_C-9", "x" * 64):
        headers = {"X-Request-ID": request_id}
        status, answer, _ = await raw(admin, "GET", "/api/v1/accounts", headers=headers)
        assert status == 200
        assert answer["X-Request-ID"] == request_id
        status, answer, problem = await raw(admin, "GET", "/api/v1/nope", headers=headers)
        assert status == 404
        assert answer["X-Request-ID"] == request_id
        assert problem["requestId"] == request_id


async def test_insane_request_id_is_replaced(admin: Api) -> None:
    seen = set()
    for request_id in ("has space", "x" * 65, "<script>", "a/b", "semi;colon", ""):
        headers = {"X-Request-ID": request_id}
        status, answer, problem = await raw(admin, "GET", "/api/v1/nope", headers=headers)
        assert status == 404
        echoed = answer["X-Request-ID"]
        assert echoed != request_id
        assert REQUEST_ID_RE.match(echoed)
        assert problem["requestId"] == echoed
        seen.add(echoed)
    assert len(seen) == 6  # a fresh id each time
    status, answer, _ = await raw(admin, "GET", "/healthz")
    assert REQUEST_ID_RE.match(answer["X-Request-ID"])


async def test_request_id_in_the_audit_event(admin: Api, db: asyncpg.Connection) -> None:
    status, headers, _ = await raw(
        admin,
        "POST",
        "/api/v1/accounts",
        msgspec.json.encode({"name": "Acme"}),
        {"X-Request-ID": "req-audit-42"},
    )
    assert status == 200
    assert headers["X-Request-ID"] == "req-audit-42"
    status, body = await admin.get("/api/v1/events?action=account.created")
    assert status == 200, body
    [event] = body["events"]
    assert event["requestId"] == "req-audit-42"
    assert event["account"] == "Acme"
    stored = await db.fetchval(
        "SELECT request_id FROM events WHERE action = 'account.created' AND target = 'Acme'"
    )
    assert stored == "req-audit-42"

    # Without a usable id, the generated one is the one recorded.
    status, headers, _ = await raw(
        admin,
        "POST",
        "/api/v1/accounts/Acme/virtual-accounts",
        msgspec.json.encode({"name": "Lab"}),
        {"X-Request-ID": "not sane!"},
    )
    assert status == 200
    stored = await db.fetchval(
        "SELECT request_id FROM events WHERE action = 'virtual_account.created'"
    )
    assert stored == headers["X-Request-ID"]


# --- health and readiness ------------------------------------------------------------------


async def test_healthz_and_readyz(anon: Api) -> None:
    status, headers, body = await raw(anon, "GET", "/healthz")
    assert status == 200
    assert body == {"status": "ok"}
    status, headers, body = await raw(anon, "GET", "/readyz")
    assert status == 200, body
    assert body == {"status": "ready"}
    assert headers["Content-Type"].startswith("application/json")


@pytest.fixture
def fresh_runtime(settings: Settings, fresh_db: str) -> Runtime:
    unmigrated = msgspec.structs.replace(
        settings, database=DatabaseSettings(dsn=fresh_db, pool_min_size=1, pool_max_size=2)
    )
    return load_runtime(unmigrated, fresh_db)


async def test_readyz_503_when_the_schema_is_behind(
    aiohttp_client: AiohttpClient, fresh_runtime: Runtime, fresh_db: str
) -> None:
    api = Api(await aiohttp_client(create_app(fresh_runtime)))
    status, _, body = await raw(api, "GET", "/readyz")
    assert status == 503, body
    assert body == {"status": "unavailable", "reason": "schema"}
    # The process is up all the same.
    status, _, body = await raw(api, "GET", "/healthz")
    assert status == 200
    # Once migrated, the same app is ready.
    conn = await asyncpg.connect(fresh_db)
    try:
        await migrate(conn, load_migrations(migrations_dir()))
    finally:
        await conn.close()
    status, _, body = await raw(api, "GET", "/readyz")
    assert status == 200, body
    assert body == {"status": "ready"}


async def test_readyz_503_when_the_schema_is_newer(anon: Api, db: asyncpg.Connection) -> None:
    await db.execute(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES (999, 'future', 'x')"
    )
    status, _, body = await raw(anon, "GET", "/readyz")
    assert status == 503, body
    assert body == {"status": "unavailable", "reason": "schema"}


async def test_readyz_tells_no_database_details(
    aiohttp_client: AiohttpClient, anon: Api, db_dsn: str, pg_server: str
) -> None:
    """Unauthenticated callers learn that the database is down, not where or who it is."""
    assert (await raw(anon, "GET", "/readyz"))[0] == 200
    name = urlsplit(db_dsn).path.lstrip("/")
    conn = await asyncpg.connect(pg_server)
    try:
        await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await conn.close()
    status, _, body = await raw(anon, "GET", "/readyz")
    assert status == 503, body
    assert body == {"status": "unavailable", "reason": "database"}


# --- the OpenAPI document ------------------------------------------------------------------


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


async def test_openapi_document(anon: Api) -> None:
    documents = []
    for path in ("/api/v1/openapi.json", "/backend/api/v1/openapi.json"):
        status, headers, document = await raw(anon, "GET", path)
        assert status == 200, document
        assert headers["Content-Type"].startswith("application/json")
        documents.append(document)
    assert documents[0] == documents[1]
    document = documents[0]

    assert re.match(r"^3\.1\.\d+$", document["openapi"])
    assert document["info"]["title"]
    assert document["info"]["version"]
    schemas = document["components"]["schemas"]
    paths = document["paths"]

    missing = []
    operation_ids = []
    for route in ROUTES:
        for path in full_paths(route):
            operation = paths.get(path, {}).get(route.method.lower())
            if operation is None:
                missing.append(f"{route.method} {path}")
                continue
            operation_ids.append(operation["operationId"])
            assert str(route.status) in operation["responses"], path
            assert ("requestBody" in operation) == (route.body is not None), path
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), path
            assert ("security" in operation) == (not route.public), path
    assert not missing, f"routes missing from the OpenAPI document: {missing}"
    assert len(operation_ids) == len(set(operation_ids)), "operationIds are not unique"
    assert {p.removeprefix("/backend") for p in paths if p.startswith("/backend/api/")} == {
        p for p in paths if p.startswith("/api/")
    }

    refs = set(_refs(document))
    assert refs, "the document references no schema"
    prefix = "#/components/schemas/"
    unresolved = sorted(
        r for r in refs if not r.startswith(prefix) or r[len(prefix) :] not in schemas
    )
    assert not unresolved, unresolved

    # The schemas are the wire types: camelCase names, unknown fields refused.
    create = schemas["AccountCreate"]
    assert {"name", "description", "exportControlledAllowed"} <= set(create["properties"])
    assert "name" in create["required"]
    assert create.get("additionalProperties") is False
    problem = schemas["Problem"]
    assert {"type", "title", "status", "detail", "field"} <= set(problem["properties"])
