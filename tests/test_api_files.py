"""Operations whose answer or request is a file (``satellite.api.files``), over HTTP: a
sync request is streamed as an attachment and its scratch file removed, refused or not;
an upload's body is the file itself (never JSON fields); the OpenAPI document gives
neither a JSON schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest

from satellite.api.context import Services
from satellite.config import DatabaseSettings, Settings, SyncSettings
from satellite.domain.access import host_operator
from satellite.http.openapi import build_document
from satellite.wiring import load_runtime, open_services
from tests.conftest import Api

PROBLEM = "application/problem+json"
BUNDLE = "application/x-satellite-sync"
SITE = "/api/v1/accounts/Site"
OPERATOR = host_operator("pytest")


@pytest.fixture
def settings(state_dir: Path, db_dsn: str, tmp_path: Path) -> Settings:
    """The satellite's settings, its bundles in transit in this test's directory."""
    return Settings(
        state_dir=str(state_dir),
        listen=["127.0.0.1:0"],
        database=DatabaseSettings(dsn=db_dsn, pool_min_size=1, pool_max_size=5),
        sync=SyncSettings(spool_dir=str(tmp_path / "spool")),
    )


@pytest.fixture
async def upstream(
    upstream_state_dir: Path, upstream_dsn: str, tmp_path: Path
) -> AsyncIterator[Services]:
    """An upstream's services (no server: bundles are carried as files)."""
    settings = Settings(
        role="upstream",
        state_dir=str(upstream_state_dir),
        database=DatabaseSettings(dsn=upstream_dsn, pool_min_size=1, pool_max_size=2),
        sync=SyncSettings(spool_dir=str(tmp_path / "upstream-spool")),
    )
    async with open_services(load_runtime(settings, upstream_dsn)) as services:
        await services.accounts.create_account(OPERATOR, "Acme", "", False)
        yield services


def spooled(settings: Settings) -> list[Path]:
    """What is left in the spool: the scratch directories of bundles in transit."""
    assert settings.sync.spool_dir is not None
    spool = Path(settings.sync.spool_dir)
    return sorted(spool.iterdir()) if spool.exists() else []


async def test_a_sync_request_is_streamed_and_its_scratch_file_removed(
    admin: Api, services: Services, upstream: Services, settings: Settings, tmp_path: Path
) -> None:
    await services.accounts.create_account(OPERATOR, "Site", "", False)
    token = (await upstream.upstream.create_token(OPERATOR, "Acme", "site", None)).secret
    registration, answer = tmp_path / "registration", tmp_path / "answer"
    await services.sync.request_registration(
        OPERATOR, "Site", token=token, name="dark-site", upstream_url=None, out=registration
    )
    _, data = await upstream.upstream.answer(registration, OPERATOR)
    answer.write_bytes(data)
    await services.sync.complete_registration(OPERATOR, "Site", answer)

    async with admin.client.get(SITE + "/sync/request", headers=admin._headers()) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"] == BUNDLE
        assert response.headers["Content-Disposition"] == (
            'attachment; filename="sync-request-Site-1.bundle"'
        )
        request = tmp_path / "request"
        request.write_bytes(await response.read())
    assert spooled(settings) == []
    answered, data = await upstream.upstream.answer(request, OPERATOR)
    assert (answered.kind, answered.sequence) == ("sync", 1)

    async with admin.client.post(
        SITE + "/sync/answer", data=data, headers=admin._headers()
    ) as response:
        assert response.status == 200, await response.text()
        imported = await response.json()
    assert (imported["account"], imported["sequence"], imported["repeated"]) == ("Site", 1, False)
    assert spooled(settings) == []


async def test_a_refused_sync_request_download_is_a_problem_and_leaves_no_file(
    admin: Api, settings: Settings
) -> None:
    status, _ = await admin.post("/api/v1/accounts", {"name": "Site"})
    assert status == 200
    async with admin.client.get(SITE + "/sync/request", headers=admin._headers()) as response:
        assert response.status == 409, await response.text()
        assert response.headers["Content-Type"].startswith(PROBLEM)
        assert "Content-Disposition" not in response.headers
        problem = await response.json(content_type=PROBLEM)
    assert problem["field"] == "account"
    assert "not registered" in problem["detail"]
    assert spooled(settings) == []


async def test_an_upload_body_is_the_file_not_json_fields(admin: Api) -> None:
    status, _ = await admin.post("/api/v1/accounts", {"name": "Site"})
    assert status == 200
    # JSON naming a field no request has would be refused as unknown (422) if the body
    # were decoded as fields; as the file, the account's own rule answers first.
    for path in (SITE + "/sync/answer", "/api/v1/sync/answer"):
        async with admin.client.post(
            path, data=b'{"unknownField": 1}', headers=admin._headers()
        ) as response:
            assert response.status == 409, (path, await response.text())
            assert response.headers["Content-Type"].startswith(PROBLEM)


def test_files_have_no_json_schema_in_the_openapi_document() -> None:
    paths = build_document()["paths"]
    account = "/api/v1/accounts/{account}"
    va = account + "/virtual-accounts/{va}"
    downloads = [
        paths[account + "/sync/request"]["get"],
        paths[va + "/reservations/{product}/authorization-code"]["get"],
        paths["/api/v1/sync/answer"]["post"],
    ]
    for operation in downloads:
        assert "content" not in operation["responses"]["200"], operation["summary"]
    uploads = [paths[account + "/sync/answer"]["post"], paths["/api/v1/sync/answer"]["post"]]
    for operation in uploads:
        assert "requestBody" not in operation, operation["summary"]
    # A JSON answer keeps its schema.
    imported = paths[account + "/sync/answer"]["post"]["responses"]["200"]
    assert "application/json" in imported["content"]


async def test_a_sync_request_of_an_account_named_with_quotes_cannot_add_header_parameters(
    admin: Api, services: Services, upstream: Services, tmp_path: Path
) -> None:
    # A name may hold quotes, semicolons and any letters (not CR or LF: no control
    # characters); in a quoted filename it would end the string and add a parameter.
    name = "Q\"; filename*=UTF-8''evil.exe; x=\"ü"
    await services.accounts.create_account(OPERATOR, name, "", False)
    token = (await upstream.upstream.create_token(OPERATOR, "Acme", "site", None)).secret
    registration, answer = tmp_path / "registration", tmp_path / "answer"
    await services.sync.request_registration(
        OPERATOR, name, token=token, name="dark-site", upstream_url=None, out=registration
    )
    _, data = await upstream.upstream.answer(registration, OPERATOR)
    answer.write_bytes(data)
    await services.sync.complete_registration(OPERATOR, name, answer)

    path = "/api/v1/accounts/" + quote(name, safe="") + "/sync/request"
    async with admin.client.get(path, headers=admin._headers()) as response:
        assert response.status == 200, await response.text()
        disposition = response.headers["Content-Disposition"]
    fallback = "sync-request-Q___filename__UTF-8__evil.exe__x___-1.bundle"
    assert disposition == (
        f"attachment; filename=\"{fallback}\"; filename*=UTF-8''"
        + quote(f"sync-request-{name}-1.bundle", safe="")
    )


async def test_an_account_named_in_chinese_asks_to_register(
    services: Services, upstream: Services, tmp_path: Path
) -> None:
    # The registration request is kept (encrypted) as text: its name is not ASCII.
    await services.accounts.create_account(OPERATOR, "华东", "", False)
    token = (await upstream.upstream.create_token(OPERATOR, "Acme", "site", None)).secret
    registration = tmp_path / "registration"
    await services.sync.request_registration(
        OPERATOR, "华东", token=token, name="dark-site", upstream_url=None, out=registration
    )
    answered, _ = await upstream.upstream.answer(registration, OPERATOR)
    assert answered.kind == "registration"
