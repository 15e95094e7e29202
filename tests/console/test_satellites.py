"""The upstream's sync pages over plain HTTP: its satellites and what they reported, its
satellite tokens (create, copy, revoke), revoking a satellite, and answering an uploaded
request file, with a satellite beside it that wrote the requests."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from satellite.api.context import Services
from satellite.config import Settings
from tests.conftest import ENHANCED, AiohttpClient, Api
from tests.helpers.api import new_agent
from tests.helpers.console import Visitor, create_user
from tests.helpers.sync import (
    OPERATOR,
    UP_ACCOUNT,
    Upstream,
    answer_file,
    ok,
    open_upstream,
    site_token,
)
from tests.helpers.sync_console import (
    LIMIT,
    SATELLITES,
    ok_account,
    small_bundles_settings,
    two_sides,
    upload,
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


async def test_a_viewer_sees_satellites_without_controls_and_forged_writes_are_refused(
    upstream: Upstream,
    admin: Api,
    services: Services,
    tmp_path: Path,
    up_visitors: Callable[..., Visitor],
) -> None:
    await two_sides(upstream, admin, services, tmp_path)
    vera = up_visitors()
    await vera.sign_in(
        "vera", await create_user(upstream.admin, "vera", "account-viewer", ["Acme"])
    )
    listing = await vera.get(SATELLITES)
    assert listing.status == 200
    assert "site-1" in listing.text
    assert 'id="answer-link"' not in listing.text
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
    assert form.status == 200
    assert 'id="answer-request"' not in form.text
    refused = await upload(vera, "/sync-answer", listing.csrf, "bundle", request.read_bytes())
    assert refused.status == 403
    body = await ok(upstream.admin.get(UP_ACCOUNT + "/satellites"))
    assert [(s["revokedAt"], s["lastSequence"]) for s in body["satellites"]] == [(None, 0)]
    body = await ok(upstream.admin.get(UP_ACCOUNT + "/satellite-tokens"))
    assert all(t["status"] != "Active" for t in body["satelliteTokens"])  # only the spent one


async def test_another_accounts_admin_finds_no_satellites(
    upstream: Upstream,
    admin: Api,
    services: Services,
    tmp_path: Path,
    up_visitors: Callable[..., Visitor],
) -> None:
    await two_sides(upstream, admin, services, tmp_path)
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


async def test_a_satellites_page_shows_the_products_and_usage_it_reported(
    upstream: Upstream,
    admin: Api,
    services: Services,
    server: TestServer,
    tmp_path: Path,
    up_visitors: Callable[..., Visitor],
) -> None:
    _, uma_password = await two_sides(upstream, admin, services, tmp_path)
    agents = []
    for serial in ("FCH0001", "FCH0002", "FCH0003"):
        agent = new_agent(tmp_path, server, serial)
        await agent.register(await site_token(admin))
        await agent.report_usage({ENHANCED: 2})
        agents.append(agent)
    request, answer = tmp_path / "request.bundle", tmp_path / "answer.bundle"
    await services.sync.write_request(OPERATOR, "Site", request)
    await answer_file(upstream, request, answer, OPERATOR)
    uma = up_visitors()
    await uma.sign_in("uma", uma_password)
    listing = await uma.get(SATELLITES)
    [satellite_id] = re.findall(r'href="/accounts/Acme/satellites/([0-9a-f-]{36})"', listing.text)
    row = listing.text.split('id="satellites"')[1].split("</tr>")[1]
    assert "<td>3</td>" in row  # its products
    detail = await uma.get(f"{SATELLITES}/{satellite_id}")
    assert detail.status == 200
    usage = detail.text.split('id="satellite-usage"')[1].split("</table>")[0]
    assert f"<td>Voice</td><td><code>{ENHANCED}</code></td><td>6</td>" in usage
    products = detail.text.split('id="satellite-products"')[1].split("</table>")[0]
    for serial in ("FCH0001", "FCH0002", "FCH0003"):
        assert f"<code>UCM {serial}</code>" in products
    assert 'rel="next"' not in detail.text
    # Their state in words of the page's language, not the satellite's stored value.
    assert products.count("<td>Registered</td>") == 3
    chinese = await uma.get(f"{SATELLITES}/{satellite_id}?lang=zh-CN")
    shown = chinese.text.split('id="satellite-products"')[1].split("</table>")[0]
    assert shown.count("<td>已注册</td>") == 3
    assert "registered" not in shown
