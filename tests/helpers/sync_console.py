"""The sync pages' tests at both ends (tests/console/test_sync.py, test_satellites.py and
the browser's): a satellite whose bundles may be no larger than the least limit, an
upstream beside it (tests/helpers/sync.py), forms with files posted as a browser posts
them, and the two sides registered by file through their admin APIs."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from yarl import URL

from satellite.api.context import Services
from satellite.config import DatabaseSettings, Settings
from tests.conftest import Api
from tests.helpers.console import Page, Visitor, create_user
from tests.helpers.sync import (
    SITE,
    Upstream,
    satellite_token,
    setup_site,
    setup_upstream,
    sync_settings,
)

SYNC = "/accounts/Site/sync"
SATELLITES = "/accounts/Acme/satellites"
LIMIT = 65_536  # the satellite's sync.max_bundle_bytes here: the least it may be


def small_bundles_settings(state_dir: Path, db_dsn: str, tmp_path: Path) -> Settings:
    """The satellite's settings: bundles of at most ``LIMIT`` bytes, in the test's
    directory; retries without waiting."""
    return Settings(
        state_dir=str(state_dir),
        listen=["127.0.0.1:0"],
        database=DatabaseSettings(dsn=db_dsn, pool_min_size=1, pool_max_size=5),
        sync=sync_settings(tmp_path, max_bundle_bytes=LIMIT),
    )


@asynccontextmanager
async def visitors_of(api: Api) -> AsyncIterator[Any]:
    """Visitors of the console of ``api``'s daemon (the upstream's), closed afterwards."""
    opened: list[Visitor] = []

    def open_visitor(accept_language: str = "en") -> Visitor:
        visitor = Visitor(api, accept_language)
        opened.append(visitor)
        return visitor

    try:
        yield open_visitor
    finally:
        for visitor in opened:
            await visitor.close()


async def upload(
    visitor: Visitor,
    path: str,
    csrf: str,
    field: str,
    content: bytes | None,
    filename: str = "bundle",
    fields: dict[str, str] | None = None,
) -> Page:
    """A form with a file, as a browser posts it (multipart, the CSRF field first, then
    the form's ``fields``, the file last); ``content`` None: no file chosen (a browser
    sends an empty part with no name)."""
    form = aiohttp.FormData()
    form.add_field("csrf", csrf)
    for name, value in (fields or {}).items():
        form.add_field(name, value)
    if content is None:
        form.add_field(field, b"", filename="", content_type="application/octet-stream")
    else:
        form.add_field(
            field, io.BytesIO(content), filename=filename, content_type="application/octet-stream"
        )
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


async def file_call(
    api: Api, path: str, *, json: Any = None, raw: bytes | None = None
) -> tuple[int, bytes, Any]:
    """A POST of the admin API whose answer is a file (or a problem document): its status,
    body and headers."""
    data = raw if raw is not None else msgspec.json.encode(json)
    headers = {"Authorization": f"Bearer {api.token}"}
    if raw is None:
        headers["Content-Type"] = "application/json"
    async with api.client.post(path, data=data, headers=headers) as r:
        return r.status, await r.read(), r.headers


async def register_by_file(up: Upstream, admin: Api, account: str = "Site") -> None:
    """Disconnected mode's registration, through the admin APIs of both daemons (the
    operations the consoles and the host CLI call)."""
    base = f"/api/v1/accounts/{account}/sync"
    body = {"token": await satellite_token(up), "name": "site-1"}
    code, request, _ = await file_call(admin, base + "/registration-request", json=body)
    assert code == 200, request
    code, answer, _ = await file_call(up.admin, "/api/v1/sync/answer", raw=request)
    assert code == 200, answer
    code, done, _ = await file_call(admin, base + "/registration-answer", raw=answer)
    assert code == 200, done


async def two_sides(
    upstream: Upstream, admin: Api, services: Services, tmp_path: Path
) -> tuple[str, str]:
    """The upstream's Acme with 10 licenses, the satellite's Site registered by file; the
    passwords of their account admins (ann at the satellite, uma at the upstream)."""
    await setup_upstream(upstream)
    await setup_site(admin)
    await register_by_file(upstream, admin)
    return (
        await create_user(admin, "ann", "account-admin", ["Site"]),
        await create_user(upstream.admin, "uma", "account-admin", ["Acme"]),
    )


async def status(admin: Api) -> dict[str, Any]:
    code, body = await admin.get(SITE + "/sync")
    assert code == 200, body
    result: dict[str, Any] = body
    return result


async def ok_account(api: Api, name: str) -> None:
    code, body = await api.post("/api/v1/accounts", {"name": name})
    assert code == 200, body
