"""Sign-in, the session cookie, CSRF, expiry and sign-out, over plain HTTP."""

from __future__ import annotations

import datetime as dt
import re
import ssl
from collections.abc import Callable
from http.cookies import SimpleCookie

import aiohttp
import asyncpg
import trustme
from aiohttp.test_utils import TestServer

from satellite.api.context import Services
from satellite.scheduler import jobs
from satellite.wiring import Runtime, create_app
from tests.conftest import Api
from tests.helpers.accounts import create_account
from tests.helpers.console import Visitor, create_user
from tests.helpers.jobs import at, now

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def test_a_visitor_not_signed_in_is_sent_to_the_sign_in_page(
    visitors: Callable[..., Visitor],
) -> None:
    visitor = visitors()
    for path in ("/", "/accounts", "/accounts/Acme"):
        page = await visitor.get(path, follow=False)
        assert page.status == 303, path
        assert page.headers["Location"] == "/sign-in"
    form = await visitor.get("/sign-in")
    assert form.status == 200
    assert 'form id="sign-in" class="stack" method="post" action="/sign-in"' in form.text
    for field in ('name="username"', 'name="password"', 'name="csrf"', 'type="submit"'):
        assert field in form.text


async def test_sign_in_wrong_then_right(
    admin: Api, visitors: Callable[..., Visitor], db: asyncpg.Connection
) -> None:
    await create_account(admin, "Acme")
    password = await create_user(admin, "alice", "account-viewer", ["Acme"])
    visitor = visitors()

    for username, guess in (
        ("alice", "not the password"),
        ("nobody", password),
        ("alice", password + "x" * 2000),
        ("a" * 5000, password),
    ):
        wrong = await visitor.sign_in(username, guess, follow=False)
        assert wrong.status == 401
        assert "The user name or password is wrong." in wrong.text
        assert 'class="error"' in wrong.text
    assert visitor.cookie("satellite_session") is None
    assert await db.fetchval("SELECT count(*) FROM console_sessions") == 0

    right = await visitor.sign_in("alice", password, follow=False)
    assert right.status == 303
    assert right.headers["Location"] == "/accounts"
    cookie = SimpleCookie(right.headers["Set-Cookie"])["satellite_session"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    assert not cookie["secure"]  # plain HTTP here; over HTTPS it is Secure (below)
    # The database holds the id's digest, never the id.
    stored = await db.fetch("SELECT session_digest, csrf_secret FROM console_sessions")
    assert len(stored) == 1
    assert cookie.value.encode() not in stored[0]["session_digest"]

    page = await visitor.get("/")
    assert page.url.path == "/accounts"
    assert "<h1>Accounts</h1>" in page.text
    assert '<table id="accounts">' in page.text
    assert '<td><a href="/accounts/Acme">Acme</a></td>' in page.text
    assert 'form id="sign-out" method="post" action="/sign-out"' in page.text
    assert '<span class="user">alice</span>' in page.text


async def test_the_session_cookie_is_secure_over_https(admin: Api, runtime: Runtime) -> None:
    """Served over HTTPS (a test CA's certificate), the cookies carry Secure."""
    password = await create_user(admin, "alice", "system-admin", [])
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    server = TestServer(create_app(runtime), host="127.0.0.1", scheme="https")
    await server.start_server(ssl=server_context)
    jar = aiohttp.CookieJar(unsafe=True)
    try:
        async with aiohttp.ClientSession(
            cookie_jar=jar, connector=aiohttp.TCPConnector(ssl=client_context)
        ) as session:
            async with session.get(server.make_url("/sign-in")) as response:
                csrf = _CSRF.search(await response.text())
                sign_in_cookie = SimpleCookie(response.headers["Set-Cookie"])
            assert csrf
            async with session.post(
                server.make_url("/sign-in"),
                data={"username": "alice", "password": password, "csrf": csrf.group(1)},
                allow_redirects=False,
            ) as response:
                assert response.status == 303
                session_cookie = SimpleCookie(response.headers["Set-Cookie"])
    finally:
        await server.close()
    assert sign_in_cookie["satellite_csrf"]["secure"] is True
    assert session_cookie["satellite_session"]["secure"] is True
    assert session_cookie["satellite_session"]["httponly"] is True


async def test_a_form_without_the_right_csrf_token_is_refused(
    admin: Api, visitors: Callable[..., Visitor], db: asyncpg.Connection
) -> None:
    password = await create_user(admin, "alice", "system-admin", [])
    visitor = visitors()
    # The sign-in form itself: a token that is not the one its cookie holds.
    form = await visitor.get("/sign-in")
    forged = await visitor.post(
        "/sign-in", {"username": "alice", "password": password, "csrf": form.csrf + "x"}
    )
    assert forged.status == 403
    assert visitor.cookie("satellite_session") is None

    await visitor.sign_in("alice", password)
    page = await visitor.get("/accounts")
    # The right token but its last character (another one than it is: "A" would be the
    # same one time in 64).
    other = page.csrf[:-1] + ("B" if page.csrf.endswith("A") else "A")
    for form_data in ({}, {"csrf": ""}, {"csrf": other}):
        refused = await visitor.post("/sign-out", form_data, follow=False)
        assert refused.status == 403, form_data
    assert await db.fetchval("SELECT count(*) FROM console_sessions") == 1
    assert (await visitor.get("/accounts")).status == 200


async def test_sign_out_ends_the_session_on_the_server(
    admin: Api, visitors: Callable[..., Visitor], db: asyncpg.Connection
) -> None:
    password = await create_user(admin, "alice", "system-admin", [])
    visitor = visitors()
    await visitor.sign_in("alice", password)
    session_id = visitor.cookie("satellite_session")
    assert session_id
    page = await visitor.get("/accounts")
    out = await visitor.post("/sign-out", {"csrf": page.csrf}, follow=False)
    assert out.status == 303
    assert out.headers["Location"] == "/sign-in"
    assert await db.fetchval("SELECT count(*) FROM console_sessions") == 0
    # The old cookie, replayed, signs nobody in.
    replay = visitors()
    replay.jar.update_cookies({"satellite_session": session_id}, replay.base)
    assert (await replay.get("/accounts", follow=False)).headers["Location"] == "/sign-in"


async def test_idle_and_old_sessions_end(
    admin: Api, visitors: Callable[..., Visitor], db: asyncpg.Connection
) -> None:
    password = await create_user(admin, "alice", "system-admin", [])
    idle, old, busy = visitors(), visitors(), visitors()
    for visitor in (idle, old, busy):
        await visitor.sign_in("alice", password)
    ids = await db.fetch("SELECT id FROM console_sessions ORDER BY id")
    # Idle past the default 30 minutes; signed in past the default 12 hours yet busy.
    await db.execute(
        "UPDATE console_sessions SET last_seen_at = now() - interval '31 minutes' WHERE id = $1",
        ids[0]["id"],
    )
    await db.execute(
        "UPDATE console_sessions SET created_at = now() - interval '12 hours 1 minute' "
        "WHERE id = $1",
        ids[1]["id"],
    )
    await db.execute(
        "UPDATE console_sessions SET last_seen_at = now() - interval '29 minutes', "
        "created_at = now() - interval '11 hours 59 minutes' WHERE id = $1",
        ids[2]["id"],
    )
    for visitor in (idle, old):
        assert (await visitor.get("/accounts", follow=False)).headers["Location"] == "/sign-in"
    assert (await busy.get("/accounts", follow=False)).status == 200
    left = await db.fetch(
        "SELECT id, last_seen_at > now() - interval '1 minute' AS seen FROM console_sessions"
    )
    assert [(r["id"], r["seen"]) for r in left] == [(ids[2]["id"], True)]


async def test_a_disabled_user_or_a_new_password_signs_the_user_out(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    for name in ("alice", "bob"):
        await create_user(admin, name, "system-admin", [])
    alice, bob = visitors(), visitors()
    await alice.sign_in("alice", "a long password!")
    await bob.sign_in("bob", "a long password!")
    status, body = await admin.post("/api/v1/users/alice/disable")
    assert status == 200, body
    status, body = await admin.post("/api/v1/users/bob/password", {"password": "another password"})
    assert status == 200, body
    for visitor in (alice, bob):
        assert (await visitor.get("/accounts", follow=False)).headers["Location"] == "/sign-in"
    assert (await alice.sign_in("alice", "a long password!")).status == 401


async def test_the_password_limits_of_the_api_apply(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    password = await create_user(admin, "carol", "system-admin", [])
    visitor = visitors()
    for _ in range(5):  # limits.password.failures_per_name
        assert (await visitor.sign_in("carol", "wrong guess!")).status == 401
    slowed = await visitor.sign_in("carol", password, follow=False)
    assert slowed.status == 429
    assert int(slowed.headers["Retry-After"]) > 0
    assert 'class="error"' in slowed.text
    assert visitor.cookie("satellite_session") is None
    # The API's grant counts the same failures.
    status, _ = await admin.post(
        "/backend/oauth/token",
        {"grant_type": "password", "username": "carol", "password": password},
    )
    assert status == 429


async def test_the_scheduler_forgets_sessions_that_ended_without_a_sign_out(
    admin: Api, visitors: Callable[..., Visitor], services: Services, db: asyncpg.Connection
) -> None:
    password = await create_user(admin, "ann", "system-admin", [])
    early, late = visitors(), visitors()
    await early.sign_in("ann", password)
    await late.sign_in("ann", password)
    # The early one was last seen 40 minutes ago (idle after 30), the late one now.
    await db.execute(
        "UPDATE console_sessions SET last_seen_at = now() - interval '40 minutes' "
        "WHERE id = (SELECT min(id) FROM console_sessions)"
    )
    report = await jobs.forget_sessions(services, at(now()))
    assert report is not None
    assert report.counts == {"forgotten": 1}
    assert await db.fetchval("SELECT count(*) FROM console_sessions") == 1
    assert (await late.get("/accounts")).url.path == "/accounts"
    assert (await early.get("/accounts")).url.path == "/sign-in"
    # Twelve hours after sign-in the other ends too, however busy.
    report = await jobs.forget_sessions(services, at(now() + dt.timedelta(hours=12)))
    assert report is not None
    assert report.counts == {"forgotten": 1}
    assert await db.fetchval("SELECT count(*) FROM console_sessions") == 0
