"""Registration tokens through the admin API: create, list again, revoke, stored encrypted."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import asyncpg

from tests.conftest import Api, Credentials, new_client

TOKENS = "/api/v1/accounts/Acme/virtual-accounts/DEFAULT/tokens"


async def create_account(admin: Api, name: str = "Acme", *, export: bool = False) -> None:
    status, body = await admin.post(
        "/api/v1/accounts", {"name": name, "exportControlledAllowed": export}
    )
    assert status == 200, body


async def create_token(api: Api, path: str = TOKENS, **fields: Any) -> dict[str, Any]:
    status, body = await api.post(path, fields)
    assert status == 200, body
    info: dict[str, Any] = body["tokenInfo"]
    return info


async def listed(api: Api, path: str = TOKENS) -> dict[str, dict[str, Any]]:
    """The tokens of a virtual account, by token value."""
    status, body = await api.get(path)
    assert status == 200, body
    return {t["token"]: t for t in body["tokens"]}


async def event_count(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM events"))


def when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def near(a: dt.datetime, b: dt.datetime) -> bool:
    return abs(a - b) < dt.timedelta(minutes=2)


async def test_create_token_answers_with_token_info(admin: Api, system_admin: Credentials) -> None:
    await create_account(admin, export=True)
    status, body = await admin.post(
        TOKENS,
        {
            "description": "UCM cluster 1",
            "expiresAfterDays": 10,
            "exportControlled": "Not Allowed",
            "numberOfUses": 3,
        },
    )
    assert status == 200, body
    info = body["tokenInfo"]
    assert isinstance(info["token"], str)
    assert len(info["token"]) >= 40
    assert info["description"] == "UCM cluster 1"
    assert info["exportControlled"] == "Not Allowed"
    assert info["numberOfUses"] == 3
    assert info["uses"] == 0
    assert info["status"] == "Active"
    assert info["virtualAccount"] == "DEFAULT"
    assert info["createdBy"] == f"client:{system_admin.client_id}"
    now = dt.datetime.now(dt.UTC)
    assert near(when(info["expirationDate"]), now + dt.timedelta(days=10))
    assert near(when(info["createdAt"]), now)


async def test_each_token_is_new(admin: Api) -> None:
    await create_account(admin)
    first = await create_token(admin)
    second = await create_token(admin)
    assert first["token"] != second["token"]


async def test_listing_shows_the_same_token_again(admin: Api) -> None:
    await create_account(admin)
    created = await create_token(admin, description="first", expiresAfterDays=5)
    other = await create_token(admin, description="second")
    status, body = await admin.get(TOKENS)
    assert status == 200, body
    assert [t["token"] for t in body["tokens"]] == [created["token"], other["token"]]
    again = body["tokens"][0]
    for key in ("description", "expirationDate", "exportControlled", "numberOfUses", "status"):
        assert again[key] == created[key], key
    # Tokens of another virtual account are not listed here, nor these there.
    status, _ = await admin.post(
        "/api/v1/accounts/Acme/virtual-accounts", {"name": "Lab", "description": ""}
    )
    assert status == 200
    lab = await listed(admin, "/api/v1/accounts/Acme/virtual-accounts/Lab/tokens")
    assert lab == {}


async def test_token_list_is_not_cached(admin: Api) -> None:
    await create_account(admin)
    await create_token(admin)
    headers = {"Authorization": f"Bearer {admin.token}"}
    async with admin.client.get(TOKENS, headers=headers) as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"


async def test_viewer_lists_tokens_but_cannot_create_or_revoke(
    admin: Api, db: asyncpg.Connection
) -> None:
    await create_account(admin)
    token = (await create_token(admin))["token"]
    viewer = await new_client(admin, "account-viewer", ["Acme"])
    # A token lets its holder register products: a viewer sees which token, not the token.
    (shown,) = list(await listed(viewer))
    assert shown == token[:6] + "…"
    events_before = await event_count(db)
    status, body = await viewer.post(TOKENS, {"description": "x"})
    assert status == 403, body
    status, body = await viewer.post(TOKENS + "/revoke", {"tokens": [token]})
    assert status == 403, body
    assert (await listed(admin))[token]["status"] == "Active"
    assert await db.fetchval("SELECT count(*) FROM registration_tokens") == 1
    assert await event_count(db) == events_before


async def test_tokens_of_another_account_are_404(admin: Api) -> None:
    await create_account(admin, "Acme")
    await create_account(admin, "Globex")
    await create_token(admin)
    outsider = await new_client(admin, "account-admin", ["Globex"])
    status, body = await outsider.get(TOKENS)
    assert status == 404, body
    status, body = await outsider.post(TOKENS, {})
    assert status == 404, body


async def test_revoke_marks_tokens_revoked(admin: Api) -> None:
    await create_account(admin)
    a = (await create_token(admin))["token"]
    b = (await create_token(admin))["token"]
    keep = (await create_token(admin))["token"]
    status, body = await admin.post(TOKENS + "/revoke", {"tokens": [a, b]})
    assert status == 200, body
    assert sorted(t["token"] for t in body["tokens"]) == sorted([a, b])
    assert {t["status"] for t in body["tokens"]} == {"Revoked"}
    statuses = {token: t["status"] for token, t in (await listed(admin)).items()}
    assert statuses == {a: "Revoked", b: "Revoked", keep: "Active"}


async def test_revoking_again_changes_and_records_nothing(
    admin: Api, db: asyncpg.Connection
) -> None:
    await create_account(admin)
    token = (await create_token(admin))["token"]
    assert (await admin.post(TOKENS + "/revoke", {"tokens": [token]}))[0] == 200
    revoked_at = await db.fetchval("SELECT revoked_at FROM registration_tokens")
    before = await event_count(db)
    status, body = await admin.post(TOKENS + "/revoke", {"tokens": [token]})
    assert status == 200, body
    assert body["tokens"][0]["status"] == "Revoked"
    assert await db.fetchval("SELECT revoked_at FROM registration_tokens") == revoked_at
    assert await event_count(db) == before


async def test_revoke_with_an_unknown_token_revokes_nothing(
    admin: Api, db: asyncpg.Connection
) -> None:
    await create_account(admin)
    a = (await create_token(admin))["token"]
    b = (await create_token(admin))["token"]
    events_before = await event_count(db)
    status, body = await admin.post(TOKENS + "/revoke", {"tokens": [a, "no-such-token", b]})
    assert status == 404, body
    assert body["field"] == "tokens[1]"
    assert {t["status"] for t in (await listed(admin)).values()} == {"Active"}
    assert (
        await db.fetchval("SELECT count(*) FROM registration_tokens WHERE revoked_at IS NULL") == 2
    )
    assert await event_count(db) == events_before


async def test_revoke_of_another_virtual_accounts_token_is_404(admin: Api) -> None:
    await create_account(admin)
    status, _ = await admin.post("/api/v1/accounts/Acme/virtual-accounts", {"name": "Lab"})
    assert status == 200
    lab_tokens = "/api/v1/accounts/Acme/virtual-accounts/Lab/tokens"
    lab_token = (await create_token(admin, lab_tokens))["token"]
    status, body = await admin.post(TOKENS + "/revoke", {"tokens": [lab_token]})
    assert status == 404, body
    assert (await listed(admin, lab_tokens))[lab_token]["status"] == "Active"


async def test_revoke_refuses_an_empty_list(admin: Api) -> None:
    await create_account(admin)
    status, body = await admin.post(TOKENS + "/revoke", {"tokens": []})
    assert status == 422, body
    assert body["field"] == "tokens"


async def test_token_is_stored_encrypted_and_found_by_its_digest(
    admin: Api, db: asyncpg.Connection
) -> None:
    await create_account(admin)
    token = (await create_token(admin, description="stored"))["token"]
    row = await db.fetchrow("SELECT token_digest, token_ciphertext FROM registration_tokens")
    assert row is not None
    plain = token.encode()
    secret = token.split(".")[0].encode()
    assert plain not in row["token_ciphertext"]
    assert secret not in row["token_ciphertext"]
    assert bytes(row["token_digest"]) == hashlib.sha256(plain).digest()
    # Nowhere in the row, nor in the audit log, in plain text or as hex.
    row_text = await db.fetchval("SELECT t::text FROM registration_tokens t")
    events_text = await db.fetchval("SELECT string_agg(e::text, ' ') FROM events e")
    for text in (row_text, events_text):
        assert token not in text
        assert secret.decode() not in text
        assert plain.hex() not in text


async def test_expired_token_is_listed_as_expired(admin: Api, db: asyncpg.Connection) -> None:
    await create_account(admin)
    old = (await create_token(admin, description="old"))["token"]
    fresh = (await create_token(admin, description="fresh"))["token"]
    await db.execute(
        "UPDATE registration_tokens SET expires_at = now() - interval '1 minute' "
        "WHERE description = 'old'"
    )
    statuses = {token: t["status"] for token, t in (await listed(admin)).items()}
    assert statuses == {old: "Expired", fresh: "Active"}


async def test_used_up_token_is_listed_as_used(admin: Api, db: asyncpg.Connection) -> None:
    await create_account(admin)
    token = (await create_token(admin, numberOfUses=2))["token"]
    await db.execute("UPDATE registration_tokens SET uses = 2")
    assert (await listed(admin))[token]["status"] == "Used"


async def test_export_controlled_allowed_is_refused_without_the_account_flag(
    admin: Api, db: asyncpg.Connection
) -> None:
    await create_account(admin, export=False)
    events_before = await event_count(db)
    status, body = await admin.post(TOKENS, {"exportControlled": "Allowed"})
    assert status == 422, body
    assert body["field"] == "exportControlled"
    assert "export" in body["detail"]
    assert await db.fetchval("SELECT count(*) FROM registration_tokens") == 0
    assert await event_count(db) == events_before
    info = await create_token(admin, exportControlled="Not Allowed")
    assert info["exportControlled"] == "Not Allowed"


async def test_export_controlled_allowed_for_an_allowed_account(admin: Api) -> None:
    await create_account(admin, export=True)
    assert (await create_token(admin, exportControlled="Allowed"))["exportControlled"] == "Allowed"
    no = await create_token(admin, exportControlled="Not Allowed")
    assert no["exportControlled"] == "Not Allowed"


async def test_omitted_export_controlled_follows_the_account(admin: Api) -> None:
    await create_account(admin, "Acme", export=True)
    await create_account(admin, "Globex", export=False)
    assert (await create_token(admin))["exportControlled"] == "Allowed"
    globex = "/api/v1/accounts/Globex/virtual-accounts/DEFAULT/tokens"
    assert (await create_token(admin, globex))["exportControlled"] == "Not Allowed"


async def test_export_controlled_takes_only_the_two_words_or_a_boolean(admin: Api) -> None:
    await create_account(admin, export=True)
    for value in ("allowed", "Yes", 2):
        status, body = await admin.post(TOKENS, {"exportControlled": value})
        assert status == 422, (value, body)
        assert body["field"] == "exportControlled"


async def test_expires_after_days_range(admin: Api, db: asyncpg.Connection) -> None:
    await create_account(admin)
    for days in (0, -1, 366):
        status, body = await admin.post(TOKENS, {"expiresAfterDays": days})
        assert status == 422, (days, body)
        assert body["field"] == "expiresAfterDays"
    assert await db.fetchval("SELECT count(*) FROM registration_tokens") == 0
    now = dt.datetime.now(dt.UTC)
    for days in (1, 365):
        info = await create_token(admin, expiresAfterDays=days)
        assert near(when(info["expirationDate"]), now + dt.timedelta(days=days))


async def test_default_expiry_is_30_days(admin: Api) -> None:
    await create_account(admin)
    info = await create_token(admin, description="no expiry given")
    expected = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    assert near(when(info["expirationDate"]), expected)
    assert info["numberOfUses"] is None


async def test_number_of_uses_must_be_positive(admin: Api) -> None:
    await create_account(admin)
    status, body = await admin.post(TOKENS, {"numberOfUses": 0})
    assert status == 422, body
    assert body["field"] == "numberOfUses"


async def test_unknown_fields_are_refused(admin: Api, db: asyncpg.Connection) -> None:
    await create_account(admin)
    status, body = await admin.post(TOKENS, {"description": "x", "expiresAfter": 3})
    assert status == 422, body
    assert body["field"] == "expiresAfter"
    assert await db.fetchval("SELECT count(*) FROM registration_tokens") == 0


async def test_tokens_of_unknown_virtual_account_or_account_are_404(admin: Api) -> None:
    await create_account(admin)
    for path in (
        "/api/v1/accounts/Acme/virtual-accounts/Nope/tokens",
        "/api/v1/accounts/Nobody/virtual-accounts/DEFAULT/tokens",
    ):
        status, body = await admin.get(path)
        assert status == 404, body
        status, body = await admin.post(path, {})
        assert status == 404, body
        status, body = await admin.post(path + "/revoke", {"tokens": ["x"]})
        assert status == 404, body


async def test_creation_and_revocation_are_audited(admin: Api, system_admin: Credentials) -> None:
    await create_account(admin)
    token = (await create_token(admin, numberOfUses=5))["token"]
    status, body = await admin.post(TOKENS + "/revoke", {"tokens": [token]})
    assert status == 200, body
    status, body = await admin.get("/api/v1/events?action=token")
    assert status == 200, body
    assert body["totalRecords"] == 2
    revoked, created = body["events"]
    assert created["action"] == "token.created"
    assert revoked["action"] == "token.revoked"
    actor = f"client:{system_admin.client_id}"
    for event in (created, revoked):
        assert event["actor"] == actor
        assert event["account"] == "Acme"
        assert event["target"].startswith("Acme/DEFAULT/")
    assert created["target"] == revoked["target"]
    assert created["details"]["max_uses"] == 5


async def test_account_admin_is_the_actor_of_its_changes(
    admin: Api, system_admin: Credentials
) -> None:
    await create_account(admin)
    account_admin = await new_client(admin, "account-admin", ["Acme"])
    info = await create_token(account_admin)
    actor = info["createdBy"]
    assert actor.startswith("client:")
    assert actor != f"client:{system_admin.client_id}"
    status, body = await admin.get(f"/api/v1/events?action=token&actor={actor}")
    assert status == 200, body
    assert [e["action"] for e in body["events"]] == ["token.created"]


async def refuse_events(db: asyncpg.Connection, action: str) -> None:
    """Make the audit insert of ``action`` fail inside the database."""
    await db.execute(
        f"ALTER TABLE events ADD CONSTRAINT refuse_{action.replace('.', '_')} "
        f"CHECK (action <> '{action}') NOT VALID"
    )


async def test_no_token_without_its_audit_event(admin: Api, db: asyncpg.Connection) -> None:
    await create_account(admin)
    await refuse_events(db, "token.created")
    status, body = await admin.post(TOKENS, {"description": "x"})
    assert status == 500, body
    assert await db.fetchval("SELECT count(*) FROM registration_tokens") == 0


async def test_no_revocation_without_its_audit_event(admin: Api, db: asyncpg.Connection) -> None:
    await create_account(admin)
    token = (await create_token(admin))["token"]
    await refuse_events(db, "token.revoked")
    status, body = await admin.post(TOKENS + "/revoke", {"tokens": [token]})
    assert status == 500, body
    assert (await listed(admin))[token]["status"] == "Active"
