"""Tokens after they are issued: storage, expiry and revocation, disabled clients and users,
the Authorization header, listing clients."""

from __future__ import annotations

import hashlib
import itertools

import asyncpg
import msgspec
import pytest

from tests.conftest import Api, Credentials, login
from tests.helpers.auth import assert_problem, make_account, make_client, raw

# --- token storage, expiry, revocation -----------------------------------------------------


async def test_tokens_and_secrets_stored_hashed(admin: Api, db: asyncpg.Connection) -> None:
    assert admin.token is not None
    digest = hashlib.sha256(admin.token.encode()).digest()
    row = await db.fetchrow(
        "SELECT expires_at - created_at AS ttl FROM access_tokens WHERE token_digest = $1", digest
    )
    assert row is not None
    assert row["ttl"].total_seconds() == pytest.approx(3600, abs=5)
    # The token itself appears nowhere in the table, in any column.
    dump = await db.fetch("SELECT t::text AS text FROM access_tokens t")
    assert dump
    for record in dump:
        assert admin.token not in record["text"]
        assert admin.token.encode().hex() not in record["text"]

    # Client secrets: SHA-256 digest only.
    creds = await make_client(admin, "system-admin", [])
    row = await db.fetchrow(
        "SELECT secret_digest, p::text AS text FROM principals p WHERE login = $1",
        creds.client_id,
    )
    assert row is not None
    assert bytes(row["secret_digest"]) == hashlib.sha256(creds.client_secret.encode()).digest()
    assert creds.client_secret not in row["text"]


async def test_expired_token_refused(admin: Api, db: asyncpg.Connection) -> None:
    assert admin.token is not None
    assert (await admin.get("/api/v1/accounts"))[0] == 200
    updated = await db.execute(
        "UPDATE access_tokens SET expires_at = now() - interval '1 second' WHERE token_digest = $1",
        hashlib.sha256(admin.token.encode()).digest(),
    )
    assert updated == "UPDATE 1"
    status, headers, body = await raw(
        admin, "GET", "/api/v1/accounts", headers={"Authorization": f"Bearer {admin.token}"}
    )
    assert status == 401, body
    # RFC 6750: a token was presented and is no good.
    assert headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert_problem(headers, body, 401)


async def test_revoke_own_token(anon: Api, system_admin: Credentials) -> None:
    for path in ("/backend/oauth/revoke", "/oauth/revoke"):
        caller = await login(anon, system_admin)
        status, body = await caller.post(path, {"token": caller.token})
        assert status == 200, body
        status, body = await caller.get("/api/v1/accounts")
        assert status == 401, body
    # Revoking one token leaves the principal's other tokens alone.
    first = await login(anon, system_admin)
    second = await login(anon, system_admin)
    status, _ = await first.post("/oauth/revoke", {"token": second.token})
    assert status == 200
    assert (await first.get("/api/v1/accounts"))[0] == 200
    assert (await second.get("/api/v1/accounts"))[0] == 401

    # Revocation as a form, with the RFC 7009 hint.
    caller = await login(anon, system_admin)
    assert caller.token is not None
    status, _, body = await raw(
        caller,
        "POST",
        "/oauth/revoke",
        form={"token": caller.token, "token_type_hint": "access_token"},
        headers={"Authorization": f"Bearer {caller.token}"},
    )
    assert status == 200, body
    assert (await caller.get("/api/v1/accounts"))[0] == 401


async def test_revoke_unknown_token_or_unauthenticated(anon: Api, admin: Api) -> None:
    status, body = await admin.post("/backend/oauth/revoke", {"token": "no-such-token"})
    assert status == 200, body  # RFC 7009: not an error
    assert (await admin.get("/api/v1/accounts"))[0] == 200
    status, body = await anon.post("/backend/oauth/revoke", {"token": admin.token})
    assert status == 401, body
    assert (await admin.get("/api/v1/accounts"))[0] == 200


async def test_non_admin_cannot_revoke_another_principals_token(admin: Api) -> None:
    await make_account(admin, "Acme")
    mallory = await login(admin, await make_client(admin, "account-admin", ["Acme"]))
    victim = await login(admin, await make_client(admin, "account-admin", ["Acme"]))
    status, body = await mallory.post("/backend/oauth/revoke", {"token": victim.token})
    assert status == 200, body  # silently ignored, as RFC 7009 wants
    status, body = await victim.get("/api/v1/accounts/Acme/virtual-accounts")
    assert status == 200, body
    # The system admin's own token is not revocable by mallory either.
    status, body = await mallory.post("/backend/oauth/revoke", {"token": admin.token})
    assert status == 200, body
    assert (await admin.get("/api/v1/accounts"))[0] == 200
    # A system admin may revoke anyone's.
    status, body = await admin.post("/backend/oauth/revoke", {"token": victim.token})
    assert status == 200, body
    assert (await victim.get("/api/v1/accounts/Acme/virtual-accounts"))[0] == 401


async def test_revocation_is_audited(admin: Api, db: asyncpg.Connection) -> None:
    await make_account(admin, "Acme")
    creds = await make_client(admin, "account-viewer", ["Acme"])
    viewer = await login(admin, creds)
    status, _ = await viewer.post("/oauth/revoke", {"token": viewer.token})
    assert status == 200
    row = await db.fetchrow(
        "SELECT actor, target FROM events WHERE action = 'auth.token_revoked' ORDER BY id DESC"
    )
    assert row is not None
    assert row["actor"] == f"client:{creds.client_id}"
    assert row["target"] == creds.client_id


# --- disabling -----------------------------------------------------------------------------


async def test_disabling_a_client_revokes_tokens_and_refuses_grants(
    admin: Api, db: asyncpg.Connection
) -> None:
    await make_account(admin, "Acme")
    creds = await make_client(admin, "account-admin", ["Acme"])
    client = await login(admin, creds)
    assert (await client.get("/api/v1/accounts/Acme/virtual-accounts"))[0] == 200

    status, body = await admin.post(f"/api/v1/clients/{creds.client_id}/disable")
    assert status == 200, body
    assert body["item"]["name"] == creds.client_id
    assert body["item"]["disabled"] is True

    status, body = await client.get("/api/v1/accounts/Acme/virtual-accounts")
    assert status == 401, body
    live = await db.fetchval(
        "SELECT count(*) FROM access_tokens t JOIN principals p ON p.id = t.principal_id "
        "WHERE p.login = $1 AND t.revoked_at IS NULL",
        creds.client_id,
    )
    assert live == 0

    status, _, problem = await raw(
        admin,
        "POST",
        "/backend/oauth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
        },
    )
    assert status == 401, problem
    assert problem["error"] == "invalid_client"

    status, body = await admin.get("/api/v1/clients")
    assert status == 200
    [listed] = [c for c in body["items"] if c["name"] == creds.client_id]
    assert listed["disabled"] is True

    # Disabling a user revokes its tokens and refuses new grants.
    password = "a long enough password"
    status, body = await admin.post(
        "/api/v1/users", {"username": "erin", "password": password, "role": "system-admin"}
    )
    assert status == 200, body
    grant = {"grant_type": "password", "username": "erin", "password": password}
    status, _, token = await raw(admin, "POST", "/oauth/token", json=grant)
    assert status == 200
    erin = admin.as_token(token["access_token"])
    status, body = await admin.post("/api/v1/users/erin/disable", {})
    assert status == 200, body
    assert body["item"]["disabled"] is True
    assert (await erin.get("/api/v1/accounts"))[0] == 401
    status, _, problem = await raw(admin, "POST", "/oauth/token", json=grant)
    assert status == 400
    assert problem["error"] == "invalid_grant"


async def test_last_system_admin_cannot_be_disabled(admin: Api, system_admin: Credentials) -> None:
    status, body = await admin.post(f"/api/v1/clients/{system_admin.client_id}/disable")
    assert status == 409, body
    assert body["status"] == 409
    assert (await admin.get("/api/v1/accounts"))[0] == 200

    # With a second system admin, the first may go; then the second is the last one.
    second_creds = await make_client(admin, "system-admin", [])
    second = await login(admin, second_creds)
    status, body = await second.post(f"/api/v1/clients/{system_admin.client_id}/disable")
    assert status == 200, body
    assert (await admin.get("/api/v1/accounts"))[0] == 401
    status, body = await second.post(f"/api/v1/clients/{second_creds.client_id}/disable")
    assert status == 409, body
    assert (await second.get("/api/v1/accounts"))[0] == 200


async def test_only_a_system_admin_disables(admin: Api) -> None:
    await make_account(admin, "Acme")
    target = await make_client(admin, "account-viewer", ["Acme"])
    account_admin = await login(admin, await make_client(admin, "account-admin", ["Acme"]))
    status, body = await account_admin.post(f"/api/v1/clients/{target.client_id}/disable")
    assert status == 403, body
    viewer = await login(admin, target)
    assert (await viewer.get("/api/v1/accounts"))[0] == 200
    status, body = await admin.post("/api/v1/clients/sat-ffffffffffffffff/disable")
    assert status == 404, body


# --- the Authorization header --------------------------------------------------------------


BAD_AUTHORIZATION = [
    None,
    "",
    "Bearer",
    "Bearer ",
    "Basic dXNlcjpwYXNz",
    "Token abc",
    "Bearer not-a-token",
    "Bearer " + "x" * 600,
]


async def test_missing_or_malformed_authorization(admin: Api, db: asyncpg.Connection) -> None:
    calls = (
        ("GET", "/api/v1/accounts"),
        ("POST", "/api/v1/upstream_satellites/accounts"),
        ("GET", "/backend/api/v1/clients"),
        ("POST", "/api/v1/accounts"),
    )
    for header, (method, path) in itertools.product(BAD_AUTHORIZATION, calls):
        headers = {} if header is None else {"Authorization": header}
        status, response_headers, body = await raw(
            admin,
            method,
            path,
            json={"name": "Sneaky"} if method == "POST" else None,
            headers=headers,
        )
        assert status == 401, (header, method, path, body)
        assert response_headers["WWW-Authenticate"].startswith("Bearer")
        assert_problem(response_headers, body, 401)
    assert await db.fetchval("SELECT count(*) FROM accounts") == 0
    # The scheme name is case-insensitive (RFC 7235).
    status, _, body = await raw(
        admin, "GET", "/api/v1/accounts", headers={"Authorization": f"bearer {admin.token}"}
    )
    assert status == 200, body


# --- listing clients -----------------------------------------------------------------------


async def test_list_clients_without_secrets(admin: Api, system_admin: Credentials) -> None:
    await make_account(admin, "Acme")
    await make_account(admin, "Other")
    acme = await make_client(admin, "account-admin", ["Acme"])
    other = await make_client(admin, "account-viewer", ["Other"])

    for path in ("/api/v1/clients", "/backend/api/v1/clients"):
        async with admin.client.get(
            path, headers={"Authorization": f"Bearer {admin.token}"}
        ) as response:
            assert response.status == 200
            text = await response.text()
        for secret in (system_admin.client_secret, acme.client_secret, other.client_secret):
            assert secret not in text
        body = msgspec.json.decode(text)
        by_name = {item["name"]: item for item in body["items"]}
        assert set(by_name) == {system_admin.client_id, acme.client_id, other.client_id}
        assert by_name[acme.client_id]["role"] == "account-admin"
        assert by_name[acme.client_id]["accounts"] == ["Acme"]
        assert by_name[other.client_id]["accounts"] == ["Other"]
        assert by_name[system_admin.client_id]["role"] == "system-admin"
        for item in body["items"]:
            assert not {k for k in item if "secret" in k.lower() or "digest" in k.lower()}

    # An account admin sees the clients of its own accounts only.
    acme_admin = await login(admin, acme)
    status, body = await acme_admin.get("/api/v1/clients")
    assert status == 200, body
    assert [item["name"] for item in body["items"]] == [acme.client_id]
