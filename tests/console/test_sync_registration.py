"""Registration by files (disconnected mode) set up entirely from the consoles, and the
same operations over the admin API: the satellite's registration request downloaded, the
upstream's satellites page showing its key fingerprint and its "Answer a sync request" page
answering the registration request, the answer uploaded with the fingerprint checked; the
mode switched; bad files and input refused as pages in the operation's words; viewers and
other accounts' admins refused; every page and state in Chinese."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from yarl import URL

from satellite.config import Settings
from tests.conftest import AiohttpClient, Api
from tests.helpers.console import Visitor, assert_chinese, create_user
from tests.helpers.sync import (
    Upstream,
    open_upstream,
    satellite_token,
    setup_site,
    setup_upstream,
)
from tests.helpers.sync_console import (
    SATELLITES,
    SYNC,
    download,
    file_call,
    ok_account,
    small_bundles_settings,
    status,
    upload,
    upload_for_download,
    visitors_of,
)

REQUEST = SYNC + "/registration-request"
ANSWER = SYNC + "/registration-answer"


@pytest.fixture
def settings(state_dir: Path, db_dsn: str, tmp_path: Path) -> Settings:
    return small_bundles_settings(state_dir, db_dsn, tmp_path)


@pytest.fixture
async def upstream(
    upstream_state_dir: Path, upstream_dsn: str, tmp_path: Path, aiohttp_client: AiohttpClient
) -> AsyncIterator[Upstream]:
    async with open_upstream(upstream_state_dir, upstream_dsn, tmp_path, aiohttp_client) as up:
        await setup_upstream(up)
        yield up


@pytest.fixture
async def up_visitors(upstream: Upstream) -> AsyncIterator[Callable[..., Visitor]]:
    async with visitors_of(upstream.admin) as open_visitor:
        yield open_visitor


async def ann_of(admin: Api, visitors: Callable[..., Visitor], language: str = "en") -> Visitor:
    await setup_site(admin)
    ann = visitors(language)
    await ann.sign_in("ann", await create_user(admin, "ann", "account-admin", ["Site"]))
    return ann


async def uma_of(
    up: Upstream, up_visitors: Callable[..., Visitor], language: str = "en"
) -> Visitor:
    uma = up_visitors(language)
    await uma.sign_in("uma", await create_user(up.admin, "uma", "account-admin", ["Acme"]))
    return uma


def fingerprint_on(page_text: str) -> str:
    found = re.search(r'<code id="upstream-fingerprint">([^<]+)</code>', page_text)
    assert found is not None
    return found.group(1)


async def test_registration_then_a_sync_by_files_through_both_consoles(
    upstream: Upstream,
    admin: Api,
    visitors: Callable[..., Visitor],
    up_visitors: Callable[..., Visitor],
) -> None:
    ann, uma = await ann_of(admin, visitors), await uma_of(upstream, up_visitors)
    # The upstream: a satellite token, and the fingerprint the satellite checks.
    listing = await uma.get(SATELLITES)
    fingerprint = fingerprint_on(listing.text)
    assert fingerprint == upstream.services.upstream.fingerprint()
    created = await uma.post(SATELLITES + "/tokens", {"csrf": listing.csrf})
    [token] = re.findall(r'<code id="new-satellite-token-value">([^<]+)</code>', created.text)

    page = await ann.get(SYNC)
    assert 'id="registration-request"' in page.text
    assert 'id="registration-answer"' in page.text
    response, request = await download(ann, REQUEST, page.csrf)
    assert response.status == 400  # no token: the page again
    form = {"csrf": page.csrf, "token": token, "name": "site-1"}
    async with ann.session.post(ann.base.join(URL(REQUEST)), data=form) as r:
        assert r.status == 200
        assert r.headers["Content-Disposition"].startswith(
            'attachment; filename="registration-request-Site.bundle"'
        )
        assert r.headers["Cache-Control"] == "no-store"
        request = await r.read()
    assert request.startswith(b'{"type":"registrationRequest"')
    assert "A registration request is waiting for its answer." in (await ann.get(SYNC)).text

    answer_form = await uma.get("/sync-answer")
    response, answer = await upload_for_download(
        uma, "/sync-answer", answer_form.csrf, "bundle", request
    )
    assert response.status == 200, answer
    assert response.headers["Content-Disposition"].startswith(
        'attachment; filename="registration-answer-Acme.bundle"'
    )
    assert answer.startswith(b'{"type":"registrationAnswer"')

    fields = {"upstream_fingerprint": fingerprint}
    done = await upload(ann, ANSWER, page.csrf, "answer", answer, fields=fields)
    assert done.status == 200, done.text
    assert '<td class="mode">Disconnected</td>' in done.text
    assert fingerprint in done.text
    assert 'id="download-request"' in done.text
    assert "site-1" in (await uma.get(SATELLITES)).text

    # And a sync by files, each step on a page.
    response, sync_request = await download(ann, SYNC + "/request", done.csrf)
    assert response.status == 200
    response, sync_answer = await upload_for_download(
        uma, "/sync-answer", answer_form.csrf, "bundle", sync_request
    )
    assert response.status == 200
    applied = await upload(ann, SYNC + "/answer", done.csrf, "answer", sync_answer)
    assert "The answer to request 1 was applied." in applied.text

    # The mode switched both ways.
    connected = await ann.post(SYNC + "/connect", {"csrf": done.csrf, "upstream": upstream.url})
    assert '<td class="mode">Connected</td>' in connected.text
    assert 'id="sync-now"' in connected.text
    back = await ann.post(SYNC + "/connect", {"csrf": done.csrf})
    assert '<td class="mode">Disconnected</td>' in back.text
    refused = await ann.post(SYNC + "/connect", {"csrf": done.csrf, "upstream": "ftp://x"})
    assert refused.status == 400
    assert 'class="error"' in refused.text
    assert '<td class="mode">Disconnected</td>' in refused.text


async def test_bad_registration_answers_and_requests_are_refused_and_change_nothing(
    upstream: Upstream,
    admin: Api,
    visitors: Callable[..., Visitor],
) -> None:
    ann = await ann_of(admin, visitors)
    page = await ann.get(SYNC)
    # No registration waiting: even a real answer has nothing to complete.
    await ok_account(admin, "Branch")
    base = "/api/v1/accounts/Branch/sync"
    body = {"token": await satellite_token(upstream)}
    _, branch_request, _ = await file_call(admin, base + "/registration-request", json=body)
    _, branch_answer, _ = await file_call(upstream.admin, "/api/v1/sync/answer", raw=branch_request)
    empty = {"upstream_fingerprint": ""}
    nothing = await upload(ann, ANSWER, page.csrf, "answer", branch_answer, fields=empty)
    assert nothing.status == 409, nothing.text
    assert "no registration of account &#39;Site&#39; is waiting" in nothing.text

    form = {"csrf": page.csrf, "token": await satellite_token(upstream)}
    async with ann.session.post(ann.base.join(URL(REQUEST)), data=form) as r:
        assert r.status == 200
        request = await r.read()
    _, answer, _ = await file_call(upstream.admin, "/api/v1/sync/answer", raw=request)
    altered = answer.replace(b'"upstreamAccount":"Acme"', b'"upstreamAccount":"Evil"')
    assert altered != answer
    for content, fields, code, words in (
        (b"garbage, not a bundle", {}, 400, "no header line"),
        (b"", {}, 400, "no header line"),
        (b"{not json}\n", {}, 400, ""),
        (request, {}, 400, "not the answer to a registration request"),
        (altered, {}, 400, "signature"),
        (branch_answer, {}, 400, "for another registration request"),
        (answer, {"upstream_fingerprint": "ab:cd"}, 400, "not the expected ab:cd"),
        (answer, {"upstream_fingerprint": "x" * 5000}, 400, "upstreamFingerprint"),
        (answer[:-1] + b" " * (70 * 1024) + b"\n", {}, 413, "larger than the limit"),
        (None, {}, 400, "Choose the file to upload."),
    ):
        fields = {"upstream_fingerprint": "", **fields}
        refused = await upload(ann, ANSWER, page.csrf, "answer", content, fields=fields)
        assert refused.status == code, (content[:40] if content else content, refused.text)
        assert 'class="error"' in refused.text
        assert words in refused.text, refused.text
        assert 'id="registration-answer"' in refused.text  # the page again
    # The form's fields in another order than the page's: no file read, nothing done.
    no_order = await upload(ann, ANSWER, page.csrf, "answer", answer)
    assert no_order.status == 400
    assert not (await status(admin))["registered"]

    for form, words in (
        ({"token": ""}, "token"),
        ({"token": "t" * 600}, "token"),
        ({"token": "t", "upstream": "not a url"}, "upstream"),
        ({"token": "t", "name": "n" * 200}, "name"),
        ({"token": "t", "name": "a/b"}, "name"),
    ):
        async with ann.session.post(
            ann.base.join(URL(REQUEST)), data={"csrf": page.csrf, **form}
        ) as r:
            text = await r.text()
            assert r.status == 400, (form, text)
            assert words in text
            assert 'id="registration-request"' in text
    # Switching the mode of an account not registered: nothing to switch.
    unlinked = await ann.post(SYNC + "/connect", {"csrf": page.csrf, "upstream": upstream.url})
    assert unlinked.status == 409
    assert "is not registered with an upstream" in unlinked.text
    # The right answer still completes it (the refusals changed nothing).
    done = await upload(
        ann, ANSWER, page.csrf, "answer", answer, fields={"upstream_fingerprint": ""}
    )
    assert done.status == 200, done.text
    assert (await status(admin))["registered"]
    # Registered: another registration request is refused, the link kept.
    again = {"csrf": page.csrf, "token": await satellite_token(upstream)}
    async with ann.session.post(ann.base.join(URL(REQUEST)), data=again) as r:
        assert r.status == 409
        assert "is registered with its upstream already" in await r.text()
    assert (await status(admin))["mode"] == "disconnected"


async def test_a_viewer_sees_no_registration_forms_and_forged_ones_change_nothing(
    upstream: Upstream, admin: Api, visitors: Callable[..., Visitor]
) -> None:
    await setup_site(admin)
    victor = visitors()
    await victor.sign_in("victor", await create_user(admin, "victor", "account-viewer", ["Site"]))
    page = await victor.get(SYNC)
    assert page.status == 200
    assert 'method="post"' not in page.text.replace('id="sign-out" method="post"', "")
    token = await satellite_token(upstream)
    forged = await victor.post(REQUEST, {"csrf": page.csrf, "token": token})
    assert forged.status == 403
    empty = {"upstream_fingerprint": ""}
    assert (await upload(victor, ANSWER, page.csrf, "answer", b"x", fields=empty)).status == 403
    assert (await victor.post(SYNC + "/connect", {"csrf": page.csrf})).status == 403
    after = await status(admin)
    assert not after["registered"]
    assert not after["registrationPending"]


async def test_another_accounts_admin_finds_no_registration_forms(
    upstream: Upstream, admin: Api, visitors: Callable[..., Visitor]
) -> None:
    await setup_site(admin)
    await ok_account(admin, "Other")
    olive = visitors()
    await olive.sign_in("olive", await create_user(admin, "olive", "account-admin", ["Other"]))
    mine = await olive.get("/accounts/Other/sync")
    assert 'id="registration-request"' in mine.text
    token = await satellite_token(upstream)
    assert (await olive.post(REQUEST, {"csrf": mine.csrf, "token": token})).status == 404
    empty = {"upstream_fingerprint": ""}
    assert (await upload(olive, ANSWER, mine.csrf, "answer", b"x", fields=empty)).status == 404
    assert (await olive.post(SYNC + "/connect", {"csrf": mine.csrf})).status == 404
    assert not (await status(admin))["registrationPending"]


async def test_the_operations_over_http_and_the_upstreams_fingerprint(
    upstream: Upstream, admin: Api
) -> None:
    await setup_site(admin)
    code, key = await upstream.admin.get("/api/v1/sync/fingerprint")
    assert code == 200
    fingerprint = key["fingerprint"]
    assert fingerprint == upstream.services.upstream.fingerprint()
    body = {"token": await satellite_token(upstream), "name": "site-1", "upstream": upstream.url}
    code, request, headers = await file_call(
        admin, "/api/v1/accounts/Site/sync/registration-request", json=body
    )
    assert code == 200, request
    assert headers["Cache-Control"] == "no-store"
    _, answer, _ = await file_call(upstream.admin, "/api/v1/sync/answer", raw=request)
    path = "/api/v1/accounts/Site/sync/registration-answer"
    code, refused, _ = await file_call(admin, path + "?upstreamFingerprint=ab", raw=answer)
    assert code == 422, refused  # (the API's status for a refused value)
    assert b"not the expected ab" in refused
    code, done, _ = await file_call(admin, f"{path}?upstreamFingerprint={fingerprint}", raw=answer)
    assert code == 200, done
    registered = await status(admin)
    assert registered["mode"] == "connected"  # the URL given with the request
    assert registered["upstreamFingerprint"] == fingerprint
    code, switched = await admin.post("/api/v1/accounts/Site/sync/connect", {})
    assert code == 200, switched
    assert switched["mode"] == "disconnected"


async def test_every_registration_page_and_state_in_chinese(
    upstream: Upstream,
    admin: Api,
    visitors: Callable[..., Visitor],
    up_visitors: Callable[..., Visitor],
) -> None:
    zh = "zh-CN,zh;q=0.9"
    ann, uma = await ann_of(admin, visitors, zh), await uma_of(upstream, up_visitors, zh)
    listing = await uma.get(SATELLITES)
    pages = [listing]  # the fingerprint shown
    page = await ann.get(SYNC)
    pages.append(page)  # both ways to register
    form = {"csrf": page.csrf, "token": await satellite_token(upstream)}
    async with ann.session.post(ann.base.join(URL(REQUEST)), data=form) as r:
        request = await r.read()
    pages.append(await ann.get(SYNC))  # a registration waiting for its answer
    pages.append(
        await upload(ann, ANSWER, page.csrf, "answer", None, fields={"upstream_fingerprint": ""})
    )
    answer_form = await uma.get("/sync-answer")
    _, answer = await upload_for_download(uma, "/sync-answer", answer_form.csrf, "bundle", request)
    fields = {"upstream_fingerprint": fingerprint_on(listing.text)}
    done = await upload(ann, ANSWER, page.csrf, "answer", answer, fields=fields)
    pages.append(done)  # disconnected, with the switch to connected mode
    pages.append(await ann.post(SYNC + "/connect", {"csrf": page.csrf, "upstream": upstream.url}))
    data = ("Site", "Acme", "ann", "uma", "site", "Voice")
    for shown in pages:
        assert shown.status == 200 or 'class="error"' in shown.text, shown.text
        assert_chinese(shown, data)
