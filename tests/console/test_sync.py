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
    assert "Answer uploaded" in history and "Request downloaded" in history
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
