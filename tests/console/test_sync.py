"""The satellite's sync page over plain HTTP, with an upstream beside it: status and
history (paged), registering and unlinking, sync now, and in disconnected mode the sync
request downloaded, answered on the upstream's console, and the answer uploaded; bad files
refused as pages with the operation's words; every page and state in Chinese."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from satellite.api.context import Services
from satellite.config import Settings
from tests.conftest import AiohttpClient, Api
from tests.helpers.console import Visitor, assert_chinese, create_user
from tests.helpers.sync import (
    OPERATOR,
    SITE,
    Upstream,
    answer_file,
    ok,
    open_upstream,
    pool,
    satellite_token,
    setup_site,
    setup_upstream,
)
from tests.helpers.sync_console import (
    LIMIT,
    SATELLITES,
    SYNC,
    download,
    ok_account,
    register_by_file,
    small_bundles_settings,
    status,
    two_sides,
    upload,
    upload_for_download,
    visitors_of,
)


@pytest.fixture
def settings(state_dir: Path, db_dsn: str, tmp_path: Path) -> Settings:
    return small_bundles_settings(state_dir, db_dsn, tmp_path)


@pytest.fixture
async def upstream(
    upstream_state_dir: Path, upstream_dsn: str, tmp_path: Path, aiohttp_client: AiohttpClient
) -> AsyncIterator[Upstream]:
    async with open_upstream(upstream_state_dir, upstream_dsn, tmp_path, aiohttp_client) as up:
        yield up


@pytest.fixture
async def up_visitors(upstream: Upstream) -> AsyncIterator[Callable[..., Visitor]]:
    """Visitors of the upstream's console."""
    async with visitors_of(upstream.admin) as open_visitor:
        yield open_visitor


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
    # Streamed, its headers go out before the guard's: it carries them itself.
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert response.headers["X-Frame-Options"] == "DENY"
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
    # Another account of this satellite, registered with the upstream too: its answer.
    await ok_account(admin, "Branch")
    branch_request, branch_answer = tmp_path / "branch.request", tmp_path / "branch.answer"
    await services.sync.request_registration(
        OPERATOR,
        "Branch",
        token=await satellite_token(upstream),
        name="branch",
        upstream_url=None,
        out=branch_request,
    )
    await answer_file(upstream, branch_request, branch_answer, OPERATOR)
    await services.sync.complete_registration(OPERATOR, "Branch", branch_answer)
    await services.sync.write_request(OPERATOR, "Branch", branch_request)
    await answer_file(upstream, branch_request, branch_answer, OPERATOR)
    before = await status(admin)
    for content, code, words in (
        (b"garbage, not a bundle", 400, "no header line"),
        (b"", 400, "no header line"),
        (b"{not json}\n", 400, ""),
        (request.read_bytes(), 400, "this is not an answer for account"),
        (altered, 400, "signature"),
        (branch_answer.read_bytes(), 400, "this is not an answer for account &#39;Site&#39;"),
        (b'{"type":"syncAnswer"}\n', 400, "header is not valid"),
        # 2 MiB, above the app's client_max_size too: the file streams to the operation,
        # whose limit is the only one (a form read whole would be aiohttp's bare 413).
        (answer.read_bytes()[:-1] + b" " * (32 * LIMIT) + b"\n", 413, "larger than the limit"),
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


async def test_a_viewer_sees_the_sync_page_without_controls_and_forged_writes_are_refused(
    upstream: Upstream,
    admin: Api,
    services: Services,
    tmp_path: Path,
    visitors: Callable[..., Visitor],
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


async def test_another_accounts_admin_finds_no_sync_page(
    upstream: Upstream,
    admin: Api,
    services: Services,
    tmp_path: Path,
    visitors: Callable[..., Visitor],
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
    await register_by_file(upstream, admin)
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
    for _ in range(20):  # a second page of history
        await services.sync.sync_now(OPERATOR, "Site")
    pages += [await ann.get(SYNC), await ann.get(SYNC + "?history_offset=20")]
    pages.append(await ann.get(SYNC + "?history_offset=x"))
    # A viewer at each end: no controls.
    viv = visitors(zh)
    await viv.sign_in("viv", await create_user(admin, "viv", "account-viewer", ["Site"]))
    pages.append(await viv.get(SYNC))
    vera = up_visitors(zh)
    await vera.sign_in(
        "vera", await create_user(upstream.admin, "vera", "account-viewer", ["Acme"])
    )
    pages += [await vera.get(SATELLITES), await vera.get("/sync-answer")]
    # The services' words of a refusal are English, as the API's are (docs/console.md):
    # the Chinese pages here are those whose error, if any, is the console's own.
    data = (
        "Site",
        "Acme",
        "ann",
        "uma",
        "viv",
        "vera",
        "site",
        "site-1",
        "site-2",
        "Voice",
        "Default virtual account",
    )
    english_refusal = re.compile(r'<p class="error" role="alert">[^<\u4e00-\u9fff]*</p>')
    for shown in pages:
        shown.text = english_refusal.sub("", shown.text)
        assert_chinese(shown, data)
    assert sum('class="error"' in shown.text for shown in pages) == 3  # the console's own


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
