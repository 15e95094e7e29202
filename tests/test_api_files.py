"""Operations whose answer or request is a file (``satellite.api.files``), over HTTP: a
refused download is a problem document and leaves nothing in the spool, an upload's body
is the file itself (never JSON fields), and the OpenAPI document gives neither a JSON
schema."""

from __future__ import annotations

from pathlib import Path

from satellite.config import Settings
from satellite.http.openapi import build_document
from tests.conftest import Api

PROBLEM = "application/problem+json"
SITE = "/api/v1/accounts/Site"


def spool_runs(settings: Settings) -> list[Path]:
    """The scratch directories bundles in transit are kept in (removed after each use)."""
    spool = settings.state_path / "sync"
    return sorted(spool.glob("run-*")) if spool.exists() else []


async def test_a_refused_sync_request_download_is_a_problem_and_leaves_no_file(
    admin: Api, settings: Settings
) -> None:
    status, _ = await admin.post("/api/v1/accounts", {"name": "Site"})
    assert status == 200
    before = spool_runs(settings)
    async with admin.client.get(SITE + "/sync/request", headers=admin._headers()) as response:
        assert response.status == 409, await response.text()
        assert response.headers["Content-Type"].startswith(PROBLEM)
        assert "Content-Disposition" not in response.headers
        problem = await response.json(content_type=PROBLEM)
    assert problem["field"] == "account"
    assert "not registered" in problem["detail"]
    assert spool_runs(settings) == before


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
