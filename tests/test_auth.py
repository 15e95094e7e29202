"""Authentication: the client credentials and password grants."""

from __future__ import annotations

import base64
import itertools

import asyncpg
import msgspec

from tests.conftest import Api, Credentials
from tests.helpers.auth import TOKEN_PATHS, assert_problem, make_account, raw

# --- client credentials --------------------------------------------------------------------


async def test_client_credentials_grant(anon: Api, system_admin: Credentials) -> None:
    tokens = set()
    for path in TOKEN_PATHS:
        status, headers, body = await raw(
            anon,
            "POST",
            path,
            json={
                "grant_type": "client_credentials",
                "client_id": system_admin.client_id,
                "client_secret": system_admin.client_secret,
            },
        )
        assert status == 200, body
        assert set(body) == {"access_token", "token_type", "expires_in"}
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 3600
        assert len(body["access_token"]) >= 32
        assert headers["Cache-Control"] == "no-store"
        tokens.add(body["access_token"])
        # The token works.
        status, accounts = await anon.as_token(body["access_token"]).get("/api/v1/accounts")
        assert status == 200, accounts
        assert accounts == {"accounts": []}
    assert len(tokens) == 2  # each grant gets its own token

    # The same as a form (application/x-www-form-urlencoded), as OAuth clients send it.
    for path in TOKEN_PATHS:
        status, _, body = await raw(
            anon,
            "POST",
            path,
            form={
                "grant_type": "client_credentials",
                "client_id": system_admin.client_id,
                "client_secret": system_admin.client_secret,
            },
        )
        assert status == 200, body
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 3600
        status, _ = await anon.as_token(body["access_token"]).get("/backend/api/v1/accounts")
        assert status == 200


async def test_wrong_secret_and_unknown_client_look_the_same(
    anon: Api, system_admin: Credentials
) -> None:
    wrong_secret = {
        "grant_type": "client_credentials",
        "client_id": system_admin.client_id,
        "client_secret": system_admin.client_secret + "x",
    }
    unknown_client = {
        "grant_type": "client_credentials",
        "client_id": "sat-0000000000000000",
        "client_secret": system_admin.client_secret,
    }
    answers = []
    for path, body in itertools.product(TOKEN_PATHS, (wrong_secret, unknown_client)):
        status, headers, problem = await raw(anon, "POST", path, json=body)
        # RFC 6749 section 5.2: a client that fails to authenticate is invalid_client, 401.
        assert status == 401, problem
        assert_problem(headers, problem, 401)
        assert problem["error"] == "invalid_client"
        assert headers["WWW-Authenticate"].startswith("Basic")
        assert "access_token" not in problem
        problem.pop("requestId", None)
        problem.pop("instance", None)
        answers.append(problem)
    assert all(answer == answers[0] for answer in answers)
    assert system_admin.client_id not in msgspec.json.encode(answers[0]).decode()


async def test_client_credentials_needs_id_and_secret(anon: Api) -> None:
    status, headers, body = await raw(
        anon, "POST", "/backend/oauth/token", json={"grant_type": "client_credentials"}
    )
    assert status == 400, body
    assert_problem(headers, body, 400)
    assert body["error"] == "invalid_request"
    status, headers, body = await raw(
        anon,
        "POST",
        "/backend/oauth/token",
        json={"grant_type": "authorization_code", "client_id": "a", "client_secret": "b"},
    )
    assert status == 400, body
    assert_problem(headers, body, 400, field="grant_type")
    assert body["error"] == "unsupported_grant_type"


async def test_client_credentials_in_a_basic_authorization_header(
    anon: Api, system_admin: Credentials
) -> None:
    """RFC 6749 section 2.3.1: clients with a secret may authenticate with HTTP Basic."""
    pair = base64.b64encode(
        f"{system_admin.client_id}:{system_admin.client_secret}".encode()
    ).decode()
    status, _, body = await raw(
        anon,
        "POST",
        "/backend/oauth/token",
        json={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {pair}"},
    )
    assert status == 200, body
    assert body["token_type"] == "Bearer"
    wrong = base64.b64encode(f"{system_admin.client_id}:nope".encode()).decode()
    status, _, body = await raw(
        anon,
        "POST",
        "/backend/oauth/token",
        json={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {wrong}"},
    )
    assert status == 401
    assert body["error"] == "invalid_client"


# --- password grant ------------------------------------------------------------------------


async def test_password_guessing_is_slowed_down(admin: Api, anon: Api) -> None:
    status, body = await admin.post(
        "/api/v1/users",
        {"username": "carol", "password": "a long enough password", "role": "system-admin"},
    )
    assert status == 200, body
    guess = {"grant_type": "password", "username": "carol", "password": "wrong guess!"}
    for _ in range(5):
        status, _, body = await raw(anon, "POST", "/backend/oauth/token", json=guess)
        assert status == 400, body
        assert body["error"] == "invalid_grant"
    # Even the right password must wait now: a guesser cannot tell it was right.
    right = guess | {"password": "a long enough password"}
    status, headers, body = await raw(anon, "POST", "/backend/oauth/token", json=right)
    assert status == 429, body
    assert int(headers["Retry-After"]) >= 1
    assert_problem(headers, body, 429)
    # Other users are not held up.
    status, body = await admin.post(
        "/api/v1/users",
        {"username": "dave", "password": "another long password", "role": "system-admin"},
    )
    assert status == 200, body
    dave = {"grant_type": "password", "username": "dave", "password": "another long password"}
    status, _, body = await raw(anon, "POST", "/backend/oauth/token", json=dave)
    assert status == 200, body


async def test_password_grant_for_a_user(admin: Api, db: asyncpg.Connection) -> None:
    await make_account(admin, "Acme")
    await make_account(admin, "Other")
    password = "correct horse battery staple"
    status, body = await admin.post(
        "/api/v1/users",
        {"username": "alice", "password": password, "role": "account-viewer", "accounts": ["Acme"]},
    )
    assert status == 200, body
    assert body["item"]["name"] == "alice"
    assert body["item"]["role"] == "account-viewer"
    assert body["item"]["accounts"] == ["Acme"]
    assert password not in msgspec.json.encode(body).decode()

    stored = await db.fetchval("SELECT password_hash FROM principals WHERE login = 'alice'")
    assert stored.startswith("$argon2")
    assert password not in stored

    for path in TOKEN_PATHS:
        status, _, token = await raw(
            admin,
            "POST",
            path,
            json={"grant_type": "password", "username": "alice", "password": password},
        )
        assert status == 200, token
        assert token["token_type"] == "Bearer"
        assert token["expires_in"] == 3600
        alice = admin.as_token(token["access_token"])
        status, accounts = await alice.post("/api/v1/upstream_satellites/accounts")
        assert status == 200, accounts
        assert [a["name"] for a in accounts["accounts"]] == ["Acme"]

    # As a form, the way OAuth clients send it.
    status, _, token = await raw(
        admin,
        "POST",
        "/oauth/token",
        form={"grant_type": "password", "username": "alice", "password": password},
    )
    assert status == 200, token

    # A password shorter than 12 characters is refused.
    status, body = await admin.post(
        "/api/v1/users",
        {"username": "bob", "password": "elevenchars", "role": "system-admin"},
    )
    assert status == 422, body
    assert body["field"] == "password"
    assert "12" in body["detail"]
    assert await db.fetchval("SELECT count(*) FROM principals WHERE login = 'bob'") == 0
    # Twelve is enough.
    status, body = await admin.post(
        "/api/v1/users",
        {"username": "bob", "password": "twelve chars", "role": "system-admin"},
    )
    assert status == 200, body


async def test_wrong_password_and_unknown_user_refused(admin: Api) -> None:
    status, body = await admin.post(
        "/api/v1/users",
        {"username": "carol", "password": "a long enough password", "role": "system-admin"},
    )
    assert status == 200, body
    answers = []
    for username, password in (("carol", "a long enough passworD"), ("nobody", "whatever123456")):
        status, headers, problem = await raw(
            admin,
            "POST",
            "/oauth/token",
            json={"grant_type": "password", "username": username, "password": password},
        )
        assert status == 400, problem
        assert_problem(headers, problem, 400)
        assert problem["error"] == "invalid_grant"
        problem.pop("requestId", None)
        answers.append(problem)
    assert answers[0] == answers[1]


async def test_password_change_and_disabling_revoke_user_tokens(admin: Api) -> None:
    status, body = await admin.post(
        "/api/v1/users",
        {"username": "dave", "password": "first password!", "role": "system-admin"},
    )
    assert status == 200, body
    status, _, token = await raw(
        admin,
        "POST",
        "/oauth/token",
        json={"grant_type": "password", "username": "dave", "password": "first password!"},
    )
    assert status == 200, token
    dave = admin.as_token(token["access_token"])
    assert (await dave.get("/api/v1/accounts"))[0] == 200

    status, body = await admin.post("/api/v1/users/dave/password", {"password": "second password"})
    assert status == 200, body
    assert (await dave.get("/api/v1/accounts"))[0] == 401
    for password, expected in (("first password!", 400), ("second password", 200)):
        status, _, _ = await raw(
            admin,
            "POST",
            "/oauth/token",
            json={"grant_type": "password", "username": "dave", "password": password},
        )
        assert status == expected
