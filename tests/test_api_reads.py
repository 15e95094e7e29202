"""Reads of reservations, export keys and sync that take no query parameters ignore a
query string sent anyway (a toolkit client's paging, say), as they always did: it changes
nothing and is not refused. A query naming a path field is still refused."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api

SITE = "/api/v1/accounts/Site"
VA = SITE + "/virtual-accounts/Voice"
NOBODY = "00000000-0000-4000-8000-000000000000"  # a product instance id of no product


async def answer(api: Api, path: str) -> tuple[int, Any]:
    """The status and body, but the request id a problem document carries."""
    status, body = await api.get(path)
    if isinstance(body, dict):
        body.pop("requestId", None)
    return status, body


async def test_reads_without_parameters_ignore_a_query_string(admin: Api) -> None:
    assert (await admin.post("/api/v1/accounts", {"name": "Site"}))[0] == 200
    assert (await admin.post(SITE + "/virtual-accounts", {"name": "Voice"}))[0] == 200
    reads = [
        SITE + "/sync",
        SITE + "/satellite-tokens",
        SITE + "/satellites",
        SITE + "/sync/request",  # refused: not registered (409), whatever the query
        VA + f"/reservations/{NOBODY}/authorization-code",  # no such reservation (404)
        VA + f"/devices/{NOBODY}/export-keys",
    ]
    for path in reads:
        plain = await answer(admin, path)
        assert plain[0] in (200, 404, 409), (path, plain)
        assert await answer(admin, path + "?limit=5&color=blue") == plain, path


async def test_a_query_naming_a_path_field_is_refused(admin: Api) -> None:
    assert (await admin.post("/api/v1/accounts", {"name": "Site"}))[0] == 200
    status, problem = await admin.get(SITE + "/sync?account=Other")
    assert status == 422, problem
    assert problem["field"] == "account"
