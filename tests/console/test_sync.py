"""The sync pages over plain HTTP, with two daemons: the satellite's sync page (status,
history, registering and unlinking, sync now, the request downloaded and the answer
uploaded in disconnected mode) and the upstream's satellites, satellite tokens and
answering an uploaded request; refusals as pages with the operation's words."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from satellite.api.context import Services
from satellite.config import DatabaseSettings, Settings
from tests.conftest import AiohttpClient, Api
from tests.helpers.console import Page, Visitor, assert_chinese, create_user
from tests.helpers.sync import (
    OPERATOR,
    SITE,
    UP_ACCOUNT,
    Upstream,
    answer_file,
    ok,
    open_upstream,
    pool,
    satellite_token,
    setup_site,
    setup_upstream,
    sync_settings,
)

SYNC = "/accounts/Site/sync"
SATELLITES = "/accounts/Acme/satellites"
LIMIT = 65_536  # the satellite's sync.max_bundle_bytes here: the least it may be


@pytest.fixture
def settings(state_dir: Path, db_dsn: str, tmp_path: Path) -> Settings:
    return Settings(
        state_dir=str(state_dir),
        listen=["127.0.0.1:0"],
        database=DatabaseSettings(dsn=db_dsn, pool_min_size=1, pool_max_size=5),
        sync=sync_settings(tmp_path, max_bundle_bytes=LIMIT),
    )


@pytest.fixture
async def upstream(
    upstream_state_dir: Path, upstream_dsn: str, tmp_path: Path, aiohttp_client: AiohttpClient
) -> AsyncIterator[Upstream]:
    async with open_upstream(upstream_state_dir, upstream_dsn, tmp_path, aiohttp_client) as up:
        yield up


@pytest.fixture
async def up_visitors(upstream: Upstream) -> AsyncIterator[Callable[..., Visitor]]:
    """Visitors of the upstream's console."""
    opened: list[Visitor] = []

    def open_visitor(accept_language: str = "en") -> Visitor:
        visitor = Visitor(upstream.admin, accept_language)
        opened.append(visitor)
        return visitor

    yield open_visitor
    for visitor in opened:
        await visitor.close()


async def upload(
    visitor: Visitor,
    path: str,
    csrf: str,
    field: str,
    content: bytes | None,
    filename: str = "bundle",
) -> Page:
    """A form with a file, as a browser posts it (multipart, the CSRF field first);
    ``content`` None: no file chosen (a browser sends an empty part with no name)."""
    form = aiohttp.FormData()
    form.add_field("csrf", csrf)
    if content is None:
        form.add_field(field, b"", filename="", content_type="application/octet-stream")
    else:
        form.add_field(field, content, filename=filename, content_type="application/octet-stream")
    async with visitor.session.post(visitor.base.join(URL(path)), data=form) as r:
        return Page(r.status, r.url, await r.text(errors="replace"), r.headers, r.cookies)


async def download(visitor: Visitor, path: str, csrf: str) -> tuple[aiohttp.ClientResponse, bytes]:
    async with visitor.session.post(visitor.base.join(URL(path)), data={"csrf": csrf}) as r:
        return r, await r.read()


async def upload_for_download(
    visitor: Visitor, path: str, csrf: str, field: str, content: bytes
) -> tuple[aiohttp.ClientResponse, bytes]:
    form = aiohttp.FormData()
    form.add_field("csrf", csrf)
    form.add_field(field, content, filename="request.bundle")
    async with visitor.session.post(visitor.base.join(URL(path)), data=form) as r:
        return r, await r.read()


async def register_by_file(up: Upstream, services: Services, tmp_path: Path) -> None:
    """Disconnected mode's registration, as the host CLI does it at both ends."""
    request, answer = tmp_path / "registration.request", tmp_path / "registration.answer"
    await services.sync.request_registration(
        OPERATOR,
        "Site",
        token=await satellite_token(up),
        name="site-1",
        upstream_url=None,
        out=request,
    )
    await answer_file(up, request, answer, OPERATOR)
    await services.sync.complete_registration(OPERATOR, "Site", answer)


async def two_sides(
    upstream: Upstream, admin: Api, services: Services, tmp_path: Path
) -> tuple[str, str]:
    """The upstream's Acme with 10 licenses, the satellite's Site registered by file; the
    passwords of their account admins (ann at the satellite, uma at the upstream)."""
    await setup_upstream(upstream)
    await setup_site(admin)
    await register_by_file(upstream, services, tmp_path)
    return (
        await create_user(admin, "ann", "account-admin", ["Site"]),
        await create_user(upstream.admin, "uma", "account-admin", ["Acme"]),
    )


async def status(admin: Api) -> dict[str, Any]:
    code, body = await admin.get(SITE + "/sync")
    assert code == 200, body
    result: dict[str, Any] = body
    return result


async def test_a_disconnected_round_trip_by_files_through_both_consoles(
    upstream: Upstream,
    admin: Api,
    services: Services,
    tmp_path: Path,
    visitors: Callable[..., Visitor],
    up_visitors: Callable[..., Visitor],
) -> None:
    ann_password, uma_password = await two_sides(upstream, admin, services, tmp_path)
    ann, uma = visitors(), up_visitors()
    await ann.sign_in("ann", ann_password)
    await uma.sign_in("uma", uma_password)

    page = await ann.get(SYNC)
    assert page.status == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert '<td class="mode">Disconnected</td>' in page.text
    assert 'id="download-request"' in page.text
    assert 'enctype="multipart/form-data"' in page.text
    assert 'id="sync-now"' not in page.text  # connected mode's
    assert "No sync yet." in page.text

    response, request = await download(ann, SYNC + "/request", page.csrf)
    assert response.status == 200
    assert response.headers["Content-Disposition"].startswith(
        'attachment; filename="sync-request-Site-1.bundle"'
    )
    assert response.headers["Cache-Control"] == "no-store"
    assert request.startswith(b'{"type":"syncRequest"')

    form = await uma.get("/sync-answer")
    assert form.status == 200
    assert 'id="answer-request"' in form.text
    response, answer = await upload_for_download(uma, "/sync-answer", form.csrf, "bundle", request)
    assert response.status == 200, answer
    assert response.headers["Content-Disposition"].startswith(
        'attachment; filename="sync-answer-Acme-1.bundle"'
    )
    assert response.headers["Cache-Control"] == "no-store"
    assert answer.startswith(b'{"type":"syncAnswer"')

    applied = await upload(ann, SYNC + "/answer", page.csrf, "answer", answer)
    assert applied.status == 200, applied.text
    assert "The answer to request 1 was applied." in applied.text
    assert "<li>added: 1</li>" in applied.text
    [line] = await pool(admin, SITE)
    assert line["quantity"] == 10
    history = applied.text.split('id="sync-history"')[1]
    assert "Answer uploaded" in history
    assert "Request downloaded" in history
    assert "Success" in history
    assert '<td class="sequences">1 / 1</td>' in applied.text
    # The same answer again changes nothing, and says so.
    again = await upload(ann, SYNC + "/answer", page.csrf, "answer", answer)
    assert again.status == 200
    assert "had been applied before: nothing changed" in again.text
    assert await pool(admin, SITE) == [line]

    # The upstream's view of its satellite.
    listing = await uma.get(SATELLITES)
    assert listing.status == 200
    assert "site-1" in listing.text
    [satellite_id] = re.findall(r'href="/accounts/Acme/satellites/([0-9a-f-]{36})"', listing.text)
    detail = await uma.get(f"{SATELLITES}/{satellite_id}")
    assert detail.status == 200
    assert "<h1>site-1</h1>" in detail.text
    assert "No product instances reported." in detail.text


async def test_bad_answer_files_are_refused_in_the_operations_words_and_change_nothing(
    upstream: Upstream,
    admin: Api,
    services: Services,
    tmp_path: Path,
    visitors: Callable[..., Visitor],
) -> None:
    ann_password, _ = await two_sides(upstream, admin, services, tmp_path)
    ann = visitors()
    await ann.sign_in("ann", ann_password)
    page = await ann.get(SYNC)
    request = tmp_path / "request.bundle"
    await services.sync.write_request(OPERATOR, "Site", request)
    answer = tmp_path / "answer.bundle"
    await answer_file(upstream, request, answer, OPERATOR)
    altered = answer.read_bytes().replace(b'"quantity":10', b'"quantity":99')
    assert altered != answer.read_bytes()
    before = await status(admin)
    for content, code, words in (
        (b"garbage, not a bundle", 400, "no header line"),
        (b"", 400, "no header line"),
        (b"{not json}\n", 400, ""),
        (request.read_bytes(), 400, "this is not an answer for account"),
        (altered, 400, "signature"),
        (b'{"type":"syncAnswer"}\n', 400, "header is not valid"),
        (answer.read_bytes()[:-1] + b" " * (LIMIT * 2) + b"\n", 413, "larger than the limit"),
        (None, 400, "Choose the file to upload."),
    ):
        refused = await upload(ann, SYNC + "/answer", page.csrf, "answer", content)
        assert refused.status == code, (content[:40] if content else content, refused.text)
        assert 'class="error"' in refused.text
        assert words in refused.text, refused.text
        assert 'id="sync-status"' in refused.text  # the sync page again, not a bare error
    assert await pool(admin, SITE) == []
    after = await status(admin)
    assert (after["requestSequence"], after["appliedSequence"]) == (1, 0)
    assert before["appliedSequence"] == 0

    # A stale answer: request 2 answered and applied, then the answer to request 1.
    newer, newer_answer = tmp_path / "r2", tmp_path / "a2"
    await services.sync.write_request(OPERATOR, "Site", newer)
    await answer_file(upstream, newer, newer_answer, OPERATOR)
    applied = await upload(ann, SYNC + "/answer", page.csrf, "answer", newer_answer.read_bytes())
    assert applied.status == 200, applied.text
    stale = await upload(ann, SYNC + "/answer", page.csrf, "answer", answer.read_bytes())
    assert stale.status == 409
    assert "stale answer" in stale.text
    assert (await status(admin))["appliedSequence"] == 2


async def test_bad_request_files_at_the_upstream_are_refused_in_its_words(
    upstream: Upstream,
    admin: Api,
    services: Services,
    tmp_path: Path,
    up_visitors: Callable[..., Visitor],
) -> None:
    _, uma_password = await two_sides(upstream, admin, services, tmp_path)
    await ok_account(upstream.admin, "Globex")
    await create_user(upstream.admin, "olga", "account-admin", ["Globex"])
    uma = up_visitors()
    await uma.sign_in("uma", uma_password)
    form = await uma.get("/sync-answer")
    request, answer = tmp_path / "request.bundle", tmp_path / "answer.bundle"
    await services.sync.write_request(OPERATOR, "Site", request)
    await answer_file(upstream, request, answer, OPERATOR)
    synced = "SELECT count(*) FROM events WHERE action = 'satellite.synced'"
    events = await upstream.db.fetchval(synced)
    for content, code, words in (
        (b"garbage", 400, "no header line"),
        (b"", 400, "no header line"),
        (answer.read_bytes(), 400, "this file is an answer from an upstream"),
        (b"x" * (LIMIT * 2), 400, "first line is too long"),
        (None, 400, "Choose the file to upload."),
    ):
        refused = await upload(uma, "/sync-answer", form.csrf, "bundle", content)
        assert refused.status == code, refused.text
        assert words in refused.text
        assert 'id="answer-request"' in refused.text  # the form again
    # An admin of another account carrying the request in: not one of theirs.
    olga = up_visitors()
    await olga.sign_in("olga", "a long password!")
    other = await olga.get("/sync-answer")
    refused = await upload(olga, "/sync-answer", other.csrf, "bundle", request.read_bytes())
    assert refused.status == 404
    assert "the bundle&#39;s account is not one of yours" in refused.text
    assert await upstream.db.fetchval(synced) == events


async def test_connected_mode_register_sync_now_and_unlink_through_the_page(
    upstream: Upstream,
    admin: Api,
    services: Services,
    visitors: Callable[..., Visitor],
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    ann = visitors()
    await ann.sign_in("ann", await create_user(admin, "ann", "account-admin", ["Site"]))
    page = await ann.get(SYNC)
    assert "This account is not registered with an upstream." in page.text
    assert 'id="register"' in page.text
    token = await satellite_token(upstream)
    for form, code, words in (
        ({"upstream": "", "token": token}, 400, "upstream"),
        ({"upstream": "ftp://example.com", "token": token}, 400, "upstream"),
        ({"upstream": upstream.url, "token": ""}, 400, "token"),
        ({"upstream": upstream.url, "token": "x" * 600}, 400, "token"),
        ({"upstream": "http://127.0.0.1:1", "token": token}, 502, ""),
        ({"upstream": upstream.url, "token": "sat-unknown"}, 502, "satellite token"),
    ):
        refused = await ann.post(SYNC + "/register", {"csrf": page.csrf} | form)
        assert refused.status == code, (form, refused.text)
        assert 'class="error"' in refused.text
        assert words in refused.text
    assert not (await status(admin))["registered"]

    registered = await ann.post(
        SYNC + "/register", {"csrf": page.csrf, "upstream": upstream.url, "token": token}
    )
    assert registered.status == 200
    assert '<td class="mode">Connected</td>' in registered.text
    assert 'id="sync-now"' in registered.text
    assert 'id="download-request"' not in registered.text
    synced = await ann.post(SYNC + "/now", {"csrf": page.csrf})
    assert synced.status == 200
    assert "The answer to request 1 was applied." in synced.text
    assert "<li>added: 1</li>" in synced.text
    assert "Sync now" in synced.text.split('id="sync-history"')[1]
    assert len(await pool(admin, SITE)) == 1

    unlinked = await ann.post(SYNC + "/unregister", {"csrf": page.csrf})
    assert unlinked.status == 200
    assert "This account is not registered with an upstream." in unlinked.text
    assert not (await status(admin))["registered"]
    refused = await ann.post(SYNC + "/now", {"csrf": page.csrf})
    assert refused.status == 409
    assert "is not registered with an upstream" in refused.text


async def test_satellite_tokens_created_copied_and_revoked_and_a_satellite_revoked(
    upstream: Upstream,
    admin: Api,
    services: Services,
    tmp_path: Path,
    up_visitors: Callable[..., Visitor],
) -> None:
    _, uma_password = await two_sides(upstream, admin, services, tmp_path)
    uma = up_visitors()
    await uma.sign_in("uma", uma_password)
    page = await uma.get(SATELLITES)
    assert 'id="create-satellite-token"' in page.text
    created = await uma.post(
        SATELLITES + "/tokens", {"csrf": page.csrf, "description": "branch", "expires_days": "3"}
    )
    assert created.status == 200
    [secret] = re.findall(r'<code id="new-satellite-token-value">([^<]+)</code>', created.text)
    assert secret.startswith("sat-")
    assert 'data-copy="new-satellite-token-value"' in created.text
    tokens = created.text.split('id="satellite-tokens"')[1]
    assert "<td>branch</td>" in tokens
    assert secret not in tokens  # shown once, above the list
    for form, code in (
        ({"expires_days": "ten"}, 400),
        ({"expires_days": "400"}, 400),
        ({"description": "x" * 501}, 400),
    ):
        refused = await uma.post(SATELLITES + "/tokens", {"csrf": page.csrf} | form)
        assert refused.status == code, form
        assert 'class="error"' in refused.text
    body = await ok(upstream.admin.get(UP_ACCOUNT + "/satellite-tokens"))
    branch = [t for t in body["satelliteTokens"] if t["description"] == "branch"]
    assert len(branch) == 1
    token_id = str(branch[0]["id"])
    for bad in ("nope", "999999", ""):
        refused = await uma.post(SATELLITES + "/tokens/revoke", {"csrf": page.csrf, "token": bad})
        assert refused.status in (400, 404), bad
    revoked = await uma.post(
        SATELLITES + "/tokens/revoke", {"csrf": page.csrf, "token": token_id}, follow=False
    )
    assert revoked.status == 303
    body = await ok(upstream.admin.get(UP_ACCOUNT + "/satellite-tokens"))
    assert {str(t["id"]): t["status"] for t in body["satelliteTokens"]}[token_id] == "Revoked"

    listing = await uma.get(SATELLITES)
    [satellite_id] = re.findall(r'href="/accounts/Acme/satellites/([0-9a-f-]{36})"', listing.text)
    assert 'class="revoke-satellite"' in listing.text
    missing = await uma.post(f"{SATELLITES}/{'0' * 8}/revoke", {"csrf": page.csrf})
    assert missing.status == 404
    gone = await uma.post(f"{SATELLITES}/{satellite_id}/revoke", {"csrf": page.csrf})
    assert gone.status == 200
    assert "Revoked" in gone.text.split('id="satellites"')[1]
    assert 'class="revoke-satellite"' not in gone.text
    # Its next request is refused at the upstream's page, in the words of the operation.
    request = tmp_path / "after.bundle"
    await services.sync.write_request(OPERATOR, "Site", request)
    answering = await uma.get("/sync-answer")
    refused = await upload(uma, "/sync-answer", answering.csrf, "bundle", request.read_bytes())
    assert refused.status == 403
    assert "was revoked at the upstream" in refused.text
    assert (await uma.get(f"{SATELLITES}/nope")).status == 404
    assert (await uma.get(f"{SATELLITES}/{satellite_id}?offset=x")).status == 400


async def test_viewers_see_no_write_controls_and_forged_writes_are_refused(
    upstream: Upstream,
    admin: Api,
    services: Services,
    tmp_path: Path,
    visitors: Callable[..., Visitor],
    up_visitors: Callable[..., Visitor],
) -> None:
    await two_sides(upstream, admin, services, tmp_path)
    victor = visitors()
    await victor.sign_in("victor", await create_user(admin, "victor", "account-viewer", ["Site"]))
    page = await victor.get(SYNC)
    assert page.status == 200
    assert '<td class="mode">Disconnected</td>' in page.text
    assert 'method="post"' not in page.text.replace('id="sign-out" method="post"', "")
    before = await status(admin)
    for path in ("/now", "/request", "/unregister"):
        forged = await victor.post(SYNC + path, {"csrf": page.csrf})
        assert forged.status == 403, path
    forged = await victor.post(
        SYNC + "/register", {"csrf": page.csrf, "upstream": upstream.url, "token": "sat-x"}
    )
    assert forged.status == 403
    forged = await upload(victor, SYNC + "/answer", page.csrf, "answer", b"anything")
    assert forged.status == 403
    after = await status(admin)
    assert after["requestSequence"] == before["requestSequence"] == 0
    assert after["registered"]

    vera = up_visitors()
    await vera.sign_in(
        "vera", await create_user(upstream.admin, "vera", "account-viewer", ["Acme"])
    )
    listing = await vera.get(SATELLITES)
    assert listing.status == 200
    assert "site-1" in listing.text
    assert 'method="post"' not in listing.text.replace('id="sign-out" method="post"', "")
    [satellite_id] = re.findall(r'href="/accounts/Acme/satellites/([0-9a-f-]{36})"', listing.text)
    assert (await vera.post(SATELLITES + "/tokens", {"csrf": listing.csrf})).status == 403
    assert (
        await vera.post(SATELLITES + "/tokens/revoke", {"csrf": listing.csrf, "token": "1"})
    ).status == 403
    assert (
        await vera.post(f"{SATELLITES}/{satellite_id}/revoke", {"csrf": listing.csrf})
    ).status == 403
    request = tmp_path / "request.bundle"
    await services.sync.write_request(OPERATOR, "Site", request)
    form = await vera.get("/sync-answer")
    refused = await upload(vera, "/sync-answer", form.csrf, "bundle", request.read_bytes())
    assert refused.status == 403
    body = await ok(upstream.admin.get(UP_ACCOUNT + "/satellites"))
    assert [(s["revokedAt"], s["lastSequence"]) for s in body["satellites"]] == [(None, 0)]
    body = await ok(upstream.admin.get(UP_ACCOUNT + "/satellite-tokens"))
    assert all(t["status"] != "Active" for t in body["satelliteTokens"])  # only the spent one


async def test_another_accounts_admin_finds_nothing(
    upstream: Upstream,
    admin: Api,
    services: Services,
    tmp_path: Path,
    visitors: Callable[..., Visitor],
    up_visitors: Callable[..., Visitor],
) -> None:
    await two_sides(upstream, admin, services, tmp_path)
    await ok_account(admin, "Other")
    olive = visitors()
    await olive.sign_in("olive", await create_user(admin, "olive", "account-admin", ["Other"]))
    mine = await olive.get("/accounts/Other/sync")
    assert mine.status == 200
    assert (await olive.get(SYNC)).status == 404
    for path in ("/now", "/request", "/unregister", "/register"):
        assert (await olive.post(SYNC + path, {"csrf": mine.csrf})).status == 404, path
    assert (await upload(olive, SYNC + "/answer", mine.csrf, "answer", b"x")).status == 404
    assert (await status(admin))["requestSequence"] == 0

    await ok_account(upstream.admin, "Globex")
    gail = up_visitors()
    await gail.sign_in(
        "gail", await create_user(upstream.admin, "gail", "account-admin", ["Globex"])
    )
    theirs = await gail.get("/accounts/Globex/satellites")
    assert theirs.status == 200
    assert (await gail.get(SATELLITES)).status == 404
    assert (await gail.post(SATELLITES + "/tokens", {"csrf": theirs.csrf})).status == 404
    body = await ok(upstream.admin.get(UP_ACCOUNT + "/satellites"))
    [satellite_id] = [s["satelliteId"] for s in body["satellites"]]
    assert (await gail.get(f"{SATELLITES}/{satellite_id}")).status == 404
    assert (await gail.get(f"/accounts/Globex/satellites/{satellite_id}")).status == 404
    revoke = await gail.post(f"{SATELLITES}/{satellite_id}/revoke", {"csrf": theirs.csrf})
    assert revoke.status == 404


async def ok_account(api: Api, name: str) -> None:
    code, body = await api.post("/api/v1/accounts", {"name": name})
    assert code == 200, body


async def test_a_multipart_form_without_its_csrf_part_first_is_refused(
    upstream: Upstream,
    admin: Api,
    services: Services,
    tmp_path: Path,
    visitors: Callable[..., Visitor],
) -> None:
    ann_password, _ = await two_sides(upstream, admin, services, tmp_path)
    ann = visitors()
    await ann.sign_in("ann", ann_password)
    page = await ann.get(SYNC)
    form = aiohttp.FormData()
    form.add_field("answer", b"x", filename="a")
    form.add_field("csrf", page.csrf)
    async with ann.session.post(ann.base.join(URL(SYNC + "/answer")), data=form) as r:
        assert r.status == 403
    broken = "multipart/form-data; boundary=nothing"
    async with ann.session.post(
        ann.base.join(URL(SYNC + "/answer")), data=b"garbage", headers={"Content-Type": broken}
    ) as r:
        assert r.status == 403
    async with ann.session.post(
        ann.base.join(URL(SYNC + "/answer")),
        data=b"x",
        headers={"Content-Type": "multipart/form-data"},
    ) as r:
        assert r.status == 403


async def test_every_sync_page_and_state_in_chinese(
    upstream: Upstream,
    admin: Api,
    services: Services,
    tmp_path: Path,
    visitors: Callable[..., Visitor],
    up_visitors: Callable[..., Visitor],
) -> None:
    await setup_upstream(upstream)
    await setup_site(admin)
    zh = "zh-CN,zh;q=0.9"
    ann = visitors(zh)
    await ann.sign_in("ann", await create_user(admin, "ann", "account-admin", ["Site"]))
    pages = [await ann.get(SYNC)]  # not registered, the register form
    pages.append(await ann.post(SYNC + "/register", {"csrf": pages[0].csrf, "upstream": ""}))
    await register_by_file(upstream, services, tmp_path)
    page = await ann.get(SYNC)
    pages.append(page)  # disconnected, no history
    response, request = await download(ann, SYNC + "/request", page.csrf)
    assert response.status == 200
    pages.append(await upload(ann, SYNC + "/answer", page.csrf, "answer", b"garbage"))
    pages.append(await upload(ann, SYNC + "/answer", page.csrf, "answer", None))

    uma = up_visitors(zh)
    await uma.sign_in("uma", await create_user(upstream.admin, "uma", "account-admin", ["Acme"]))
    form = await uma.get("/sync-answer")
    pages += [form, await upload(uma, "/sync-answer", form.csrf, "bundle", b"garbage")]
    response, answer = await upload_for_download(uma, "/sync-answer", form.csrf, "bundle", request)
    assert response.status == 200
    pages.append(await upload(ann, SYNC + "/answer", page.csrf, "answer", answer))  # applied
    pages.append(await upload(ann, SYNC + "/answer", page.csrf, "answer", answer))  # repeated
    listing = await uma.get(SATELLITES)
    pages.append(listing)
    pages.append(await uma.post(SATELLITES + "/tokens", {"csrf": listing.csrf}))  # created
    pages.append(
        await uma.post(SATELLITES + "/tokens", {"csrf": listing.csrf, "expires_days": "x"})
    )
    [satellite_id] = re.findall(r'href="/accounts/Acme/satellites/([0-9a-f-]{36})"', listing.text)
    pages.append(await uma.get(f"{SATELLITES}/{satellite_id}"))
    pages.append(await uma.post(f"{SATELLITES}/{satellite_id}/revoke", {"csrf": listing.csrf}))
    empty = await uma.get("/accounts/Acme")  # (another page's link to this one)
    assert f'href="{SATELLITES}"' in empty.text

    # Connected mode's page, with sync now.
    await services.sync.unregister(OPERATOR, "Site")
    token = await satellite_token(upstream)
    await services.sync.register_online(
        OPERATOR, "Site", upstream_url=upstream.url, token=token, name="site-2"
    )
    pages.append(await ann.post(SYNC + "/now", {"csrf": page.csrf}))
    # The services' words of a refusal are English, as the API's are (docs/console.md):
    # the Chinese pages here are those whose error, if any, is the console's own.
    data = (
        "Site",
        "Acme",
        "ann",
        "uma",
        "site",
        "site-1",
        "site-2",
        "Voice",
        "Default virtual account",
    )
    for shown in pages:
        if 'class="error"' in shown.text and "请选择" not in shown.text:
            shown.text = re.sub(r'<p class="error" role="alert">[^<]*</p>', "", shown.text)
        assert_chinese(shown, data)


async def test_another_form_posted_as_multipart_is_read_as_a_form(
    admin: Api, visitors: Callable[..., Visitor]
) -> None:
    await setup_site(admin)
    ann = visitors()
    await ann.sign_in("ann", await create_user(admin, "ann", "account-admin", ["Site"]))
    page = await ann.get("/accounts/Site")
    form = aiohttp.FormData()
    form.add_field("csrf", page.csrf)
    form.add_field("name", "Lab")
    form.add_field("file", b"x", filename="x")  # (makes aiohttp send it as multipart)
    async with ann.session.post(
        ann.base.join(URL("/accounts/Site/virtual-accounts")), data=form, allow_redirects=False
    ) as r:
        assert r.status == 303, await r.text()
    names = [
        va["name"] for va in (await ok(admin.get(SITE + "/virtual-accounts")))["virtualAccounts"]
    ]
    assert "Lab" in names


async def test_a_long_history_is_paged(
    upstream: Upstream,
    admin: Api,
    services: Services,
    tmp_path: Path,
    visitors: Callable[..., Visitor],
) -> None:
    ann_password, _ = await two_sides(upstream, admin, services, tmp_path)
    for _ in range(23):  # each a line of the history: a request written
        await services.sync.write_request(OPERATOR, "Site", tmp_path / "request.bundle")
    ann = visitors()
    await ann.sign_in("ann", ann_password)
    first = await ann.get(SYNC)
    rows = first.text.split('id="sync-history"')[1].count("<tr class=")
    assert rows == 20
    assert f'href="{SYNC}?history_offset=20"' in first.text
    assert 'rel="prev"' not in first.text
    second = await ann.get(SYNC + "?history_offset=20")
    assert second.status == 200
    assert second.text.split('id="sync-history"')[1].count("<tr class=") == 3
    assert f'href="{SYNC}?history_offset=0"' in second.text
    assert 'rel="next"' not in second.text
    # The oldest line last: request 1.
    assert "<td>1</td>" in second.text.split('id="sync-history"')[1].split("</tr>")[-2]
    for bad in ("x", "-1", "9" * 30):
        refused = await ann.get(SYNC + "?history_offset=" + bad)
        assert refused.status == 400, bad
        assert 'class="error"' in refused.text
    body = await ok(admin.get(SITE + "/sync?historyOffset=20"))
    assert (len(body["history"]), body["historyTotal"]) == (3, 23)
